"""Resume, interruption, non-finite steps and safe loading, through the real training loop.

The ground truth for resuming is a run that was never interrupted: on CPU with the same seed, a
run stopped after k steps and resumed must end with bitwise-identical parameters and the same
metrics records (wall-clock fields aside).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wae_toolkit.api import train
from wae_toolkit.builtins.mmd import IMQMMDPenalty
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.checkpoint import latest_checkpoint, list_checkpoints
from wae_toolkit.engine.faults import NonFiniteError, TrainingInterrupted
from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.runs.folder import load_run, read_metrics

from .callbacks import CrashAt, StopAt
from .test_cli import error_line, wae

# digits limited to 600 images: 600 train (held-out images come from the rest) -> 6 steps of 100.
STEPS_PER_EPOCH = 6


def _cfg(out: Path, **kw) -> RunConfig:
    base = dict(
        data="digits",
        data_opts={"limit": 600},
        epochs=4,
        device="cpu",
        eval_every=1,
        log_every=1,
        checkpoint_every=1000,
        out=str(out),
    )
    base.update(kw)
    return RunConfig(**base)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("seconds",)} for r in records]


def _same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert _strip(read_metrics(a)) == _strip(read_metrics(b))
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    for key in ("steps", "test_cost", "test_mmd"):
        assert sa[key] == sb[key], key


SETUPS = {
    "mmd": {},
    "gan-gaussian-noise": {
        "penalty": "gan-js",
        "penalty_opts": {"hidden": 32},
        "encoder": "gaussian",
        "input_noise": 0.01,
        "lam": 1.0,
    },
    "learnable-gmm": {"prior": "gmm", "prior_opts": {"components": 3, "learnable": True}},
}


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("stop", [8, STEPS_PER_EPOCH * 2])  # mid-epoch, and at an epoch's end
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path, setup, stop):
    kw = SETUPS[setup]
    whole = train(_cfg(tmp_path / "whole", **kw))
    with pytest.raises(TrainingInterrupted) as info:
        train(_cfg(tmp_path / "split", **kw), callback=StopAt(stop))
    assert info.value.exit_code == 130
    assert f"after step {stop} of 24" in str(info.value)
    assert "Resume with: wae_toolkit.train(config, resume=True), config.out being " in str(
        info.value
    )
    assert latest_checkpoint(tmp_path / "split").name == f"step-{stop:08d}.safetensors"
    assert not (tmp_path / "split" / "model.safetensors").exists()
    resumed = train(_cfg(tmp_path / "split", **kw), resume=True)
    assert resumed.summary["steps"] == whole.summary["steps"] == 24
    _same_run(whole.run_dir, resumed.run_dir)


def test_a_crash_loses_at_most_checkpoint_every_steps_and_resumes_exactly(tmp_path):
    whole = train(_cfg(tmp_path / "whole", checkpoint_every=5))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tmp_path / "split", checkpoint_every=5), callback=CrashAt(13))
    # steps 11-13 were logged after the step-10 checkpoint: they are cut and done again
    assert latest_checkpoint(tmp_path / "split").name == "step-00000010.safetensors"
    assert max(r["step"] for r in read_metrics(tmp_path / "split")) == 13
    resumed = train(_cfg(tmp_path / "split", checkpoint_every=5), resume=True)
    _same_run(whole.run_dir, resumed.run_dir)
    assert [p.name for p in list_checkpoints(resumed.run_dir)] == [
        "step-00000015.safetensors",
        "step-00000020.safetensors",
        "step-00000024.safetensors",
    ]


def test_keep_checkpoints_keeps_the_newest(tmp_path):
    res = train(_cfg(tmp_path / "r", checkpoint_every=2, keep_checkpoints=2))
    assert [p.name for p in list_checkpoints(res.run_dir)] == [
        "step-00000022.safetensors",
        "step-00000024.safetensors",
    ]


def test_resume_refuses_what_cannot_be_resumed(tmp_path, capsys):
    with pytest.raises(UsageError, match="holds no run"):
        train(_cfg(tmp_path / "nothing"), resume=True)
    done = train(_cfg(tmp_path / "done", epochs=1))
    with pytest.raises(UsageError, match="already finished"):
        train(_cfg(done.run_dir, epochs=1), resume=True)
    code, _, err = wae(capsys, "run", "--resume", str(done.run_dir), "--lr", "0.5")
    assert code == 2
    assert "--resume continues a run with its saved settings; drop --lr" in error_line(err)
    code, _, err = wae(capsys, "run", "--resume", str(tmp_path / "nothing"))
    assert code == 2 and "is not a run folder" in error_line(err)


def test_overwrite_removes_the_old_checkpoints(tmp_path):
    first = train(_cfg(tmp_path / "r", checkpoint_every=3, epochs=2))
    assert len(list_checkpoints(first.run_dir)) == 3
    second = train(_cfg(tmp_path / "r", epochs=1, overwrite=True))
    assert [p.name for p in list_checkpoints(second.run_dir)] == ["step-00000006.safetensors"]


# ---------------------------------------------------------------------------------------------
# Non-finite steps


def _poison(monkeypatch, at: set[int], what: str = "penalty") -> None:
    """Make the IMQ penalty (or its gradient) NaN on the given training calls (1-based; the
    held-out evaluations, which run without gradients, are not counted)."""
    original = IMQMMDPenalty.forward
    calls = {"n": 0}

    def forward(self, z_q, z_p):
        value = original(self, z_q, z_p)
        if not torch.is_grad_enabled():
            return value
        calls["n"] += 1
        if calls["n"] in at:
            if what == "penalty":
                return value * float("nan")
            return value + (z_q * 0.0).sum().sqrt()  # the same value, a NaN gradient
        return value

    monkeypatch.setattr(IMQMMDPenalty, "forward", forward)


def test_a_nan_penalty_stops_naming_step_and_term_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    _poison(monkeypatch, {7})
    with pytest.raises(NonFiniteError) as info:
        train(_cfg(tmp_path / "r", checkpoint_every=2))
    msg = str(info.value)
    assert "the penalty became NaN or infinite at step 7" in msg
    assert "a lower lam or lr" in msg and "bandwidth" in msg and "\n" not in msg  # Python's words
    assert info.value.exit_code == 1
    assert latest_checkpoint(tmp_path / "r").name == "step-00000006.safetensors"
    monkeypatch.undo()
    resumed = train(_cfg(tmp_path / "r", checkpoint_every=2), resume=True)
    assert resumed.summary["steps"] == 24 and math.isfinite(resumed.summary["test_cost"])


def test_nan_gradients_with_finite_losses_are_named_as_gradients(tmp_path, monkeypatch):
    _poison(monkeypatch, {3}, what="gradient")
    with pytest.raises(NonFiniteError, match="the gradients became NaN or infinite .* step 3"):
        train(_cfg(tmp_path / "r"))


def test_bad_steps_can_be_skipped_up_to_a_bound_and_their_update_is_dropped(tmp_path, monkeypatch):
    _poison(monkeypatch, {3, 9}, what="gradient")
    res = train(_cfg(tmp_path / "ok", skip_bad_steps=2))
    weights = load_file(str(res.run_dir / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())  # NaN updates were dropped
    assert res.summary["skipped_steps"] == 2  # the two poisoned steps, and only they
    from rich.console import Console

    from wae_toolkit.cli.progress import print_summary

    console = Console(width=200, record=True)
    print_summary(console, res)
    text = " ".join(console.export_text().replace("│", " ").split())
    assert "skipped steps 2 (non-finite loss or gradient" in text
    monkeypatch.undo()
    _poison(monkeypatch, {3, 9, 10}, what="gradient")
    with pytest.raises(NonFiniteError, match="after 2 bad step"):
        train(_cfg(tmp_path / "too-many", skip_bad_steps=2))


def test_a_diverging_critic_is_named(tmp_path, monkeypatch):
    from wae_toolkit.builtins.gan import JSGANPenalty as GANPenalty

    original = GANPenalty.critic_step

    def critic_step(self, z_q, z_p):
        logs = original(self, z_q, z_p)
        return {**logs, "critic_loss": logs["critic_loss"] * float("inf")}

    monkeypatch.setattr(GANPenalty, "critic_step", critic_step)
    with pytest.raises(NonFiniteError, match="the critic loss became NaN or infinite at step 1"):
        train(_cfg(tmp_path / "r", penalty="gan-js", penalty_opts={"hidden": 16}))


# ---------------------------------------------------------------------------------------------
# Disk and folders


def test_not_enough_disk_space_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(
        shutil,
        "disk_usage",
        lambda p: real(p)._replace(free=1000),  # 1 kB free
    )
    with pytest.raises(WaeError, match="free|space|full"):
        train(_cfg(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_an_output_path_under_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = wae(capsys, "run", "--epochs", "1", "--out", str(tmp_path / "file" / "run"))
    assert code == 2 and "Traceback" not in err
    assert (tmp_path / "file").read_text() == "x"


# ---------------------------------------------------------------------------------------------
# Safe loading


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_posing_as_weights_or_checkpoints_are_refused_without_running(tmp_path):
    res = train(_cfg(tmp_path / "r", epochs=1, checkpoint_every=2))
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    (res.run_dir / "model.safetensors").write_bytes(payload)
    with pytest.raises(UsageError, match="not a valid safetensors file"):
        load_run(res.run_dir)
    newest = latest_checkpoint(res.run_dir)
    newest.write_bytes(payload)
    # the damaged newest checkpoint is skipped; the previous one is still there to resume from
    assert latest_checkpoint(res.run_dir).name == "step-00000004.safetensors"
    for p in list_checkpoints(res.run_dir):
        p.write_bytes(payload)
    assert latest_checkpoint(res.run_dir) is None
    with pytest.raises(UsageError, match="no checkpoint"):
        train(_cfg(res.run_dir, epochs=1), resume=True)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is real: unpickling it does create the marker
    assert marker.exists()


# ---------------------------------------------------------------------------------------------
# A real process, killed with SIGKILL at random moments


def _spawn(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "wae_toolkit", "run", "--epochs", "30", "--data-opt"]
    cmd += ["limit=600", "--checkpoint-every", "7", "--log-every", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _logged_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line).get("step", 0) for line in path.read_text().splitlines() if line]
    return max([s for s in steps if isinstance(s, int)], default=0)


@pytest.mark.parametrize("kill_after_steps", [9, 40, 123])
def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path, kill_after_steps):
    out = tmp_path / "run"
    proc = _spawn(out)
    try:
        deadline = time.monotonic() + 120
        while _logged_steps(out) < kill_after_steps:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the run did not get going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = _logged_steps(out)
    ckpt = latest_checkpoint(out)
    assert ckpt is not None
    saved = int(ckpt.stem.split("-")[1])
    assert done - 7 <= saved <= done, (saved, done)  # at most checkpoint_every steps lost
    resumed = train(
        RunConfig.from_dict(json.loads((out / "config.json").read_text())["run"]), resume=True
    )
    assert resumed.summary["steps"] == 30 * STEPS_PER_EPOCH
    steps = [r["step"] for r in read_metrics(out) if r["kind"] == "step"]
    assert steps == list(range(1, 30 * STEPS_PER_EPOCH + 1))  # no step logged twice or lost
