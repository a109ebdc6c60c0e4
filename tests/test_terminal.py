"""What ``wae`` shows in a terminal 60, 80 and 120 columns wide, and in a log file.

The CLI runs under a real pseudo-terminal whose size is set as ``stty cols N`` sets it: the
live line of ``wae run`` keeps ``epoch i/N``, its bar, its steps and ``elapsed < remaining``,
dropping metrics whole; tables keep their right border; paths are never cut. Piped, ``wae run``
prints one plain line per held-out evaluation instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from wae_toolkit.cli.progress import LiveLine, PlainProgress, RichProgress
from wae_toolkit.cli.terminal import fits, print_fitted, print_paths, rst_markup

termios = pytest.importorskip("termios")  # pseudo-terminals: POSIX only

WIDTHS = (60, 80, 120)
TRAIN = ["--data", "ring", "--penalty", "gan-js", "--epochs", "2", "--data-opt", "limit=200"]
TRAIN += ["--eval-every", "1", "--log-every", "1", "--device", "cpu"]
#: A run folder named as ``wae run`` names them (``runs list`` must show it whole).
LONG_NAME = "ring-gan-js-20250101-120000"
BOX_LEFT, BOX_RIGHT = "┏┃┡│└┌├┣┗", "┓┃┩│┘┐┤┫┛"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>]")
TIMES = re.compile(r"\d+:\d\d:\d\d < (\d+:\d\d:\d\d|-:--:--)")
#: A metric of the live line: its label and a number, whole.
METRIC = re.compile(r"(loss|cost|penalty|critic|test MMD\^2|floor) (-?\d[\d.e+-]*|-?inf|nan)")

#: Runs in a pseudo-terminal: sets its size (TIOCSWINSZ, what ``stty cols`` does) before each
#: group of commands, and runs each through ``wae``'s entry point, between marker lines. One
#: process, so that torch is imported once.
DRIVER = """
import fcntl, json, shutil, struct, sys, termios
from wae_toolkit.cli.app import main

for step in json.loads(sys.argv[1]):
    if step[0] == "size":
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 40, step[1], 0, 0))
    elif step[0] == "copy":
        shutil.copytree(step[1], step[2])
    else:
        print(f"@@@ {step[0]}", flush=True)
        try:
            main(step[1])
        except SystemExit as exc:
            print(f"@@@ exit {exc.code}", flush=True)
"""


def _child_env() -> dict[str, str]:
    """The environment without what would override the terminal's own size or kind."""
    drop = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"}


