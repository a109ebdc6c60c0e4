"""Faults and hostile run folders against ``wae run`` (fresh, ``--overwrite``, ``--resume``).

The promises tested here (docs/reliability.md): nothing is written outside the run folder (no
write follows a symbolic link), nothing the user had is removed (``--overwrite`` removes only
what a run wrote), one run per folder at a time (an OS lock that dies with its process), a full
disk stops with one sentence and a resumable state, a resumed run refuses settings or data that
changed, damaged checkpoints are named, and Ctrl-C/SIGTERM are honoured within one step, one
critic update or one pre-training step. Every refusal is exit 1 or 2 with one sentence per line
and no traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wae_toolkit.api import train
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.checkpoint import (
    METADATA_KEY,
    InvalidCheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    newest_checkpoint,
)
from wae_toolkit.engine.faults import TrainingInterrupted
from wae_toolkit.errors import UsageError
from wae_toolkit.runs import safe_io as safe_io

from .test_resume import _same_run
from .test_validation import assert_sentence, error_lines, wae

RUN_FILES = ("config.json", "metrics.jsonl", "model.safetensors", "summary.json")
FIGURES = ("samples.png", "latent.png", "losses.png", "reconstructions.png", "interpolations.png")


def _cfg(out: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(
        data="digits",
        data_opts={"limit": 300},
        epochs=2,
        device="cpu",
        eval_every=1,
        log_every=1,
        checkpoint_every=2,
        out=str(out),
    )
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: 3 steps per epoch, 2 epochs, checkpoints at steps 2, 4 and 6."""
    out = tmp_path_factory.mktemp("base") / "run"
    train(_cfg(out))
    return out


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def _stopped(tmp_path: Path, at: int = 2, **kw: Any) -> Path:
    """A run stopped by a crash after its checkpoint of step ``at`` (before it finished)."""
    from .callbacks import CrashAt

    out = tmp_path / "stopped"
    with pytest.raises(RuntimeError):
        train(_cfg(out, checkpoint_every=at, **kw), callback=CrashAt(at + 1))
    return out


@pytest.fixture(scope="module")
def stopped_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _stopped(tmp_path_factory.mktemp("stopped"))


@pytest.fixture
def stopped(stopped_base: Path, tmp_path: Path) -> Path:
    """A copy of a run stopped after its checkpoint of step 2 (of 6)."""
    copy = tmp_path / "stopped"
    shutil.copytree(stopped_base, copy)
    return copy


def tree(root: Path) -> dict[str, Any]:
    """Every entry under ``root`` without following links: path -> bytes, 'dir' or a link."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                found[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = p.read_bytes()
    return found


def assert_clean(code: int, output: str, codes: tuple[int, ...] = (1, 2)) -> list[str]:
    """Exit code in ``codes``, no traceback, every ``Error:`` line one sentence."""
    assert code in codes, output
    assert "Traceback" not in output, output
    lines = error_lines(output)
    if code:
        assert lines, output
    for line in lines:
        assert_sentence(line.removeprefix("Error:").strip())
    return lines


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every run folder, with a file and a folder a link can point to."""
    place = tmp_path / "outside"
    (place / "folder").mkdir(parents=True)
    (place / "file.txt").write_text("the user's file\n")
    (place / "folder" / "keep.txt").write_text("keep me\n")
    return place


# ---------------------------------------------------------------------------------------------
# symbolic links in a run folder


@pytest.mark.parametrize("name", ["metrics.jsonl", "samples.png", "latent.png", "summary.json"])
@pytest.mark.parametrize("target", ["file", "missing"])
def test_resume_never_writes_through_a_link_in_the_run_folder(stopped, outside, name, target):
    out = stopped
    dest = outside / ("file.txt" if target == "file" else "created-by-wae.txt")
    (out / name).unlink(missing_ok=True)
    (out / name).symlink_to(dest)
    before, inside = tree(outside), tree(out)
    code, output = wae("run", "--resume", str(out))
    lines = assert_clean(code, output, (2,))
    assert name in lines[0] and "symbolic link" in lines[0]
    assert tree(outside) == before and tree(out) == inside


