"""Terminal output of ``wae run``: a rich progress bar and the closing summary table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from wae_toolkit.engine.callbacks import Callback, RunResult

__all__ = ["RichProgress", "print_summary"]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class RichProgress(Callback):
    """Shows epoch, step and the latest losses while training runs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.epochs = 0
        self._eval = ""

    def on_start(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]
        self.console.print(
            f"Training on {info['data']} ({info['train_size']} train / {info['test_size']} "
            f"held-out) on {info['device']}; run folder [bold]{info['run_dir']}[/bold]"
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=info["total_steps"], epoch=f"1/{self.epochs}", losses=""
        )

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        parts = [
            f"{k} {_fmt(logs[k])}" for k in ("loss", "cost", "penalty", "critic_loss") if k in logs
        ]
        self.progress.update(
            self.task,
            completed=step,
            epoch=f"{epoch + 1}/{self.epochs}",
            losses="  ".join(parts) + self._eval,
        )

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        if "test_mmd" in logs:
            self._eval = f"  test MMD {_fmt(logs['test_mmd'])} (floor {_fmt(logs['prior_mmd'])})"
        self.progress.update(self.task, completed=step)

    def stop(self) -> None:
        self.progress.stop()


def print_summary(console: Console, result: RunResult) -> None:
    """The table printed when a run ends: metrics and where every file is."""
    s = result.summary
    table = Table(title=f"Run finished: {result.run_dir}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row(
        "time", f"{s['seconds']:.1f} s, {s['steps']} steps, {s['samples_per_second']:.0f} samples/s"
    )
    if s.get("stopped"):
        table.add_row("stopped early", str(s["stopped"]))
    if s.get("skipped_steps"):
        table.add_row(
            "skipped steps",
            f"{s['skipped_steps']} (non-finite loss or gradient; their updates were dropped)",
        )
    table.add_row("held-out reconstruction cost", _fmt(s["test_cost"]))
    table.add_row(
        "held-out MMD(codes, prior)",
        f"{_fmt(s['test_mmd'])} (two prior batches: {_fmt(s['prior_mmd'])})",
    )
    if result.replaced:
        table.add_row("replaced", f"the previous run's {len(result.replaced)} files in this folder")
    for path in result.files:
        table.add_row(path.stem, str(path))
    table.add_row("metrics", str(result.run_dir / "metrics.jsonl"))
    table.add_row("configuration", str(result.run_dir / "config.json"))
    console.print(table)
    pics = [str(p) for p in result.files if p.suffix == ".png"]
    if pics:
        console.print("Pictures: " + ", ".join(pics))