def _in_pty(steps: list, timeout: float = 240.0) -> str:
    """The output of :data:`DRIVER` running ``steps`` with a pseudo-terminal as stdin, stdout
    and stderr, with its escape sequences removed."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(steps)],
        stdin=slave, stdout=slave, stderr=slave, env=_child_env(), close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    return ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def screens() -> Iterator[tuple[Path, dict[tuple[int, str], list[str]]]]:
    """The lines (each redraw of the live line a line of its own) of ``wae run``, ``wae runs
    list``, ``wae plugins list`` and ``wae plugins show gan-js`` at each width, by (width,
    command); and the folder of the runs (short, so that its files' paths fit 60 columns)."""
    with tempfile.TemporaryDirectory(
        prefix="wt", dir="/tmp" if os.path.isdir("/tmp") else None
    ) as d:
        root = Path(d)
        steps: list = []
        for w in WIDTHS:
            steps += [["size", w], [f"{w} run", ["run", *TRAIN, "--out", str(root / f"r{w}")]]]
            if w == WIDTHS[0]:
                steps.append(["copy", str(root / f"r{w}"), str(root / LONG_NAME)])
            steps += [
                [f"{w} runs list", ["runs", "list", str(root)]],
                [f"{w} plugins list", ["plugins", "list"]],
                [f"{w} plugins show", ["plugins", "show", "gan-js"]],
            ]
        sections: dict[tuple[int, str], list[str]] = {}
        current: list[str] = []
        for line in re.split(r"\r\n|\r|\n", _in_pty(steps)):
            if line.startswith("@@@ exit"):
                assert line == "@@@ exit 0", "\n".join(current)
            elif line.startswith("@@@ "):
                width, _, name = line[4:].partition(" ")
                current = sections.setdefault((int(width), name), [])
            elif line.strip():
                current.append(line)
        assert len(sections) == 4 * len(WIDTHS), sections.keys()
        yield root, sections


def _table_rows(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln[:1] in BOX_LEFT]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_live_line_keeps_epoch_bar_steps_and_times_and_drops_metrics_whole(screens, width):
    root, sections = screens
    frames = [ln for ln in sections[width, "run"] if ln.startswith("epoch ")]
    assert frames
    for frame in frames:
        assert re.match(r"epoch [12]/2 [━╸╺ ]+ \d/4 steps ", frame), frame
        times = TIMES.search(frame)
        assert times, frame
        metrics = frame[times.end() :]
        assert metrics == "" or metrics.startswith("  "), frame
        for token in filter(None, metrics.strip().split("  ")):
            assert METRIC.fullmatch(token), (token, frame)
    last = frames[-1]
    assert last.startswith("epoch 2/2 ━") and "4/4 steps" in last and TIMES.search(last)
    if width >= 80:
        assert "loss " in last
    if width >= 120:  # the newest held-out MMD, not an earlier one
        evals = [json.loads(ln) for ln in (root / f"r{width}" / "metrics.jsonl").open()]
        newest = [r for r in evals if r["kind"] == "eval"][-1]
        assert f"test MMD^2 {newest['test_mmd']:.4g}" in last, last


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", ["run", "runs list", "plugins list", "plugins show"])
def test_no_line_is_wider_than_the_terminal_and_tables_keep_their_borders(screens, width, command):
    _, sections = screens
    lines = sections[width, command]
    too_wide = [ln for ln in lines if len(ln) > width]
    assert not too_wide, "\n".join(too_wide)
    rows = _table_rows(lines)
    assert rows, "\n".join(lines)
    for row in rows:
        assert row[-1] in BOX_RIGHT, row
    assert all("…" not in ln for ln in lines), "\n".join(lines)  # no cell cut short


@pytest.mark.parametrize("width", WIDTHS)
def test_paths_and_names_are_never_cut(screens, width):
    root, sections = screens
    run = root / f"r{width}"
    text = sections[width, "run"]
    assert f"Run folder: {run}" in text and f"Run finished: {run}" in text
    for name in ("model.safetensors", "metrics.jsonl", "config.json", "latent.png"):
        assert any(str(run / name) in ln for ln in text), name
    listed = sections[width, "runs list"]
    for name in [LONG_NAME, *(f"r{w}" for w in WIDTHS if w <= width)]:  # the runs so far
        assert any(re.search(rf"│ {name} +│", ln) for ln in listed), name
    for name in ("image-folder", "swiss-roll", "wgan-clip", "gaussian"):
        assert any(f" {name} " in ln for ln in sections[width, "plugins list"]), name
    shown = sections[width, "plugins show"]
    for option in ("critic_steps", "prior_logit", "hidden"):
        assert any(f"│ {option} " in ln for ln in shown), option


@pytest.mark.parametrize("width", WIDTHS)
def test_plugin_docstrings_are_shown_as_text(screens, width):
    _, sections = screens
    for command in ("plugins list", "plugins show"):
        text = "\n".join(sections[width, command])
        assert "``" not in text and ":class:`" not in text and ":meth:`" not in text
    # a wide terminal gets every column; a narrow one the source below each description
    headers = [ln for ln in sections[width, "plugins list"] if "┃ kind" in ln]
    assert ("distribution" in headers[0]) == (width >= 120), headers
    assert any("from wae-toolkit " in ln for ln in sections[width, "plugins list"]) != (
        width >= 120
    )


def test_a_log_file_gets_one_plain_line_per_evaluation(tmp_path):
    run = tmp_path / "r"
    with (tmp_path / "train.log").open("w") as f:  # as `wae run ... > train.log 2>&1`
        cmd = [sys.executable, "-m", "wae_toolkit", "run", *TRAIN, "--out", str(run)]
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_child_env(), timeout=240)
    log = (tmp_path / "train.log").read_text()
    assert "\r" not in log and "\x1b" not in log
    lines = log.splitlines()
    evals = [ln for ln in lines if ln.startswith("epoch ")]
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").open()]
    assert len(evals) == len([r for r in records if r["kind"] == "eval"]) == 3, log
    for i, line in enumerate(evals):
        assert re.match(rf"epoch {i}/2  step {2 * i}/4  ", line), line
        assert re.search(r"  test_cost \S+  test_mmd \S+  prior_mmd \S+", line), line
        assert re.search(r"  elapsed \d+:\d\d:\d\d$", line), line
        assert (" loss " in line and " cost " in line and " critic_loss " in line) == (i > 0)
    assert max(len(ln) for ln in evals) > 80  # not cut to the 80 columns of a non-terminal
    newest = [r for r in records if r["kind"] == "eval"][-1]
    assert f"test_mmd {newest['test_mmd']:.4g}" in evals[-1]
    assert lines[0].startswith("Training on ring: 200 train") and lines[0].endswith(" on cpu.")
    assert f"Run folder: {run}" in lines and f"Run finished: {run}" in lines  # whole lines
    assert f"Files: {run / 'model.safetensors'}, " in log


