"""Multi-process training through the real CLI: ``wae run --nproc 2`` (torchrun, gloo, CPU).

The estimator-level guarantees (the penalty on gathered codes equals the single-process one on
the concatenated batch, gradients included) are tested in ``test_distributed.py``; here the whole
loop runs in two processes: only rank 0 writes, the replicas end identical, an interrupted run
resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wae_toolkit.engine.checkpoint import latest_checkpoint

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)


def _wae(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "wae_toolkit", "run", "--nproc", "2", "--device", "cpu", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]


def test_two_processes_train_in_sync_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "run"
    proc = _wae("--epochs", "3", "--data-opt", "limit=600", "--log-every", "1", "--out", str(out))
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["replica_divergence"] == 0.0  # parameters identical on both ranks at the end
    assert summary["steps"] == 18  # 600 images, global batch 100: 6 steps per epoch
    steps = [r["step"] for r in _records(out) if r["kind"] == "step"]
    assert steps == list(range(1, 19))  # written once, by rank 0 only
    assert sum(r["kind"] == "eval" for r in _records(out)) == 2  # at the start and the end
    weights = load_file(str(out / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["batch_size"] == 100


def test_batch_must_divide_among_processes(tmp_path):
    proc = _wae("--epochs", "1", "--batch-size", "101", "--out", str(tmp_path / "r"))
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode != 0
    assert "must divide evenly among the 2 processes" in stderr.decode()
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_sigterm_checkpoints_every_rank_at_the_same_step_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    args = ["--epochs", "40", "--data-opt", "limit=600", "--log-every", "1"]
    args += ["--checkpoint-every", "5", "--out", str(out)]
    proc = _wae(*args, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while (
            not (out / "metrics.jsonl").exists()
            or sum(r["kind"] == "step" for r in _records(out)) < 12
        ):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # as a cluster scheduler would, to every process
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = stderr.decode()
    assert proc.returncode != 0
    assert "Stopped by SIGTERM after step" in text and "--resume" in text
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and not (out / "summary.json").exists()
    resumed = _wae("--resume", str(out))
    _, stderr = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stderr.decode()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 240 and summary["replica_divergence"] == 0.0
    steps = [r["step"] for r in _records(out) if r["kind"] == "step"]
    assert steps == list(range(1, 241))


def test_streamed_data_are_sharded_across_processes_like_resident_data(tmp_path):
    """Under --nproc 2 each process streams its own share of every batch: the run ends with the
    weights of the same run on the data held in memory."""
    import numpy as np

    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (400, 1, 8, 8), dtype=np.uint8))
    common = ["--data", str(data), "--epochs", "2", "--latent-dim", "2", "--workers", "1"]
    runs = {}
    for name, extra in (("resident", []), ("streamed", ["--memory-budget", "1kB"])):
        out = tmp_path / name
        proc = _wae(*common, *extra, "--out", str(out))
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr.decode()[-3000:]
        runs[name] = load_file(str(out / "model.safetensors"))
    assert runs["resident"].keys() == runs["streamed"].keys()
    for k, v in runs["resident"].items():
        assert torch.equal(v, runs["streamed"][k]), k