@pytest.mark.parametrize("name", ["checkpoints", "tensorboard"])
def test_resume_refuses_a_linked_folder(stopped, outside, name):
    out = stopped
    if (out / name).exists():
        shutil.move(str(out / name), str(outside / "moved"))
    (out / name).symlink_to(outside / "folder", target_is_directory=True)
    before = tree(outside)
    code, output = wae("run", "--resume", str(out))
    assert name in assert_clean(code, output, (2,))[0]
    assert tree(outside) == before


def test_atomic_writes_replace_a_link_never_its_target(tmp_path, outside):
    """Whatever the checks before, the writers themselves never follow a link."""
    link = tmp_path / "summary.json"
    link.symlink_to(outside / "file.txt")
    with pytest.raises(safe_io.RunWriteError, match="symbolic link"):
        safe_io.write_json(link, {"a": 1})
    (tmp_path / "metrics.jsonl").symlink_to(outside / "new.txt")
    with pytest.raises(safe_io.RunWriteError, match="symbolic link"):
        safe_io.AppendFile(tmp_path / "metrics.jsonl")
    # a link that appears after the check is replaced by the rename, never written through
    target = tmp_path / "config.json"
    real_check = safe_io._check_target
    safe_io._check_target = lambda path, what: None
    try:
        target.symlink_to(outside / "file.txt")
        safe_io.write_json(target, {"b": 2})
    finally:
        safe_io._check_target = real_check
    assert not target.is_symlink() and json.loads(target.read_text()) == {"b": 2}
    assert (outside / "file.txt").read_text() == "the user's file\n"
    assert not (outside / "new.txt").exists()


@pytest.mark.parametrize("writer", ["image grid", "scatter", "loss curves", "report"])
def test_figures_and_reports_never_write_through_a_link(finished, tmp_path, outside, writer):
    from wae_toolkit.report import write_report
    from wae_toolkit.runs import figures
    from wae_toolkit.runs.folder import read_metrics

    link = tmp_path / "figure.png"
    link.symlink_to(outside / "file.txt")
    write = {
        "image grid": lambda: figures.save_image_grid(link, torch.rand(4, 1, 8, 8)),
        "scatter": lambda: figures.save_scatter(link, "t", {"a": torch.rand(5, 2)}),
        "loss curves": lambda: figures.save_loss_curves(link, read_metrics(finished)),
        "report": lambda: write_report([finished], link.with_suffix(".html"), overwrite=True),
    }[writer]
    if writer == "report":
        link.rename(link.with_suffix(".html"))
    with pytest.raises(safe_io.RunWriteError, match="symbolic link"):
        write()
    assert (outside / "file.txt").read_text() == "the user's file\n"


def test_a_link_created_in_place_of_the_metrics_file_is_not_followed(tmp_path, outside):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n')
    writer = safe_io.AppendFile(path)
    writer.write_line('{"b": 2}')
    writer.close()
    path.unlink()
    path.symlink_to(outside / "file.txt")
    with pytest.raises(safe_io.RunWriteError):
        safe_io.AppendFile(path, keep_lines=1)
    assert (outside / "file.txt").read_text() == "the user's file\n"


# ---------------------------------------------------------------------------------------------
# --overwrite


def test_overwrite_refuses_a_folder_that_is_not_a_wae_run(tmp_path):
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "notes.txt").write_text("notes")
    (out / "config.json").write_text('{"learning_rate": 0.1}')
    (out / "checkpoints" / "model_epoch99.pt").write_bytes(b"weights")
    before = tree(out)
    code, output = wae("run", "--epochs", "1", "--out", str(out), "--overwrite")
    line = assert_clean(code, output, (2,))[0]
    assert "holds no wae run" in line
    assert tree(out) == before


