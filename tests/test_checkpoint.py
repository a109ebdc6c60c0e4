"""Checkpoints: exact resumption, atomic writes, keep-last-K, refusing files that are not ours."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from wae_toolkit.engine import checkpoint as ckpt
from wae_toolkit.engine.checkpoint import (
    CheckpointError,
    InvalidCheckpointError,
    check_writable,
    checkpoint_path,
    estimate_checkpoint_bytes,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.runs import safe_io as safe_io

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class Trainee:
    """A small model, a fused Adam, a scheduler and a generator, trained on random data."""

    def __init__(self, seed: int, hidden: int = 8) -> None:
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-2, fused=True)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=3, gamma=0.5)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def steps(self, n: int) -> None:
        for _ in range(n):
            x = torch.randn(5, 4)  # the global RNG
            noise = torch.rand(5, 2, generator=self.gen)
            loss = (self.model(x) - noise).pow(2).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()

    def objects(self) -> dict[str, Any]:
        return {
            "modules": {"model": self.model},
            "optimizers": {"model": self.opt},
            "generators": {"eval": self.gen},
            "schedulers": {"lr": self.sched},
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything that must continue identically, including the next random draws."""
        return {
            "params": {k: v.clone() for k, v in self.model.state_dict().items()},
            "opt": {
                (i, k): v.clone() if isinstance(v, torch.Tensor) else v
                for i, s in self.opt.state_dict()["state"].items()
                for k, v in s.items()
            },
            "groups": [
                {k: v for k, v in g.items() if k != "params"} for g in self.opt.param_groups
            ],
        }


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape, key
            assert torch.equal(x, y), key  # bitwise, not approximately
        elif isinstance(x, dict):
            assert_same(x, y)
        else:
            assert x == y, key


def continue_run(t: Trainee) -> dict[str, Any]:
    """Two more optimizer steps, then the next draw of every random generator."""
    t.steps(2)
    return {
        **t.snapshot(),
        "torch": torch.rand(6),
        "gen": torch.rand(6, generator=t.gen),
        "python": random.random(),
        "numpy": float(np.random.rand()),
    }


@pytest.mark.parametrize("into", ["same objects", "fresh objects"])
def test_round_trip_continues_bitwise(tmp_path, into):
    random.seed(1)
    np.random.seed(1)
    t = Trainee(seed=0)
    t.steps(3)
    perm = torch.randperm(10)
    path = save_checkpoint(
        tmp_path, 3, **t.objects(), extra={"epoch": 1, "perm": perm, "betas": (0.5, 0.9)}, keep=2
    )
    at_save = t.snapshot()
    expected = continue_run(t)  # this also perturbs every object and RNG

    target = t if into == "same objects" else Trainee(seed=123)
    if into == "fresh objects":
        target.steps(1)
    info = load_checkpoint(path, **target.objects())
    assert info["step"] == 3 and info["epoch"] == 1 and info["betas"] == (0.5, 0.9)
    assert torch.equal(info["perm"], perm)
    assert_same(target.snapshot(), at_save)
    assert target.opt.param_groups[0]["betas"] == t.opt.defaults["betas"]  # a tuple again
    assert_same(continue_run(target), expected)


def test_file_layout_and_contents(tmp_path):
    t = Trainee(seed=0)
    t.steps(2)
    path = save_checkpoint(tmp_path, 1234, **t.objects(), keep=1)
    assert path == tmp_path / "checkpoints" / "step-00001234.safetensors"
    assert path == checkpoint_path(tmp_path, 1234)
    assert os.listdir(tmp_path / "checkpoints") == ["step-00001234.safetensors"]
    with safe_open(str(path), "pt") as fh:
        keys = set(fh.keys())
        doc = json.loads(fh.metadata()[ckpt.METADATA_KEY])
    assert {"module.model.0.weight", "module.model.2.bias", "rng.torch", "generator.eval"} <= keys
    assert {"optim.model.state.0.exp_avg", "optim.model.state.0.exp_avg_sq"} <= keys
    assert {"optim.model.state.0.step"} <= keys  # the fused Adam keeps its step as a tensor
    assert doc["step"] == 1234 and doc["format"] == "wae-toolkit-checkpoint"
    assert doc["optimizers"]["model"]["param_groups"][0]["fused"] is True
    assert doc["schedulers"]["lr"]["last_epoch"] == 2
    assert len(doc["rng"]["python"][1]) == 625


