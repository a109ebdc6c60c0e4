"""``wae eval RUN`` and ``wae compare RUN...``: a run's offline metrics as rich tables.

Two plain Typer command functions, registered by :mod:`wae_toolkit.cli.app`. Torch and the metrics
are imported inside them, so the CLI starts fast. Options left out fall back to the library's
defaults (:func:`wae_toolkit.metrics.evaluate_run`). Errors are
:class:`~wae_toolkit.errors.UsageError` subclasses with one sentence, printed by ``wae``'s main.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wae_toolkit.errors import UsageError

__all__ = ["eval_command", "compare_command"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_SAMPLES_HELP = "At most this many points in the sample-based metrics. \\[default: 5000]"
_SEED_HELP = "Seed of the subsets and prior samples. \\[default: 0]"
_DEVICE_HELP = "cpu, cuda, cuda:N or mps. \\[default: cpu]"
_CACHE_HELP = (
    "Cache root of the data-set classifiers. \\[default: $WAE_CACHE_DIR or ~/.cache/wae-toolkit]"
)
_EXACT_HELP = "Largest sample set solved by exact OT; Sinkhorn beyond. \\[default: 5000]"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _options(
    samples: int | None,
    seed: int | None,
    device: str | None,
    cache_dir: str | None,
    exact_max: int | None,
) -> dict[str, Any]:
    """Keyword arguments of ``evaluate_run`` for the options the user gave; the others keep the
    library's defaults. Bad values are refused here, before any run is loaded."""
    problems = []
    if samples is not None and samples < 2:
        problems.append(f"--samples must be an integer >= 2; got {samples}.")
    if seed is not None and not 0 <= seed < 2**63:
        problems.append(f"--seed must be an integer from 0 to 2^63 - 1; got {seed}.")
    if exact_max is not None and exact_max < 0:
        problems.append(f"--exact-max must be an integer >= 0; got {exact_max}.")
    if problems:
        raise UsageError("\n".join(problems))
    if device is not None:
        from wae_toolkit.devices import resolve_device

        device = str(resolve_device(device))
    values = {"n_samples": samples, "seed": seed, "device": device, "cache_dir": cache_dir}
    values["exact_max"] = exact_max
    return {k: v for k, v in values.items() if v is not None}


def _footer(result: dict[str, Any]) -> list[str]:
    """Lines under the eval table: classifier, OT method, timings, where the record is."""
    details, lines = result.get("details", {}), []
    clf = details.get("classifier")
    if clf:
        how = (
            "loaded from the cache" if clf["cached"] else f"trained in {clf['train_seconds']:.1f} s"
        )
        lines.append(f"classifier: held-out accuracy {clf['accuracy']:.3f}, {how} ({clf['path']})")
    ot = details.get("ot", {}).get("samples")
    if ot:
        blur = f", blur {ot['blur']}" if ot["method"] == "sinkhorn" else ""
        lines.append(f"W2: {ot['method']}{blur}, {ot['n']} vs {ot['m']} points")
    timings = result.get("timings", {})
    parts = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total")
    lines.append(f"time: {timings.get('total', 0.0):.1f} s ({parts})")
    return lines


def eval_command(
    run: str = typer.Argument(..., help="Run folder written by 'wae run'."),
    samples: int = typer.Option(None, "--samples", "-n", help=_SAMPLES_HELP),
    seed: int = typer.Option(None, help=_SEED_HELP),
    device: str = typer.Option(None, help=_DEVICE_HELP),
    cache_dir: str = typer.Option(None, "--cache-dir", help=_CACHE_HELP),
    exact_max: int = typer.Option(None, "--exact-max", help=_EXACT_HELP),
) -> None:
    """Evaluate a run on its held-out data: every metric beside its floor; writes eval.json.

    Example: [bold]wae eval runs/digits-mmd-imq-20250101-120000[/bold]
    """
    from wae_toolkit.metrics import evaluate_run
    from wae_toolkit.metrics.record import EVAL_FILE, HOW_TO_READ, METRICS

    with err.status(f"Evaluating {escape(run)} ..."):
        result = evaluate_run(run, **_options(samples, seed, device, cache_dir, exact_max))
    seed_used = result["settings"]["seed"]
    table = Table(title=f"{run}: {result['n']} samples, seed {seed_used}", title_justify="left")
    table.add_column("metric", overflow="fold")
    table.add_column("value", justify="right")
    table.add_column("floor", justify="right")
    table.add_column("the floor is", overflow="fold")
    for name, (label, floor_is, _) in METRICS.items():
        if name in result["metrics"]:
            m = result["metrics"][name]
            table.add_row(label, _fmt(m["value"]), _fmt(m["floor"]), floor_is)
    for name, reason in result["skipped"].items():
        table.add_row(
            f"[dim]{name}[/dim]", "[dim]skipped[/dim]", "", f"[dim]{escape(reason)}[/dim]"
        )
    out.print(table)
    out.print(HOW_TO_READ, soft_wrap=True)
    out.print(escape(result["data"]), soft_wrap=True)
    for line in _footer(result):
        out.print(escape(line), soft_wrap=True)
    out.print(f"Written: {escape(str(Path(result['run']) / EVAL_FILE))}", soft_wrap=True)


def compare_command(
    runs: list[str] = typer.Argument(..., help="Run folders written by 'wae run'."),
    samples: int = typer.Option(None, "--samples", "-n", help=_SAMPLES_HELP),
    seed: int = typer.Option(None, help=_SEED_HELP),
    device: str = typer.Option(None, help=_DEVICE_HELP),
    cache_dir: str = typer.Option(None, "--cache-dir", help=_CACHE_HELP),
    exact_max: int = typer.Option(None, "--exact-max", help=_EXACT_HELP),
    recompute: bool = typer.Option(False, help="Evaluate again even where eval.json is current."),
) -> None:
    """Runs side by side: each metric (floor in brackets), the best in bold.

    Reads each run's eval.json when it matches the settings and the run's weights; evaluates the
    others (and writes their eval.json).

    Example: [bold]wae compare runs/A runs/B[/bold]
    """
    from wae_toolkit.metrics import compare_runs
    from wae_toolkit.metrics.record import HOW_TO_READ, METRICS, best_index

    with err.status(f"Evaluating {len(runs)} run(s) where needed ..."):
        options = _options(samples, seed, device, cache_dir, exact_max)
        results = compare_runs(runs, recompute=recompute, **options)
    table = Table(title="Runs compared (floor in brackets)", title_justify="left")
    table.add_column("metric", overflow="fold")
    for path in runs:
        table.add_column(escape(Path(path).name or path), overflow="fold", justify="right")
    table.add_row("samples", *[str(r["n"]) for r in results])
    for name, (label, _, better) in METRICS.items():
        cells = [r["metrics"].get(name) for r in results]
        if not any(cells):
            continue
        values = [c["value"] if c else None for c in cells]
        floors = [c["floor"] if c else None for c in cells]
        best = best_index(values, floors, better)
        row = []
        for i, (v, f) in enumerate(zip(values, floors, strict=True)):
            text = "-" if v is None else _fmt(v) + ("" if f is None else f" ({_fmt(f)})")
            row.append(f"[bold]{text}[/bold]" if i == best else text)
        table.add_row(label, *row)
    out.print(table)
    out.print(HOW_TO_READ + " Best in bold.", soft_wrap=True)
    for path, r in zip(runs, results, strict=True):
        if r["skipped"]:
            reasons = "; ".join(f"{k}: {v}" for k, v in r["skipped"].items())
            out.print(f"{escape(path)} skipped {escape(reasons)}", soft_wrap=True)