def test_overwrite_replaces_only_what_the_run_wrote(run, tmp_path):
    (run / "notes.txt").write_text("my notes")
    (run / "checkpoints" / "model_epoch99.pt").write_bytes(b"weights of another tool")
    (run / "export").mkdir()
    (run / "export" / "decoder.onnx").write_bytes(b"onnx")
    old_checkpoints = {p.name for p in list_checkpoints(run)}
    code, output = wae(
        "run", "--epochs", "1", "--data-opt", "limit=300", "--checkpoint-every", "100",
        "--out", str(run), "--overwrite", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, output
    assert (run / "notes.txt").read_text() == "my notes"
    assert (run / "checkpoints" / "model_epoch99.pt").read_bytes() == b"weights of another tool"
    assert (run / "export" / "decoder.onnx").read_bytes() == b"onnx"
    assert not old_checkpoints & {p.name for p in list_checkpoints(run)}  # the old ones went
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1


@pytest.mark.parametrize("name", ["checkpoints", "samples.png", "metrics.jsonl"])
def test_overwrite_never_follows_a_link_and_removes_nothing_first(run, outside, name):
    if (run / name).is_dir():
        shutil.rmtree(run / name)
    else:
        (run / name).unlink()
    target = outside / ("folder" if name == "checkpoints" else "file.txt")
    (run / name).symlink_to(target, target_is_directory=target.is_dir())
    before_out, before_in = tree(outside), tree(run)
    code, output = wae("run", "--epochs", "1", "--out", str(run), "--overwrite")
    line = assert_clean(code, output, (2,))[0]
    assert name in line and "symbolic link" in line
    assert tree(outside) == before_out
    assert tree(run) == before_in  # nothing was half-deleted


def test_an_out_name_longer_than_the_file_system_allows_is_one_sentence(tmp_path):
    out = tmp_path / ("a" * 300)
    code, output = wae("run", "--epochs", "1", "--out", str(out))
    line = assert_clean(code, output, (2,))[0]
    assert "300 characters" in line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# one run per folder


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from wae_toolkit.runs.safe_io import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_a_second_process_in_the_same_folder_is_refused_until_the_first_dies(stopped):
    out = stopped
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = tree(out)
        for args in (["--resume", str(out)], ["--out", str(out), "--overwrite", "-e", "1"]):
            code, output = wae("run", *args)
            line = assert_clean(code, output, (2,))[0]
            assert "in use" in line and str(holder.pid) in line
        assert tree(out) == before
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock
        holder.wait()
    code, output = wae("run", "--resume", str(out))
    assert code == 0, output


def test_two_resumes_at_once_do_not_interleave(tmp_path):
    """The audit's case: two `wae run --resume RUN` started together; one is refused."""
    out = _stopped(tmp_path, epochs=12)
    cmd = [sys.executable, "-m", "wae_toolkit", "run", "--resume", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"]
    results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in procs]  # type: ignore
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(text for code, text in results if code == 2)
    assert "in use" in refused and "Traceback" not in refused
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == sorted(set(steps)) == list(range(1, 3 * 12 + 1))


# ---------------------------------------------------------------------------------------------
# a full disk


class DiskFills:
    """Makes every write to the disk fail with ENOSPC once armed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        real = safe_io._write_fd

        def write(fd: int, data: bytes) -> None:
            if self.armed:
                os.write(fd, data[: len(data) // 3])  # part of it, as a full disk does
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd, data)

        monkeypatch.setattr(safe_io, "_write_fd", write)


def test_a_full_disk_during_training_stops_with_one_sentence_and_resumes_exactly(
    tmp_path, monkeypatch
):
    from wae_toolkit.engine.callbacks import Callback

    disk = DiskFills(monkeypatch)

    class FillAt(Callback):
        def on_log(self, step, epoch, logs):
            disk.armed = disk.armed or step == 3

    with pytest.raises(safe_io.RunWriteError) as info:
        train(_cfg(tmp_path / "r"), callback=FillAt())
    assert info.value.exit_code == 1
    line = str(info.value)
    assert_sentence(line)
    assert "is full" in line and "metrics.jsonl" in line
    assert "step-00000002" in line and "wae_toolkit.train(config, resume=True)" in line
    disk.armed = False
    assert wae("run", "--resume", str(tmp_path / "r"))[0] == 0
    train(_cfg(tmp_path / "never"))
    _same_run(tmp_path / "r", tmp_path / "never")


def test_a_full_disk_after_the_last_checkpoint_keeps_it_and_says_how_much_is_needed(
    tmp_path, monkeypatch
):
    from wae_toolkit.runs import folder as runs

    disk = DiskFills(monkeypatch)
    real = runs.save_weights

    def fill_then_save(path: Path, tensors: dict[str, Any]) -> None:
        disk.armed = True
        real(path, tensors)

    monkeypatch.setattr(runs, "save_weights", fill_then_save)
    monkeypatch.setattr("wae_toolkit.engine.loop.save_weights", fill_then_save)
    out = tmp_path / "r"
    code, output = wae("run", "--out", str(out), *_flags(_cfg(out)))
    line = assert_clean(code, output, (1,))[0]
    # the first weights written after training: the raw ones, then their moving average
    assert "raw.safetensors" in line and "is full" in line and "MB" in line
    assert "step-00000006" in line and "wae run --resume" in line
    assert latest_checkpoint(out).name == "step-00000006.safetensors"
    assert not (out / "model.safetensors").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    disk.armed = False
    monkeypatch.undo()
    assert wae("run", "--resume", str(out))[0] == 0
    assert (out / "summary.json").is_file() and (out / "model.safetensors").is_file()


def _flags(config: RunConfig) -> list[str]:
    return [
        "--data-opt", "limit=300", "--epochs", str(config.epochs), "--device", "cpu",
        "--eval-every", "1", "--log-every", "1", "--checkpoint-every", "2",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# resuming: edited settings, changed data, damaged checkpoints


EDITS = {
    "epochs": ("epochs", 1),  # fewer: refused (more continues the run; test_loop_features)
    "batch_size": ("batch_size", 64),
    "limit": ("data_opts", {"limit": 200}),
    "lr": ("lr", 0.01),
    "penalty": ("penalty", "mmd-rbf"),
    "lr_schedule": ("lr_schedule", [[1, 0.5]]),
}


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("finished_run", [True, False], ids=["finished", "stopped"])
def test_resume_refuses_settings_edited_in_config_json(run, stopped, edit, finished_run):
    out = run if finished_run else stopped
    if finished_run:
        (out / "summary.json").unlink()  # as if it stopped after its final checkpoint
    record = json.loads((out / "config.json").read_text())
    key, value = EDITS[edit]
    record["run"][key] = value
    (out / "config.json").write_text(json.dumps(record))
    before = tree(out)
    code, output = wae("run", "--resume", str(out))
    line = assert_clean(code, output, (2,))[0]
    assert "changed" in line and f"{key}:" in line
    assert tree(out) == before


def test_resume_refuses_data_that_changed(tmp_path):
    x = np.random.default_rng(0).random((200, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "r"
    from .callbacks import CrashAt

    with pytest.raises(RuntimeError):
        train(_cfg(out, data=str(tmp_path / "x.npy"), data_opts={}, epochs=5), callback=CrashAt(3))
    np.save(tmp_path / "x.npy", x[:150])
    code, output = wae("run", "--resume", str(out))
    line = assert_clean(code, output, (2,))[0]
    assert "data changed" in line and "train_size" in line


def test_a_damaged_newest_checkpoint_is_named_with_the_steps_lost(tmp_path):
    out = _stopped(tmp_path, at=2, epochs=3)  # checkpoints at 2 only
    from .callbacks import CrashAt

    with pytest.raises(RuntimeError):
        train(_cfg(out, checkpoint_every=2, epochs=3), callback=CrashAt(5), resume=True)
    newest = latest_checkpoint(out)
    assert newest is not None and newest.name == "step-00000004.safetensors"
    newest.write_bytes(newest.read_bytes()[:500])
    code, output = wae("run", "--resume", str(out))
    assert code == 0, output
    warning = [line for line in output.splitlines() if line.startswith("Warning:")]
    assert warning and "step-00000004.safetensors" in warning[0]
    assert "resuming from step 2" in warning[0] and "2 step(s)" in warning[0]


def _rewrite_document(path: Path, change: Any) -> None:
    """Rewrite the checkpoint's JSON document (``change(doc) -> doc or raw text``) in place."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    new = change(json.loads(header["__metadata__"][METADATA_KEY]))
    header["__metadata__"][METADATA_KEY] = new if isinstance(new, str) else json.dumps(new)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])