def test_shared_and_non_contiguous_tensors_are_saved(tmp_path):
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Linear(3, 3, bias=False)
            self.dec = nn.Linear(3, 3, bias=False)
            self.dec.weight = self.enc.weight  # shared storage
            self.register_buffer("t", torch.arange(6.0).reshape(2, 3).T)  # not contiguous

    a, b = Tied(), Tied()
    save_checkpoint(tmp_path, 1, modules={"m": a}, extra={"view": a.t, "again": a.t}, keep=1)
    info = load_checkpoint(latest_checkpoint(tmp_path), modules={"m": b})
    assert torch.equal(b.enc.weight, a.enc.weight) and b.dec.weight is b.enc.weight
    assert torch.equal(b.t, a.t) and torch.equal(info["view"], a.t)
    assert torch.equal(info["again"], a.t)


def test_extra_values(tmp_path):
    m = nn.Linear(1, 1)
    extra = {
        "nested": {"a": [1, 2.5, None, True, "s", (1, (2, 3))], "nan": float("nan")},
        "accumulated": {"cost": [torch.tensor(1.5), torch.tensor(2.5)]},
        "np": np.float32(0.25),
    }
    save_checkpoint(tmp_path, 1, modules={"m": m}, extra=extra, keep=1)
    info = load_checkpoint(latest_checkpoint(tmp_path), modules={"m": m})
    assert info["nested"]["a"] == [1, 2.5, None, True, "s", (1, (2, 3))]
    assert info["nested"]["nan"] != info["nested"]["nan"]
    assert [float(v) for v in info["accumulated"]["cost"]] == [1.5, 2.5]
    assert info["np"] == 0.25
    for bad, words in [
        ({"obj": object()}, "a object"),
        ({"f": {1: 2}}, "key 1"),
        ({"step": 3}, "reserved"),
    ]:
        with pytest.raises(UsageError, match=words if words != "reserved" else "'step'"):
            save_checkpoint(tmp_path, 2, modules={"m": m}, extra=bad, keep=1)
    with pytest.raises(UsageError, match="without dots"):
        save_checkpoint(tmp_path, 2, modules={"a.b": m}, keep=1)
    with pytest.raises(UsageError, match="keep"):
        save_checkpoint(tmp_path, 2, modules={"m": m}, keep=0)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001.safetensors"]


def test_optimizer_not_created_yet(tmp_path):
    """A critic's optimizer is created on its first step: it may be saved as None."""
    t = Trainee(seed=0)
    save_checkpoint(tmp_path, 0, modules={"m": t.model}, optimizers={"critic": None}, keep=1)
    fresh = torch.optim.Adam(t.model.parameters())
    load_checkpoint(
        latest_checkpoint(tmp_path), modules={"m": t.model}, optimizers={"critic": fresh}
    )
    assert not fresh.state

    t.steps(1)
    save_checkpoint(tmp_path, 1, modules={"m": t.model}, optimizers={"critic": t.opt}, keep=1)
    with pytest.raises(UsageError, match="create the optimizer before loading"):
        load_checkpoint(
            latest_checkpoint(tmp_path), modules={"m": t.model}, optimizers={"critic": None}
        )


