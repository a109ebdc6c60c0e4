"""``wae sweep run FILE`` and ``wae sweep show STUDY``: hyper-parameter search with Optuna.

The search itself is :mod:`wae_toolkit.sweep`; this module reads the options, prints one line
per finished trial and the tables of ``show``. Optuna and torch are imported inside the
commands, so ``wae --help`` stays fast; without Optuna the commands say which extra to install.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["sweep_app"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

sweep_app = typer.Typer(
    help="Hyper-parameter search with Optuna: 'wae sweep run FILE', then 'wae sweep show STUDY'.",
    no_args_is_help=True,
)
_STATES = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def _objective(row: Any) -> str:
    if row.value is None:
        return "-"
    return _value(row.value) + (f" ± {row.std:.2g}" if row.std is not None else "")


def _print_trial(row: Any, objective: str) -> None:
    colour = _STATES.get(row.state, "white")
    what = f"{objective} {_objective(row)}" if row.value is not None else row.note
    folder = row.run_dirs[0] if len(row.run_dirs) == 1 else f"{len(row.run_dirs)} runs"
    line = f"trial {row.number:>4}  [{colour}]{row.state.lower():<8}[/{colour}]  "
    out.print(
        line + f"{escape(what)}  {escape(_params(row.params))}  {escape(folder)}", soft_wrap=True
    )


@sweep_app.command("run")
def sweep_run(
    file: str = typer.Argument(
        ...,
        metavar="FILE",
        help="A run configuration file with a \\[sweep] table (docs/sweeps.md).",
    ),
    trials: int = typer.Option(
        None,
        "--trials",
        "-n",
        help="Trials in the study, all workers and sessions together; the same command later "
        "continues a study that has fewer. \\[default: \\[sweep] trials, else 20]",
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", help="Worker processes on this machine (one CPU thread each)."
    ),
    storage: str = typer.Option(
        None,
        "--storage",
        metavar="URL",
        help="An Optuna storage URL (postgresql://..., mysql://...) that processes on several "
        "machines share. \\[default: sqlite:///FOLDER/study.db]",
    ),
    out_folder: str = typer.Option(
        None,
        "--out",
        "-o",
        metavar="FOLDER",
        help="The sweep's folder: its trials' run folders (and study.db). "
        "\\[default: \\[sweep] out, else runs/sweeps/NAME]",
    ),
    prune: bool = typer.Option(
        None,
        "--prune/--no-prune",
        help="Stop the trials whose held-out metric falls behind the median of the earlier "
        "trials at the same epoch. \\[default: \\[sweep] prune, else on]",
    ),
) -> None:
    """Search the settings of \\[sweep.space]; Ctrl-C stops, the same command continues.

    Each trial trains ordinary run folders (FOLDER/trial-0007), and the Optuna study is kept in
    a storage beside them (FOLDER/study.db), or in --storage URL.

    Example: [bold]wae sweep run ring-sweep.toml --trials 20 --jobs 2[/bold]
    """
    from wae_toolkit.sweep import prepare_sweep, run_sweep

    sweep = prepare_sweep(
        file, trials=trials, jobs=jobs, storage=storage, out=out_folder, prune=prune,
        optuna_log_level=logging.ERROR,  # the lines below tell each trial
    )  # fmt: skip
    plan, s = sweep.plan, sweep.settings
    workers = f"{s.jobs} workers" if s.jobs > 1 else "1 worker"
    seeds = f" (mean of {plan.seeds} seeds)" if plan.seeds > 1 else ""
    out.print(
        f"Sweep '{escape(plan.name)}': {sweep.counted} of {s.trials} trials done; minimising "
        f"{plan.objective}{seeds}; "
        f"{workers}; pruning {'on' if s.prune else 'off'}.",
        soft_wrap=True,
    )
    out.print(f"Study: {escape(s.storage)}; run folders in {escape(str(s.folder))}", soft_wrap=True)
    if sweep.counted >= s.trials:
        out.print(f"Nothing to run: the study has its {s.trials} trials; raise --trials to add.")
    outcome = run_sweep(sweep, on_trial=lambda row: _print_trial(row, plan.objective))
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(outcome.counts.items()))
    out.print(f"Done: {outcome.ran} trials this time; the study holds {counts}.", soft_wrap=True)
    if outcome.best is not None:
        b, folders = outcome.best, ", ".join(outcome.best.run_dirs)
        out.print(
            f"Best: trial {b.number}, {plan.objective} {_objective(b)} "
            f"({escape(_params(b.params))}) in {escape(folders)}. "
            f"More: wae sweep show {escape(str(s.folder))}",
            soft_wrap=True,
        )


@sweep_app.command("show")
def sweep_show(
    study: str = typer.Argument(
        ...,
        metavar="STUDY",
        help="A sweep's folder (it holds study.db), its configuration file, or a study's name "
        "(in runs/sweeps/NAME, or in --storage).",
    ),
    storage: str = typer.Option(
        None, "--storage", metavar="URL", help="The Optuna storage holding the study."
    ),
    top: int = typer.Option(5, "--top", "-k", help="How many of the best trials to show."),
    report: str = typer.Option(
        None,
        "--report",
        metavar="FILE.html",
        help="Also write the comparison of the best trials' run folders, as 'wae report' does.",
    ),
) -> None:
    """The best trials of a study and the importance of each searched setting.

    The best trials' objective (± its spread over seeds), searched settings and run folders;
    the importances are Optuna's, over the complete trials.

    Example: [bold]wae sweep show runs/sweeps/ring-lambda --report best.html[/bold]
    """
    from wae_toolkit.errors import UsageError
    from wae_toolkit.sweep import find_study, study_overview
    from wae_toolkit.sweep.study import import_optuna

    if top < 1:
        raise UsageError(f"--top must be a whole number >= 1; got {top}.")
    import_optuna().logging.set_verbosity(logging.ERROR)
    view = study_overview(find_study(study, storage), top=top)
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(view.counts.items()))
    out.print(
        f"Study '{escape(view.name)}': minimising {view.objective}; {sum(view.counts.values())} "
        f"trials ({counts or 'none yet'}).",
        soft_wrap=True,
    )
    if view.best:
        names = sorted({k for row in view.best for k in row.params})
        title = "The best trial:" if len(view.best) == 1 else f"The best {len(view.best)} trials:"
        out.print(title)
        table = Table()
        for col in ["trial", view.objective, *names, "run folder"]:
            table.add_column(escape(col), overflow="fold", no_wrap=col == "run folder")
        for row in view.best:
            cells = [_value(row.params[n]) if n in row.params else "-" for n in names]
            table.add_row(
                str(row.number),
                _objective(row),
                *map(escape, cells),
                escape("\n".join(row.run_dirs)),
            )
        out.print(table)
    else:
        out.print("No complete trial yet.")
    if view.importances:
        done = view.counts.get("COMPLETE", 0)
        out.print(f"The importance of each setting (Optuna's, over {done} complete trials):")
        table = Table()
        table.add_column("setting")
        table.add_column("importance", justify="right")
        for name, value in view.importances.items():
            table.add_row(escape(name), f"{value:.3f}")
        out.print(table)
    else:
        out.print(f"No importances: {escape(view.importance_note or '')}", soft_wrap=True)
    if report is not None:
        _report([d for row in view.best for d in row.run_dirs], report)


def _report(run_dirs: list[str], target: str) -> None:
    from wae_toolkit.errors import UsageError
    from wae_toolkit.report import write_report

    found = [d for d in run_dirs if Path(d).is_dir()]
    if not found:
        raise UsageError("No run folder of the best trials is left to report on.")
    with err.status(f"Writing the comparison of {len(found)} run(s) ..."):
        path = write_report(found, target)
    out.print(f"Comparison of the best trials -> {escape(str(path))}", soft_wrap=True)