# ---------------------------------------------------------------------------------------------
# the same parts in this process, with fake callback calls


INFO = {
    "run_dir": Path("/tmp/x"), "device": "cpu", "epochs": 3, "total_steps": 6, "train_size": 200,
    "test_size": 800, "data": "ring", "resumed_from_step": None,
}  # fmt: skip


def _sequence(progress) -> list[float]:
    """The loop's calls for 3 epochs of 2 steps, evaluating after each; the MMDs announced."""
    announced = [0.5]
    progress.on_start(INFO)
    progress.on_evaluate(0, 0, {"test_cost": 3.0, "test_mmd": 0.5, "prior_mmd": 0.01})
    progress.on_train_start(0, 0)
    for epoch in range(3):
        step = 2 * (epoch + 1)
        logs = {"loss": 1.0 / step, "cost": 0.5 / step, "penalty": 0.1, "critic_loss": 1.3}
        progress.on_log(step, epoch, logs)
        progress.on_step_end(step, epoch)
        announced.append(0.25 / (epoch + 1))
        metrics = {"test_cost": 2.0, "test_mmd": announced[-1], "prior_mmd": 0.01}
        progress.on_evaluate(epoch + 1, step, metrics)
        progress.on_epoch_end(epoch, step, logs | metrics)
        if isinstance(progress, RichProgress):
            shown = progress.line.render(progress.console, 120).plain
            assert f"test MMD^2 {announced[-1]:.4g}" in shown, shown
    return announced


def test_the_live_line_shows_the_newest_held_out_mmd():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    progress = RichProgress(console)
    announced = _sequence(progress)
    progress.stop()
    final = console.file.getvalue().split("\r")[-1]
    assert f"test MMD^2 {announced[-1]:.4g}" in final and "epoch 3/3" in final, final


def test_plain_progress_prints_a_whole_line_per_evaluation():
    console = Console(file=io.StringIO(), width=40)
    announced = _sequence(PlainProgress(console))
    lines = console.file.getvalue().splitlines()
    evals = [ln for ln in lines if ln.startswith("epoch ")]
    assert [re.match(r"epoch (\d)/3  step (\d)/6  ", ln).groups() for ln in evals] == [
        ("0", "0"), ("1", "2"), ("2", "4"), ("3", "6"),
    ]  # fmt: skip
    for line, mmd in zip(evals, announced, strict=True):
        assert f"test_mmd {mmd:.4g}  prior_mmd 0.01  elapsed 0:00:00" in line
    assert "loss 0.1667  cost 0.08333  penalty 0.1  critic_loss 1.3" in evals[-1]
    assert max(len(ln) for ln in evals) > 40  # never cut to the console's width