def test_adversarial_penalty_with_its_critic_resumes_bitwise(tmp_path):
    """The toolkit's own objects: the WAE (with its prior), a critic penalty and both optimizers."""
    from wae_toolkit.assembly.components import build_components
    from wae_toolkit.assembly.model import adam
    from wae_toolkit.config.settings import RunConfig

    config = RunConfig(
        penalty="wgan-gp", latent_dim=2, penalty_opts={"hidden": 8}, network_opts={"hidden": 16}
    )

    def build(seed: int) -> tuple[Any, Any, torch.optim.Optimizer]:
        torch.manual_seed(seed)
        comps = build_components(config, (4,), None)
        return comps.model, comps.penalty, adam(list(comps.model.parameters()), 1e-3, (0.5, 0.9))

    def step(model: Any, penalty: Any, opt: torch.optim.Optimizer) -> None:
        x = torch.randn(8, 4)
        z_q = model.encode(x)
        z_p = model.prior.sample(8)
        penalty.critic_step(z_q.detach(), z_p)
        loss = (model.decode(z_q) - x).pow(2).mean() + penalty(z_q, z_p)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model, penalty, opt = build(0)
    for _ in range(3):
        step(model, penalty, opt)
    objects = {
        "modules": {"model": model, "penalty": penalty},
        "optimizers": {"model": opt, "critic": penalty.optimizer},
    }
    path = save_checkpoint(tmp_path, 3, **objects, keep=1)
    step(model, penalty, opt)
    expected = {
        k: v.clone() for k, v in [*model.state_dict().items(), *penalty.state_dict().items()]
    }

    model2, penalty2, opt2 = build(7)
    # The critic's optimizer exists only after a critic step; create it before loading.
    penalty2._optimizer = penalty2.make_optimizer(penalty2.network.parameters())
    objects2 = {
        "modules": {"model": model2, "penalty": penalty2},
        "optimizers": {"model": opt2, "critic": penalty2.optimizer},
    }
    load_checkpoint(path, **objects2)
    step(model2, penalty2, opt2)
    got = {k: v for k, v in [*model2.state_dict().items(), *penalty2.state_dict().items()]}
    assert_same(got, expected)


def test_keep_last_k(tmp_path):
    m = nn.Linear(2, 2)
    for step in range(1, 6):
        save_checkpoint(tmp_path, step * 10, modules={"m": m}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-00000040.safetensors",
        "step-00000050.safetensors",
    ]
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 50)
    save_checkpoint(tmp_path, 60, modules={"m": m}, keep=3)  # keeping more deletes nothing new
    assert len(list_checkpoints(tmp_path)) == 3


def test_a_resumed_run_replaces_its_abandoned_continuation(tmp_path):
    m = nn.Linear(2, 2)
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, modules={"m": m}, keep=5)
    # resumed from step 10; its checkpoint of step 15 must be the latest, not step 30
    save_checkpoint(tmp_path, 15, modules={"m": m}, keep=5)
    assert [ckpt.step_of(p) for p in list_checkpoints(tmp_path)] == [10, 15]
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 15)


def test_latest_skips_temporary_and_damaged_files(tmp_path):
    m = nn.Linear(2, 2)
    assert latest_checkpoint(tmp_path) is None
    good = save_checkpoint(tmp_path, 5, modules={"m": m}, keep=5)
    data = good.read_bytes()
    folder = good.parent
    (folder / ".step-00000009.safetensors.123.abcd.tmp").write_bytes(data[:100])  # interrupted
    checkpoint_path(tmp_path, 7).write_bytes(data[:-10])  # cut short
    checkpoint_path(tmp_path, 8).write_bytes(b"")  # empty
    (folder / "step-00000010.safetensors.partial").write_bytes(data)  # not a checkpoint's name
    assert [ckpt.step_of(p) for p in list_checkpoints(tmp_path)] == [5, 7, 8]
    assert latest_checkpoint(tmp_path) == good
    with pytest.raises(
        InvalidCheckpointError, match=r"step-00000007.*not a wae-toolkit checkpoint"
    ):
        load_checkpoint(checkpoint_path(tmp_path, 7), modules={"m": m})
    # the next save removes the temporary file of the interrupted write
    save_checkpoint(tmp_path, 9, modules={"m": m}, keep=5)
    assert not (folder / ".step-00000009.safetensors.123.abcd.tmp").exists()
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 9)