HEADER_DAMAGE = {
    "nested brackets": lambda doc: "[" * 50_000 + "]" * 50_000,
    "nested extra": lambda doc: doc | {"extra": json.loads("[" * 900 + "]" * 900)},
    "step is text": lambda doc: doc | {"step": "4"},
    "step is a bool": lambda doc: doc | {"step": True},
    "version is a list": lambda doc: doc | {"version": [1]},
    "modules is a number": lambda doc: doc | {"modules": 3},
    "optimizers is a list": lambda doc: doc | {"optimizers": []},
    "epoch is text": lambda doc: doc | {"extra": doc["extra"] | {"epoch": "x"}},
    "batch out of range": lambda doc: doc | {"extra": doc["extra"] | {"batch": 10**400}},
    "seconds is infinite": lambda doc: doc | {"extra": doc["extra"] | {"seconds": 1e400}},
    "last eval is a list": lambda doc: doc | {"extra": doc["extra"] | {"last_eval": [1]}},
    "rng is text": lambda doc: doc | {"rng": "abc"},
    "python rng damaged": lambda doc: doc | {"rng": doc["rng"] | {"python": [3, [1], None]}},
}


@pytest.mark.parametrize("damage", HEADER_DAMAGE)
def test_damaged_checkpoint_documents_are_one_sentence(stopped, tmp_path, damage):
    out = stopped
    path = latest_checkpoint(out)
    assert path is not None
    _rewrite_document(path, HEADER_DAMAGE[damage])
    before = tree(out)
    code, output = wae("run", "--resume", str(out))
    assert_clean(code, output, (2,))
    assert tree(out) == before
    assert latest_checkpoint(out) in (None, path)  # never raises
    commands = [["runs", "list", str(tmp_path)]]
    if damage in ("nested brackets", "step is text", "epoch is text"):
        commands.append(["report", str(out), "-o", str(tmp_path / "r.html")])
    for command in commands:
        code, output = wae(*command)
        assert_clean(code, output, (0, 1, 2))