def _live_line(width: int) -> str:
    line = LiveLine()
    line.epoch, line.epochs, line.step, line.total = 170, 300, 51000, 90000
    line.losses = {"loss": 0.6137, "cost": 0.5012, "penalty": 0.01122, "critic_loss": 1.386}
    line.evaluation = {"test_cost": 0.5, "test_mmd": 0.01306, "prior_mmd": 0.006414}
    line.clock.start -= 3723  # an hour in
    line.clock.train_start, line.clock.first_step = line.clock.start, 0
    return line.render(Console(width=width, file=io.StringIO()), width).plain


@pytest.mark.parametrize("width", range(60, 181, 7))
def test_the_live_line_fits_any_width_from_60_columns(width):
    shown = _live_line(width)
    assert len(shown) <= width, shown
    assert re.match(r"epoch 170/300 ━+[━╸╺ ]* 51000/90000 steps 1:02:0\d < 0:4\d:\d\d", shown)
    metrics = shown[TIMES.search(shown).end() :].split("  ")[1:]
    assert all(METRIC.fullmatch(m) for m in metrics), shown
    # whole metrics, the least important dropped first
    order = ["loss", "test MMD^2", "cost", "penalty", "floor", "critic"]
    labels = [m.rpartition(" ")[0] for m in metrics]
    assert sorted(labels, key=order.index) == order[: len(labels)], shown
    if width >= 80:
        assert "loss 0.6137" in shown
    if width >= 180:
        assert labels == ["loss", "cost", "penalty", "critic", "test MMD^2", "floor"]


def test_rst_in_docstrings_becomes_text():
    markup = rst_markup(
        "Uses :class:`~wae_toolkit.plugins.Prior` and :meth:`Prior.sample`, ``K * W1(Q, P)`` "
        "[in [0, 1]], `a link <https://x.org>`_ and `text`. Example::"
    )
    assert Text.from_markup(markup).plain == (
        "Uses Prior and Prior.sample, K * W1(Q, P) [in [0, 1]], a link and text. Example:"
    )


def test_a_table_too_wide_for_the_console_keeps_its_borders_and_its_first_columns():
    columns = [Column("name", no_wrap=True), Column("kind", no_wrap=True), Column("words")]
    rows = [[f"name-{i}-with-a-long-tail", "penalty", "a description " * 6] for i in range(3)]
    for width, joined in ((120, False), (50, True)):
        console = Console(width=width, file=io.StringIO(), record=True)
        print_fitted(console, columns, rows, keep=1, joined="rest", title=["a", "table"])
        text = console.export_text()
        assert ("┃ rest" in text) == joined and "…" not in text
        for line in text.splitlines()[1:]:
            assert len(line) <= width and line[-1] in BOX_RIGHT, text
        assert all(f"│ name-{i}-with-a-long-tail │" in text for i in range(3))
    narrow = Console(width=30, file=io.StringIO())
    too_narrow = [Column("a", no_wrap=True), Column("b", no_wrap=True)]
    table = Table(*too_narrow)
    table.add_row("x" * 20, "y" * 20)
    assert not fits(narrow, table)


def test_a_path_longer_than_the_console_is_printed_whole():
    long = "/tmp/" + "a-long-folder-name/" * 3 + "model.safetensors"
    for terminal, lines in ((True, ["Files:", f"{long},", "/tmp/b.json"]), (False, None)):
        console = Console(width=30, file=io.StringIO(), force_terminal=terminal, color_system=None)
        print_paths(console, "Files:", [long, "/tmp/b.json"])
        assert console.file.getvalue().splitlines() == (lines or [f"Files: {long}, /tmp/b.json"])