class _Marker:
    """Unpickling this object creates a file: proof that a loader unpickled data."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "unpickled.txt"
    path = checkpoint_path(tmp_path, 100)
    path.parent.mkdir(parents=True)
    m = nn.Linear(2, 2)
    payloads = {
        "pickle": pickle.dumps({"module.m.weight": _Marker(str(marker))}),
        "torch.save": None,  # torch's zip format, with the same pickle inside
        "random bytes": bytes(range(256)) * 4,
        "empty": b"",
    }
    for kind, payload in payloads.items():
        if payload is None:
            torch.save({"x": _Marker(str(marker))}, path)
        else:
            path.write_bytes(payload)
        assert latest_checkpoint(tmp_path) is None, kind
        with pytest.raises(InvalidCheckpointError) as info:
            load_checkpoint(path, modules={"m": m})
        msg = str(info.value)
        assert f"'{path}' is not a wae-toolkit checkpoint" in msg and "\n" not in msg, kind
        assert isinstance(info.value, UsageError) and isinstance(info.value, WaeError)
        assert not marker.exists(), kind
    # the crafted file is a real threat: unpickling it does create the marker
    pickle.loads(payloads["pickle"])
    assert marker.exists()


def test_other_safetensors_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = checkpoint_path(tmp_path, 1)
    path.parent.mkdir(parents=True)
    save_file({"module.m.weight": torch.zeros(2, 2)}, str(path))  # e.g. a model.safetensors
    with pytest.raises(InvalidCheckpointError, match="without a checkpoint's metadata"):
        load_checkpoint(path, modules={"m": nn.Linear(2, 2)})
    with pytest.raises(InvalidCheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors", modules={})


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    t = Trainee(seed=0)
    t.steps(1)
    path = save_checkpoint(tmp_path, 1, **t.objects(), keep=1)

    wider = Trainee(seed=0, hidden=16)
    with pytest.raises(InvalidCheckpointError, match=r"'0.weight' is \(8, 4\).*\(16, 4\)"):
        load_checkpoint(path, **wider.objects())
    deeper = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2))
    with pytest.raises(InvalidCheckpointError, match="lacks '3.bias', '3.weight'"):
        load_checkpoint(path, modules={"model": deeper}, strict=False)
    shallower = nn.Sequential(nn.Linear(4, 8))
    with pytest.raises(InvalidCheckpointError, match="has '2.bias', '2.weight', which"):
        load_checkpoint(path, modules={"model": shallower}, strict=False)
    with pytest.raises(InvalidCheckpointError, match="holds no module named 'penalty'"):
        load_checkpoint(path, modules={"model": t.model, "penalty": nn.Linear(1, 1)}, strict=False)
    with pytest.raises(UsageError, match="also holds the optimizer 'model'"):
        load_checkpoint(path, modules={"model": t.model}, generators={"eval": t.gen})
    info = load_checkpoint(path, modules={"model": t.model}, strict=False)
    assert info["step"] == 1
    two_groups = torch.optim.Adam(
        [{"params": [t.model[0].weight]}, {"params": list(t.model.parameters())[1:]}]
    )
    with pytest.raises(InvalidCheckpointError, match=r"optimizer 'model'.*\[4\].*\[1, 3\]"):
        load_checkpoint(
            path, modules={"model": t.model}, optimizers={"model": two_groups}, strict=False
        )


class _Killed(BaseException):
    """Stands for the process dying: nothing after it runs, no clean-up happens."""


@pytest.mark.parametrize("where", ["mid-write", "before rename"])
def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch, where):
    t = Trainee(seed=0)
    old = save_checkpoint(tmp_path, 1, **t.objects(), keep=1)
    old_bytes = old.read_bytes()
    t.steps(1)
    if where == "mid-write":

        def write_half(fd: int, data: bytes) -> None:
            os.write(fd, data[: len(data) // 2])
            raise _Killed

        monkeypatch.setattr(safe_io, "_write_fd", write_half)
    else:

        def die(*args: Any) -> None:
            raise _Killed

        monkeypatch.setattr(os, "replace", die)
    with pytest.raises(_Killed):
        save_checkpoint(tmp_path, 2, **t.objects(), keep=1)
    monkeypatch.undo()
    leftovers = [p.name for p in old.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # what a killed process leaves
    assert list_checkpoints(tmp_path) == [old]
    assert latest_checkpoint(tmp_path) == old and old.read_bytes() == old_bytes
    assert load_checkpoint(old, **t.objects())["step"] == 1


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    """A real SIGKILL in the middle of writing the second checkpoint's bytes."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        import torch
        from wae_toolkit.engine import checkpoint as ckpt
        from wae_toolkit.runs import safe_io as safe_io

        model = torch.nn.Linear(3, 3)
        ckpt.save_checkpoint(sys.argv[1], 1, modules={"m": model}, keep=1)

        def write_and_die(fd, data):
            os.write(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

        safe_io._write_fd = write_and_die
        ckpt.save_checkpoint(sys.argv[1], 2, modules={"m": model}, keep=1)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    latest = latest_checkpoint(tmp_path)
    assert latest == checkpoint_path(tmp_path, 1)
    assert load_checkpoint(latest, modules={"m": nn.Linear(3, 3)})["step"] == 1


def test_disk_full_while_saving_gives_a_clear_error(tmp_path, monkeypatch):
    t = Trainee(seed=0)
    old = save_checkpoint(tmp_path, 1, **t.objects(), keep=1)

    def full(fd: int, data: bytes) -> None:
        os.write(fd, data[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safe_io, "_write_fd", full)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path, 2, **t.objects(), keep=1)
    msg = str(info.value)
    assert "step 2" in msg and "is full" in msg and "previous checkpoints are left intact" in msg
    assert info.value.exit_code == 1
    assert os.listdir(old.parent) == [old.name]  # no temporary file left behind
    assert latest_checkpoint(tmp_path) == old
    assert load_checkpoint(old, **t.objects())["step"] == 1


def test_unwritable_folder_gives_a_clear_error(tmp_path, monkeypatch):
    m = nn.Linear(2, 2)
    afile = tmp_path / "afile"
    afile.write_text("x")
    under_a_file = afile / "run"
    with pytest.raises(CheckpointError, match="'.*afile' is a file"):
        check_writable(under_a_file, 1)
    with pytest.raises(CheckpointError, match="part of its path is a file"):
        save_checkpoint(under_a_file, 1, modules={"m": m})

    run = tmp_path / "run"
    if not IS_ROOT:  # root ignores permissions
        run.mkdir()
        run.chmod(0o500)
        try:
            with pytest.raises(CheckpointError, match="is not writable"):
                check_writable(run, 1)
            with pytest.raises(CheckpointError, match="is not writable"):
                save_checkpoint(run, 1, modules={"m": m})
        finally:
            run.chmod(0o700)
    real_open = os.open

    def denied(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CheckpointError, match=r"Cannot write checkpoints to .*is not writable"):
        check_writable(run, 1)
    with pytest.raises(CheckpointError, match=r"step 1 .*is not writable \(Permission denied\)"):
        save_checkpoint(run, 1, modules={"m": m})
    assert list_checkpoints(run) == []
    assert [p.name for p in (run / "checkpoints").iterdir()] == []


def test_check_writable_checks_space_and_leaves_nothing(tmp_path, monkeypatch):
    run = tmp_path / "new" / "run"
    check_writable(run, 1000)
    assert os.listdir(tmp_path) == []  # nothing created, the probe file removed

    class Usage:
        total, used, free = 10**9, 10**9 - 5 * 10**6, 5 * 10**6

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(
        CheckpointError, match=r"5.0 MB free and the checkpoints need about 40.0 MB"
    ):
        check_writable(run, 40 * 10**6)


def test_estimate_covers_the_real_size(tmp_path):
    t = Trainee(seed=0, hidden=64)
    before = estimate_checkpoint_bytes({"model": t.model}, {"model": t.opt})
    t.steps(1)
    after = estimate_checkpoint_bytes({"model": t.model}, {"model": t.opt})
    path = save_checkpoint(tmp_path, 1, **t.objects(), keep=1)
    assert path.stat().st_size <= after <= before + 100
    assert before - path.stat().st_size < 2 * 1024 * 1024
