"""Terminal output of ``wae run``: the live line, the log lines and the closing summary.

:func:`make_progress` picks the display. When stdout and stderr are both terminals,
:class:`RichProgress` keeps one live line on stderr, fitted to the terminal's width at every
refresh: ``epoch i/N``, a bar, ``step/total steps`` and ``elapsed < remaining`` always, then as
many of the newest losses and held-out metrics as fit, whole (the least important dropped
first: the critic's loss, the prior's floor, the penalty, the cost, the held-out MMD, the loss
last). Otherwise (a log file, a pipe, nohup, a job scheduler) :class:`PlainProgress` prints
to stdout one plain line per held-out evaluation, never cut to a width. Both print the start
line; :func:`print_summary` prints the closing table, with the files' paths below it, whole.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from wae_toolkit.cli.terminal import print_paths
from wae_toolkit.engine.callbacks import Callback, RunResult

__all__ = ["LiveLine", "PlainProgress", "RichProgress", "make_progress", "print_summary"]

#: The live line's metrics: (key, label, importance: 0 is dropped last), in the line's order.
_LIVE_METRICS = (
    ("loss", "loss", 0),
    ("cost", "cost", 2),
    ("penalty", "penalty", 3),
    ("critic_loss", "critic", 5),
    ("test_mmd", "test MMD^2", 1),
    ("prior_mmd", "floor", 4),
)
#: The bar's width: a third of what the fixed parts leave, within these bounds.
BAR_MIN, BAR_MAX = 10, 40
#: Held-out metrics, first in a log line's held-out part (the others follow in their order).
_EVAL_FIRST = ("test_cost", "test_mmd", "prior_mmd")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(max(seconds, 0))))


def _start_line(console: Console, info: dict[str, Any]) -> None:
    """What trains where, and the run folder on a line of its own (never cut)."""
    resumed, data = info.get("resumed_from_step"), str(info["data"])
    if f"{info['train_size']:,} train" not in data:  # the data's description gives the sizes
        data += f" ({info['train_size']:,} train / {info['test_size']:,} held-out)"
    where = f"Training on {data} on {info['device']}"
    if resumed is not None:
        where += f", resuming at step {resumed} of {info['total_steps']}"
    console.print(escape(where + "."), soft_wrap=not console.is_terminal)  # a log: one line
    print_paths(console, "Run folder:", [info["run_dir"]])


class _Clock:
    """The run's elapsed time and the remaining time at the training's own rate."""

    def __init__(self) -> None:
        self.start = self.train_start = time.monotonic()
        self.first_step = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self, step: int, total: int) -> float | None:
        done, spent = step - self.first_step, time.monotonic() - self.train_start
        if step >= total:
            return 0.0
        return None if done <= 0 or spent <= 0 else (total - step) * spent / done


class LiveLine:
    """The live line's state and its rendering at any width (a rich renderable)."""

    def __init__(self) -> None:
        self.epoch, self.epochs, self.step, self.total = 1, 1, 0, 1
        self.losses: dict[str, float] = {}
        self.evaluation: dict[str, float] = {}
        self.clock = _Clock()

    def metrics(self, room: int) -> str:
        """The metrics that fit in ``room`` cells: whole, the least important dropped first."""
        values = self.losses | self.evaluation
        shown = [(imp, f"{label} {_fmt(values[k])}", i)
                 for i, (k, label, imp) in enumerate(_LIVE_METRICS) if k in values]  # fmt: skip
        kept: list[tuple[int, str, int]] = []
        for item in sorted(shown):
            if sum(len(t) + 2 for _, t, _ in [*kept, item]) - 2 > room:
                break
            kept.append(item)
        return "  ".join(t for _, t, _ in sorted(kept, key=lambda item: item[2]))

    def render(self, console: Console, width: int) -> Text:
        """The line at ``width`` cells (from 60 columns every fixed part and the bar fit)."""
        head = f"epoch {self.epoch}/{self.epochs}"
        steps = f"{self.step}/{self.total} steps"
        times = f"{_clock(self.clock.elapsed())} < "
        times += _clock(self.clock.remaining(self.step, self.total))
        fixed = len(head) + len(steps) + len(times) + 3
        if width - fixed < BAR_MIN:  # very large numbers in a narrow terminal
            steps, fixed = steps.removesuffix(" steps"), fixed - len(" steps")
        bar = max(1, min(BAR_MAX, max(BAR_MIN, (width - fixed) // 3), width - fixed))
        line = Text.assemble((head, "bold"), " ")
        line.append_text(_bar(console, self.step, self.total, bar))
        line.append_text(Text.assemble(" ", (steps, "green"), " ", (times, "cyan")))
        metrics = self.metrics(width - fixed - bar - 2)
        if metrics:
            line.append("  " + metrics)
        line.truncate(width, overflow="crop")
        return line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.render(console, options.max_width)


def _bar(console: Console, step: int, total: int, width: int) -> Text:
    """A rich progress bar of ``width`` cells as text."""
    bar = ProgressBar(total=max(total, 1), completed=min(step, total), width=width)
    text = Text()
    for seg in console.render(bar, console.options.update_width(width)):
        if not seg.control and seg.text != "\n":
            text.append(seg.text, seg.style)
    text.pad_right(width - text.cell_len)
    return text


class RichProgress(Callback):
    """The live line on ``console`` (a terminal), refreshed four times a second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.line = LiveLine()
        self.live = Live(self.line, console=console, refresh_per_second=4, transient=False)
        self._started = False

    def on_start(self, info: dict[str, Any]) -> None:
        self.line.epochs, self.line.total = info["epochs"], max(1, info["total_steps"])
        _start_line(self.console, info)
        self.line.clock = _Clock()
        self.live.start()
        self._started = True

    def on_train_start(self, epoch: int, step: int) -> None:
        clock = self.line.clock
        clock.train_start, clock.first_step = time.monotonic(), step
        self.line.epoch, self.line.step = min(epoch + 1, self.line.epochs), step

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self.line.evaluation = dict(metrics)  # the newest evaluation, shown at once
        self._refresh()

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        self.line.losses, self.line.step, self.line.epoch = dict(logs), step, epoch + 1

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        self.line.step = step
        self._refresh()

    def _refresh(self) -> None:
        if self._started:
            self.live.refresh()

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.live.stop()


class PlainProgress(Callback):
    """One plain line per held-out evaluation on ``console`` (a file or a pipe): epoch, step,
    the epoch's mean losses, the held-out metrics and the elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.epochs, self.total = 1, 1
        self.clock = _Clock()
        self.training = False
        self.losses: dict[str, float] = {}
        self.pending: tuple[int, int, dict[str, float]] | None = None

    def on_start(self, info: dict[str, Any]) -> None:
        self.epochs, self.total = info["epochs"], info["total_steps"]
        self.clock = _Clock()
        _start_line(self.console, info)

    def on_train_start(self, epoch: int, step: int) -> None:
        self.training = True

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        self.losses = dict(logs)

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self.pending = (epoch, step, dict(metrics))
        if not self.training:  # before the first step: no losses yet
            self._flush({})

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        if self.pending is not None:  # the evaluation that ended this epoch
            self._flush(logs)

    def _flush(self, losses: dict[str, float]) -> None:
        assert self.pending is not None
        epoch, step, metrics = self.pending
        self.pending = None
        held_out = [k for k in _EVAL_FIRST if k in metrics]
        held_out += [k for k in metrics if k not in _EVAL_FIRST]
        parts = [f"epoch {epoch}/{self.epochs}", f"step {step}/{self.total}"]
        parts += [f"{k} {_fmt(v)}" for k, v in losses.items() if k not in metrics]
        parts += [f"{k} {_fmt(metrics[k])}" for k in held_out]
        parts.append(f"elapsed {_clock(self.clock.elapsed())}")
        self.console.print("  ".join(parts), markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self.pending is not None:
            self._flush(self.losses)


def make_progress(out: Console, err: Console) -> RichProgress | PlainProgress:
    """The live line on ``err`` when both consoles are terminals, else log lines on ``out``."""
    if out.is_terminal and err.is_terminal:
        return RichProgress(err)
    return PlainProgress(out)


def print_summary(console: Console, result: RunResult) -> None:
    """What is printed when a run ends: a table of its numbers, then where its files are (whole
    paths on lines of their own)."""
    s = result.summary
    print_paths(console, "Run finished:", [result.run_dir])
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "time", f"{s['seconds']:.1f} s, {s['steps']} steps, {s['samples_per_second']:.0f} samples/s"
    )
    if s.get("stopped"):
        table.add_row("stopped early", escape(str(s["stopped"])))
    if s.get("skipped_steps"):
        table.add_row(
            "skipped steps",
            f"{s['skipped_steps']} (non-finite loss or gradient; their updates were dropped)",
        )
    table.add_row("held-out reconstruction cost", _fmt(s["test_cost"]))
    table.add_row(
        "held-out MMD^2(codes, prior)",
        f"{_fmt(s['test_mmd'])} (two prior batches: {_fmt(s['prior_mmd'])})",
    )
    if result.replaced:
        table.add_row("replaced", f"the previous run's {len(result.replaced)} files in this folder")
    console.print(table)
    run = result.run_dir
    files = [p for p in result.files if p.suffix != ".png"]
    print_paths(console, "Files:", [*files, run / "metrics.jsonl", run / "config.json"])
    print_paths(console, "Pictures:", [p for p in result.files if p.suffix == ".png"])
