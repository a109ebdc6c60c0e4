"""``wae report RUN...``: one self-contained HTML page about a run, or comparing several.

A plain Typer command function, registered by :mod:`wae_toolkit.cli.app`. The page is built by
:mod:`wae_toolkit.report`; matplotlib, torch and the metrics are imported inside the command,
so the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["report_command"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def report_command(
    runs: list[str] = typer.Argument(
        ...,
        help="Run folders written by 'wae run', or folders of runs (runs/: every run in it); "
        "give several to compare them. Among several paths, those that hold no run (such as "
        "runs/mlartifacts) are left out with a note.",
    ),
    out_file: str = typer.Option(
        None,
        "--out",
        "-o",
        help="The .html file to write. \\[default: RUN/report.html for one run, ./wae-report.html "
        "for several]",
    ),
    overwrite: bool = typer.Option(
        False,
        help="Replace --out even when it is not a report written by 'wae report' (one written "
        "earlier is replaced without this).",
    ),
    evaluate: bool = typer.Option(
        False,
        "--eval",
        help="First evaluate the finished runs that have no current eval.json, as 'wae compare' "
        "does (this writes their eval.json), so the page shows the offline metrics.",
    ),
) -> None:
    """One HTML page with everything embedded: configuration, metrics, loss curves, figures.

    With several runs, the page compares them: the settings that differ, the metrics side by side
    (best highlighted), the loss curves overlaid and the figures side by side.

    Example: [bold]wae report runs/A[/bold], [bold]wae report runs/A runs/B -o ab.html[/bold]
    or [bold]wae report runs/ -o all.html[/bold]
    """
    from wae_toolkit.report import write_report
    from wae_toolkit.report.run_paths import find_runs

    found = find_runs(runs)[0]  # checked before anything is evaluated or written
    if evaluate:
        _evaluate([r.path for r in found])
    with err.status(f"Writing the report of {len(found)} run(s) ..."):
        path = write_report(runs, out_file, overwrite=overwrite)
    what = "Report" if len(found) == 1 else f"Comparison of {len(found)} runs"
    out.print(f"{what} -> {escape(str(path))}", soft_wrap=True)


def _evaluate(runs: list[Path]) -> None:
    """``wae compare``'s evaluation of the finished runs (those with weights)."""
    from wae_toolkit.metrics import compare_runs
    from wae_toolkit.runs.read import read_run

    finished = [str(r) for r in runs if read_run(r).weights.is_file()]
    if finished:
        with err.status(f"Evaluating {len(finished)} run(s) where needed ..."):
            compare_runs(finished)