# ---------------------------------------------------------------------------------------------
# signals inside long steps


def test_a_signal_during_pretraining_checkpoints_and_resumes_exactly(tmp_path, monkeypatch):
    import wae_toolkit.engine.pretrain as pretrain

    real, calls = pretrain.moment_loss, []

    def moment_loss(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(pretrain, "moment_loss", moment_loss)
    out = tmp_path / "r"
    with pytest.raises(TrainingInterrupted, match="pre-training \\(step 7 of 20\\)") as info:
        train(_cfg(out, pretrain_steps=20, log_every=3, checkpoint_every=4))
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert len(calls) == 7
    monkeypatch.undo()
    train(_cfg(out, pretrain_steps=20, log_every=3, checkpoint_every=4), resume=True)
    train(_cfg(tmp_path / "never", pretrain_steps=20, log_every=3, checkpoint_every=4))
    _same_run(out, tmp_path / "never")


def test_a_signal_inside_a_long_critic_loop_ends_it_within_one_update(tmp_path, monkeypatch):
    from wae_toolkit.builtins import gan

    calls: list[int] = []

    def constrain(self: Any) -> None:  # runs after every critic update
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(gan.JSGANPenalty, "constrain", constrain)
    out = tmp_path / "r"
    config = _cfg(out, penalty="gan-js", penalty_opts={"critic_steps": 10**9, "hidden": 8})
    with pytest.raises(TrainingInterrupted, match="after step 1 of 6") as info:
        train(config)
    assert info.value.exit_code == 130 and len(calls) == 5
    assert latest_checkpoint(out).name == "step-00000001.safetensors"


def test_sigterm_reaches_a_real_process_stuck_in_a_huge_critic_loop(tmp_path):
    """The audit's case, end to end: `critic_steps=1000000000` and a job scheduler's SIGTERM."""
    out = tmp_path / "r"
    cmd = [
        sys.executable, "-m", "wae_toolkit", "run", "--out", str(out), "--penalty", "gan-js",
        "--penalty-opt", "critic_steps=1000000000", "--penalty-opt", "hidden=8",
        *_flags(_cfg(out)),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: '"kind": "eval"' in _text(out / "metrics.jsonl"), proc)
        time.sleep(1.0)  # inside the critic loop of step 1 by now
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert code == 128 + signal.SIGTERM, stderr
    assert "Stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert latest_checkpoint(out) is not None


def test_a_huge_pretraining_length_allocates_nothing_and_stops_on_sigterm(tmp_path):
    """`pretrain_steps = 10**18` (from a config file) used to allocate a tensor of that size;
    10**20 does not fit the 64 bits of a count and is refused in one sentence."""
    out = tmp_path / "r"
    (tmp_path / "exp.toml").write_text("pretrain_steps = 100000000000000000000\n")
    code, output = wae("run", "--config", str(tmp_path / "exp.toml"), "--out", str(out))
    assert "pretrain_steps" in assert_clean(code, output, (2,))[0] and not out.exists()
    (tmp_path / "exp.toml").write_text("pretrain_steps = 1000000000000000000\n")
    cmd = [
        sys.executable, "-m", "wae_toolkit", "run", "--config", str(tmp_path / "exp.toml"),
        "--out", str(out), *_flags(_cfg(out)),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: '"kind": "pretrain"' in _text(out / "metrics.jsonl"), proc)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert code == 128 + signal.SIGTERM, stderr
    assert "pre-training" in stderr and "Traceback" not in stderr


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _wait_for(condition: Any, proc: subprocess.Popen, limit: float = 300.0) -> None:
    """Wait until ``condition()`` holds (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode())  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# --nproc and the Python API


@pytest.mark.parametrize("nproc", ["100000", "0", "-3"])
def test_nproc_is_bounded(nproc, tmp_path):
    code, output = wae("run", "--nproc", nproc, "--out", str(tmp_path / "r"))
    line = assert_clean(code, output, (2,))[0]
    assert "--nproc" in line
    assert not (tmp_path / "r").exists()


def test_fit_takes_numpy_numbers_and_paths(tmp_path):
    import wae_toolkit as wt

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((120, 5)).astype(np.float32))
    model = wt.fit(
        data=tmp_path / "x.npy",
        out=tmp_path / "r",
        epochs=np.int64(1),
        lam=np.float32(2.0),
        batch_size=np.int32(50),
        device="cpu",
    )
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["run"]["epochs"] == 1 and record["run"]["lam"] == 2.0
    assert model.run_dir == tmp_path / "r"


@pytest.mark.parametrize("callback", ["x", 3, [1], object()])
def test_fit_refuses_a_callback_that_is_not_one(tmp_path, callback):
    import wae_toolkit as wt

    with pytest.raises(UsageError, match="callback must be"):
        wt.fit(epochs=1, out=tmp_path / "r", callback=callback)
    assert not (tmp_path / "r").exists()


def test_a_callback_with_only_some_hooks_is_used(tmp_path):
    import wae_toolkit as wt

    seen: list[int] = []

    class Partial:
        def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
            seen.append(step)

    wt.fit(epochs=1, out=tmp_path / "r", data_opts={"limit": 300}, callback=Partial())
    assert seen == [3]  # logged every 10 steps and at the end of the epoch


def test_the_package_train_is_always_the_function(tmp_path):
    code = textwrap.dedent(
        f"""
        import wae_toolkit as wt
        from wae_toolkit import train
        wt.fit(epochs=1, out={str(tmp_path / "a")!r}, data_opts={{"limit": 300}})
        from wae_toolkit import train as again
        assert callable(train) and train is again is wt.train, (train, again, wt.train)
        wt.train(wt.RunConfig(epochs=1, out={str(tmp_path / "b")!r}, data_opts={{"limit": 300}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b" / "summary.json").is_file()


# ---------------------------------------------------------------------------------------------
# fuzz: run folders and checkpoint headers


ENTRIES = ("config.json", "metrics.jsonl", "checkpoints", "samples.png", "summary.json")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entry=st.sampled_from(ENTRIES),
    kind=st.sampled_from(["link-file", "link-folder", "dangling", "loop", "bytes", "empty"]),
    payload=st.binary(max_size=64),
    command=st.sampled_from(["resume", "overwrite"]),
)
def test_fuzz_damaged_run_folders_for_resume_and_overwrite(
    finished, tmp_path_factory, entry, kind, payload, command
):
    base = tmp_path_factory.mktemp("fuzz")
    out, outside = base / "run", base / "outside"
    shutil.copytree(finished, out)
    (out / "summary.json").unlink()  # stopped after its last checkpoint: something to resume
    (outside / "folder").mkdir(parents=True)
    (outside / "file.txt").write_bytes(b"outside")
    path = out / entry
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if kind == "link-file":
        path.symlink_to(outside / "file.txt")
    elif kind == "link-folder":
        path.symlink_to(outside / "folder", target_is_directory=True)
    elif kind == "dangling":
        path.symlink_to(outside / "missing")
    elif kind == "loop":
        path.symlink_to(path)
    else:
        path.write_bytes(payload if kind == "bytes" else b"")
    before_outside = tree(outside)
    user_entries = {n for n in os.listdir(out)}
    args = ["--resume", str(out)] if command == "resume" else ["--out", str(out), "--overwrite"]
    code, output = wae("run", *args, "-e", "1") if command == "overwrite" else wae("run", *args)
    assert_clean(code, output, (0, 1, 2))
    assert tree(outside) == before_outside  # nothing outside written
    assert not (outside / "missing").exists()
    if path.is_symlink() or kind in ("link-file", "link-folder", "dangling", "loop"):
        assert path.is_symlink()  # the user's link is never removed
    if code != 0:
        assert user_entries <= set(os.listdir(out))


@settings(max_examples=60, deadline=None)
@given(
    where=st.sampled_from(["step", "version", "format", "modules", "optimizers", "rng", "extra"]),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=8,
    ),
)
def test_fuzz_checkpoint_documents_never_escape_as_other_errors(finished_checkpoint, where, value):
    path, objects = finished_checkpoint
    damaged = path.parent / "fuzz" / path.name
    damaged.parent.mkdir(exist_ok=True)
    shutil.copy(path, damaged)
    _rewrite_document(damaged, lambda doc: doc | {where: value})
    newest_checkpoint(damaged.parent.parent)  # never raises
    try:
        load_checkpoint(damaged, **objects, restore_rng=False)
    except (InvalidCheckpointError, UsageError) as exc:
        assert_sentence(str(exc).splitlines()[0])


@pytest.fixture(scope="module")
def finished_checkpoint(finished: Path, tmp_path_factory: pytest.TempPathFactory):
    from wae_toolkit.assembly.components import build_components
    from wae_toolkit.assembly.model import adam
    from wae_toolkit.runs.folder import load_run

    loaded = load_run(finished)
    comps = build_components(loaded.config, (1, 8, 8), (0.0, 1.0))
    model, penalty = comps.model, comps.penalty
    params = [p for p in model.parameters() if p.requires_grad]
    objects = {
        "modules": {"model": model, "penalty": penalty},
        "optimizers": {"model": adam(params, 1e-3, (0.5, 0.999))},
        "generators": {"eval": torch.Generator().manual_seed(1)},
    }
    path = latest_checkpoint(finished)
    folder = tmp_path_factory.mktemp("ckpt") / "checkpoints"
    folder.mkdir()
    shutil.copy(path, folder / path.name)
    return folder / path.name, objects
