"""The CUDA paths, each checked against the CPU or a complete run (marker ``cuda``).

Every test here skips when torch sees no CUDA GPU. ``make gpu-check`` runs them on a GPU machine
(with the benchmarks; see docs/performance.md), or ``pytest -m cuda tests/test_cuda.py``. They
are sized to take under two minutes on an H200 (the CPU runs their bodies in one).

What is compared with what, and how closely (relative errors ``|a - b| / |b|`` of values, and of
gradients as whole tensors in the Euclidean norm); where the CPU's own float32 (or bf16) result
is further than a tenth of the tolerance from float64, the device may be ten times that far (a
difference of two nearly equal means, such as ``wgan-clip``'s value with its tiny clipped
weights, loses its digits on any device):

* every installed penalty, forward and backward, on CUDA in float32 against the same penalty on
  the CPU in float64, on the same inputs (adversarial penalties: the same critic weights copied to
  both devices; the random interpolates of ``wgan-gp`` drawn on the CPU for both): ``1e-4``
  with TF32 off (the CPU's float32 lands between 1e-8 and 5e-6). A critic's update is compared
  as the change of its weights: ``1e-3`` (Adam's first step is ``lr * sign(g)``: a tiny gradient
  whose sign flips with rounding moves its weight by ``2 lr``);
* the same with bfloat16 inputs (what a network under bf16 autocast gives): ``2e-2`` against
  float64 on the same rounded inputs (bf16 keeps 8 bits: the result alone is rounded by up to
  ``4e-3``, and the KL and sliced Wasserstein penalties compute in bf16; the CPU lands between
  5e-5 and 8e-3). The training loop itself casts codes to float32 before the penalty
  (engine/step.py), so no penalty runs under autocast there;
* the blockwise MMD at B = 16,384, D = 64: float32 on CUDA against float64 on CUDA and against
  the CPU's float32, ``1e-4`` or three times the CPU's float32 error (3e-5: the value is a
  difference of three sums of 2.7e8 kernel values), and its peak memory far below the ``B^2``
  matrix's;
* training runs on CUDA (every network, bf16, fp16 with a gradient scaler, tf32, ``compile``
  and its ``reduce-overhead`` mode (CUDA graphs), channels-last, a one-rank NCCL group): finite
  losses and a complete run folder; the compiled run's first loss equals the eager run's within
  ``1e-4``; the MMD with its blocks compiled equals the eager one within ``1e-4``;
* resume: an interrupted and resumed run equals the uninterrupted one bitwise (deterministic
  algorithms on, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``), or within ``1e-5`` where torch warns that
  an operation has no deterministic CUDA implementation;
* export of a CUDA-trained model: the files, run on the CPU, compute what the CUDA model computes
  (``1e-4``, TF32 off).

To debug the bodies without a GPU, ``WAE_TEST_DEVICE=cpu pytest -m cuda tests/test_cuda.py`` runs
them on the CPU (the CUDA-only checks then skip, NCCL becomes gloo).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import wae_toolkit as wt
from wae_toolkit.data import load_dataset
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins import registry
from wae_toolkit.plugins.testing import IsotropicGaussian, check_penalty, check_plugin

from .test_cli import wae
from .test_export import _runner

#: Where the bodies run: "cuda" (the default), or "cpu" to debug them without a GPU.
DEVICE = os.environ.get("WAE_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        ON_CUDA and not torch.cuda.is_available(),
        reason="needs a CUDA GPU and torch sees none (make gpu-check runs these on one)",
    ),
]


@pytest.fixture(autouse=True)
def _no_tf32():
    """float32 means float32 in these comparisons (TF32 keeps 10 bits of mantissa)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` (Euclidean norms), computed in float64 on the CPU."""
    a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a64 - b64).norm() / b64.norm().clamp_min(1e-300))


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WAE_TEST_DEVICE": DEVICE}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _python(script: str, *args: str, timeout: float, **env: str) -> dict[str, Any]:
    """Run ``script ARGS`` in a fresh interpreter; it prints one JSON line last, returned here."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_env(), **env},
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Every plugin's conformance kit on the device


#: Small critics, as in test_conformance.py; the defaults are 4 x 512.
SMALL_PENALTY_OPTIONS: dict[str, dict[str, int]] = {
    "gan-js": {"hidden": 32},
    "wgan-clip": {"hidden": 32, "critic_steps": 2},
    "wgan-gp": {"hidden": 32, "critic_steps": 2},
}


def _plugins() -> list[tuple[str, str]]:
    return [(kind, name) for kind in registry.KINDS for name in registry.plugin_names(kind)]


@pytest.mark.parametrize(("kind", "name"), _plugins())
def test_every_plugin_passes_the_conformance_kit_on_the_device(kind, name):
    torch.manual_seed(0)
    if kind == "penalty":
        penalty = registry.create(kind, name, **SMALL_PENALTY_OPTIONS.get(name, {}))
        check_penalty(penalty, dim=8, device=DEVICE)
        return
    options: dict[str, Any] = {"dim": 3} if kind == "prior" else {}
    if kind == "network" and name == "conv":
        options = {"width": 8}
    check_plugin(registry.create(kind, name, **options), device=DEVICE)


# ---------------------------------------------------------------------------------------------
# Penalties: CUDA float32 and bf16 against the CPU in float64

B, D = 256, 16
#: Critic sizes for the comparisons: small, and one update per critic step.
CRITIC_OPTIONS: dict[str, dict[str, int]] = {
    "gan-js": {"hidden": 64},
    "wgan-clip": {"hidden": 64, "critic_steps": 1},
    "wgan-gp": {"hidden": 64, "critic_steps": 1},
}
PENALTIES = registry.plugin_names("penalty")
FP32_TOL = 1e-4
BF16_TOL = 2e-2
UPDATE_TOL = 1e-3


def _penalty(name: str) -> Any:
    """The penalty built and bound on the CPU in float32, its critic (if any) seeded."""
    torch.manual_seed(0)
    pen = registry.create("penalty", name, **CRITIC_OPTIONS.get(name, {}))
    pen.bind(IsotropicGaussian(D))
    return pen


def _inputs() -> dict[str, torch.Tensor]:
    """Codes shifted and widened against N(0, I) prior samples (every penalty well above 0),
    log-variances for the KL penalty and unit directions for the sliced Wasserstein one."""
    g = torch.Generator().manual_seed(0)
    z_q = torch.randn(B, D, generator=g, dtype=torch.float64) * 1.3 + 0.4
    z_p = torch.randn(B, D, generator=g, dtype=torch.float64)
    log_var = 0.3 * torch.randn(B, D, generator=g, dtype=torch.float64)
    directions = torch.randn(D, 50, generator=g, dtype=torch.float64)
    return {
        "z_q": z_q,
        "z_p": z_p,
        "log_var": log_var,
        "directions": directions / directions.norm(dim=0),
    }


@contextlib.contextmanager
def _random_from_cpu():
    """``torch.rand``/``randn`` drawn from one seeded CPU generator and then moved: the same
    numbers on every device (for the interpolates of ``wgan-gp``'s gradient penalty)."""
    real = {"rand": torch.rand, "randn": torch.randn}
    gen = torch.Generator().manual_seed(1234)

    def draw(kind: str):
        def fn(*size: Any, dtype: Any = None, device: Any = None, **kw: Any) -> torch.Tensor:
            kw.pop("generator", None)  # drawn in float64 whatever the dtype: the same numbers
            t = real[kind](*size, generator=gen, dtype=torch.float64, **kw)
            return t.to(device=device, dtype=dtype or torch.get_default_dtype())

        return fn

    torch.rand, torch.randn = draw("rand"), draw("randn")
    try:
        yield
    finally:
        torch.rand, torch.randn = real["rand"], real["randn"]


def _evaluate(base: Any, device: str, dtype: torch.dtype, inputs: dict[str, torch.Tensor]):
    """A copy of ``base`` on ``device`` in ``dtype`` (float32 critics for bf16 inputs): its value
    and gradients on the inputs, and for an adversarial penalty the critic's step: its logs and
    the change of its weights."""
    pen = copy.deepcopy(base)
    param_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
    pen.to(device=device, dtype=param_dtype)
    pen.bind(IsotropicGaussian(D).to(device=device, dtype=param_dtype))
    t = {k: v.to(device=device, dtype=dtype) for k, v in inputs.items()}
    z_q = t["z_q"].detach().requires_grad_(True)
    log_var = t["log_var"].detach().requires_grad_(True)
    kwargs: dict[str, Any] = {}
    if pen.needs_encoder_stats:  # z_q is the mean; closed-form KL reads mean and log_var only
        kwargs = {"mean": z_q, "log_var": log_var}
    if "directions" in inspect.signature(pen.forward).parameters:
        kwargs["directions"] = t["directions"]
    value = pen(z_q, t["z_p"], **kwargs)
    value.backward()
    out: dict[str, Any] = {"value": value.detach(), "grad_z_q": z_q.grad}
    if pen.needs_encoder_stats:
        out["grad_log_var"] = log_var.grad
    if pen.adversarial:
        before = [p.detach().clone() for p in pen.parameters()]
        with _random_from_cpu():
            logs = pen.critic_step(z_q.detach(), t["z_p"])
        out["logs"] = {k: v.detach() for k, v in logs.items()}
        out["update"] = torch.cat(
            [(p.detach() - b).reshape(-1) for p, b in zip(pen.parameters(), before, strict=True)]
        )
    return out


def _errors(got: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
    """The relative error of every quantity (inf where ``got`` is not finite)."""
    pairs = [("value", got["value"], ref["value"])]
    pairs += [(k, got[k], ref[k]) for k in ("grad_z_q", "grad_log_var") if k in ref]
    pairs += [(f"critic {k}", got["logs"][k], v) for k, v in ref.get("logs", {}).items()]
    if "update" in ref:
        pairs.append(("critic update", got["update"], ref["update"]))
    return {k: _rel(a, b) if torch.isfinite(a).all() else math.inf for k, a, b in pairs}


def _compare(got: dict[str, Any], cpu: dict[str, Any], ref: dict[str, Any], tol: float) -> str:
    """The quantities whose error exceeds ``tol`` (``UPDATE_TOL`` for a critic's update) and ten
    times the CPU's error in the same precision (a difference of two nearly equal means, such
    as ``wgan-clip``'s value with its tiny clipped weights, loses digits on any device)."""
    errors, cpu_errors = _errors(got, ref), _errors(cpu, ref)
    bad = []
    for key, err in errors.items():
        limit = max(UPDATE_TOL if key == "critic update" else tol, 10 * cpu_errors[key])
        if not err <= limit:
            bad.append(f"{key}: relative error {err:.2e} > {limit:.1e} (CPU {cpu_errors[key]:.1e})")
    return "\n".join(bad)


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_forward_and_backward_on_the_device_match_the_cpu_in_float64(name, record_property):
    base, inputs = _penalty(name), _inputs()
    ref = _evaluate(base, "cpu", torch.float64, inputs)
    cpu = _evaluate(base, "cpu", torch.float32, inputs)
    got = _evaluate(base, DEVICE, torch.float32, inputs)
    assert got["value"].device.type == torch.device(DEVICE).type
    assert got["value"].dtype == torch.float32
    record_property("max_rel_error", f"{max(_errors(got, ref).values()):.1e}")
    problems = _compare(got, cpu, ref, FP32_TOL)
    assert not problems, f"{name}, float32 on {DEVICE} against float64 on the CPU:\n{problems}"


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_with_bf16_inputs_on_the_device_matches_float64(name, record_property):
    base, inputs = _penalty(name), _inputs()
    rounded = {k: v.to(torch.bfloat16).double() for k, v in inputs.items()}
    ref = _evaluate(base, "cpu", torch.float64, rounded)
    cpu = _evaluate(base, "cpu", torch.bfloat16, rounded)
    got = _evaluate(base, DEVICE, torch.bfloat16, rounded)
    record_property("max_rel_error", f"{max(_errors(got, ref).values()):.1e}")
    assert got["value"].dtype == torch.bfloat16  # the value keeps the codes' dtype
    assert got["grad_z_q"].dtype == torch.bfloat16
    problems = _compare(got, cpu, ref, BF16_TOL)
    assert not problems, f"{name}, bf16 inputs on {DEVICE} against float64 on the CPU:\n{problems}"


def test_blockwise_mmd_of_16384_codes_matches_the_cpu_in_o_block_squared_memory(record_property):
    """B = 16,384, D = 64, the default block of 512: the blockwise path, never a B x B matrix.

    The MMD is a difference of three sums of 2.7e8 kernel values each: float32 keeps about five
    digits of the result (the CPU's float32 is 3e-5 from float64 here, its gradient 4e-7). So
    both are compared with float64 on the device, the device's float32 within 1e-4 or three
    times the CPU's float32 error, whichever is larger, and with the CPU's float32 likewise.
    """
    n, dim = 16384, 64
    g = torch.Generator().manual_seed(0)
    z_q = torch.randn(n, dim, generator=g) * 1.2 + 0.3
    z_p = torch.randn(n, dim, generator=g)
    pen = registry.create("penalty", "mmd-imq")
    pen.bind(IsotropicGaussian(dim))

    def run(device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        q = z_q.to(device=device, dtype=dtype).clone().requires_grad_(True)
        value = pen.to(device)(q, z_p.to(device=device, dtype=dtype))
        value.backward()
        return value.detach(), q.grad

    cpu_value, cpu_grad = run("cpu", torch.float32)
    if ON_CUDA:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    value, grad = run(DEVICE, torch.float32)
    if ON_CUDA:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    ref_value, ref_grad = run(DEVICE, torch.float64)

    cpu_err = max(_rel(cpu_value, ref_value), _rel(cpu_grad, ref_grad))
    limit = max(1e-4, 3 * cpu_err)
    errors = {
        "value vs float64": _rel(value, ref_value),
        "gradient vs float64": _rel(grad, ref_grad),
        "value vs CPU float32": _rel(value, cpu_value),
        "gradient vs CPU float32": _rel(grad, cpu_grad),
    }
    record_property("max_rel_error", f"{max(errors.values()):.1e}")
    assert all(e <= limit for e in errors.values()), (errors, f"limit {limit:.1e}")
    if ON_CUDA:
        record_property("peak_mib", f"{peak / 2**20:.1f}")
        matrix = n * n * 4  # one float32 B x B matrix: 1 GiB
        assert peak < matrix / 16, f"peak {peak / 2**20:.1f} MiB; the B x B matrix is 1024 MiB"


# ---------------------------------------------------------------------------------------------
# Training on the device

#: 300 digits: 300 training images (the held-out ones come from the rest), 3 steps of 100.
DATA = {"data": "digits", "data_opts": {"limit": 300}}
NETWORK_OPTIONS: dict[str, dict[str, Any]] = {"mlp": {}, "conv": {"width": 8}}


def _fit(tmp_path: Path, name: str, **settings: Any) -> Any:
    base = dict(DATA, epochs=2, device=DEVICE, seed=0, eval_every=1, log_every=1)
    return wt.fit(**{**base, **settings, "out": str(tmp_path / name)})


def _step_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(ln)["loss"] for ln in lines if ln and json.loads(ln)["kind"] == "step"]


def _check_run(model: Any, steps: int = 6) -> None:
    """Finite losses for every step, the model on the device, a complete run folder."""
    run_dir = Path(model.run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == steps
    assert summary["device"].startswith(torch.device(DEVICE).type), summary["device"]
    losses = _step_losses(run_dir)
    assert len(losses) == steps and all(math.isfinite(x) for x in losses), losses
    for key in ("test_cost", "test_mmd"):
        assert math.isfinite(summary[key]), (key, summary[key])
    for name in summary["files"]:
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("step-*.safetensors"))
    assert all(p.device.type == torch.device(DEVICE).type for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _check_channels_last(model: nn.Module) -> None:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert convs
    for m in convs:
        assert m.weight.is_contiguous(memory_format=torch.channels_last), m


@pytest.mark.parametrize("network", registry.plugin_names("network"))
def test_every_network_trains_on_the_device(tmp_path, network):
    model = _fit(tmp_path, network, network=network, network_opts=NETWORK_OPTIONS.get(network, {}))
    _check_run(model)
    if network == "conv":
        _check_channels_last(model)


def test_bf16_run_with_channels_last_conv_net(tmp_path):
    model = _fit(tmp_path, "bf16", network="conv", network_opts={"width": 8}, precision="bf16")
    _check_run(model)
    _check_channels_last(model)


def test_fp16_run_with_a_gradient_scaler(tmp_path):
    if not ON_CUDA:
        pytest.skip("fp16 (autocast with a gradient scaler) runs on CUDA only")
    try:
        model = _fit(tmp_path, "fp16", network="conv", network_opts={"width": 8}, precision="fp16")
    except UsageError as exc:
        pytest.fail(f"precision='fp16' was refused on {DEVICE}, is fp16 support in yet? {exc}")
    _check_run(model)
    _check_channels_last(model)


def test_tf32_run_trains_and_leaves_torchs_tf32_settings_as_they_were(tmp_path):
    """``precision="tf32"`` turns TF32 on for matmuls and convolutions while the run trains, and
    ``fit`` puts torch's settings back afterwards (a library does not change them for good)."""
    if not ON_CUDA:
        with pytest.raises(UsageError, match="tf32 .* runs on CUDA GPUs only"):
            _fit(tmp_path, "tf32", network="conv", network_opts={"width": 8}, precision="tf32")
        return
    seen: list[tuple[bool, bool]] = []

    class Flags(wt.Callback):
        def on_log(self, step, epoch, logs):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))

    model = wt.fit(
        **dict(DATA, epochs=2, device=DEVICE, seed=0, eval_every=1, log_every=1),
        network="conv",
        network_opts={"width": 8},
        precision="tf32",
        out=str(tmp_path / "tf32"),
        callback=Flags(),
    )
    _check_run(model)
    assert seen and all(flags == (True, True) for flags in seen), seen
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
        False,
        False,
    )  # the autouse fixture's values, put back


def test_compiled_blockwise_mmd_on_the_device_matches_the_eager_one(record_property):
    """``mmd-imq``'s ``compiled=True`` (each block's kernel terms fused by torch.compile) gives
    the eager value and gradient at B = 4,096, D = 64, block 1,024, in float32."""
    from wae_toolkit.builtins.mmd import IMQMMDPenalty

    gen = torch.Generator().manual_seed(0)
    z_q0 = (torch.randn(4096, 64, generator=gen) + 0.3).to(DEVICE)  # no cancellation to zero
    z_p = torch.randn(4096, 64, generator=gen).to(DEVICE)
    out = {}
    for compiled in (False, True):
        z_q = z_q0.clone().requires_grad_(True)
        value = IMQMMDPenalty(block=1024, compiled=compiled)(z_q, z_p)
        value.backward()
        out[compiled] = (value.detach(), z_q.grad.detach())
    record_property(
        "values", f"eager {out[False][0].item():.8g}, compiled {out[True][0].item():.8g}"
    )
    assert _rel(out[True][0], out[False][0]) <= 1e-4
    assert _rel(out[True][1], out[False][1]) <= 1e-4


RESUME_SCRIPT = """
import json, os, signal, sys, warnings
from pathlib import Path

import torch

torch.use_deterministic_algorithms(True, warn_only=True)
from safetensors.torch import load_file

from wae_toolkit.api import train
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.callbacks import Callback
from wae_toolkit.engine.faults import TrainingInterrupted


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_log(self, step, epoch, logs):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


# One setup with every kind of state a step keeps: the CUDA generator (a Gaussian encoder's
# draws, input noise, prior samples), a critic and its optimizer, the MMD of the evaluations.
SETUPS = {
    "gan-gaussian-noise": {
        "penalty": "gan-js", "penalty_opts": {"hidden": 32}, "encoder": "gaussian",
        "input_noise": 0.01, "lam": 1.0,
    },
}
root, device = Path(sys.argv[1]), os.environ["WAE_TEST_DEVICE"]


def cfg(out, **kw):
    return RunConfig(data="digits", data_opts={"limit": 600}, epochs=3, device=device,
                     eval_every=1, log_every=1, checkpoint_every=1000, out=str(out), **kw)


def records(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines if x]


results = {}
for name, kw in SETUPS.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        whole = train(cfg(root / name / "whole", **kw))
        try:
            train(cfg(root / name / "split", **kw), callback=StopAt(8))
            stopped = False
        except TrainingInterrupted:
            stopped = True
        resumed = train(cfg(root / name / "split", **kw), resume=True)
    wa = load_file(str(whole.run_dir / "model.safetensors"))
    wb = load_file(str(resumed.run_dir / "model.safetensors"))
    diffs = {k: float((wa[k].double() - wb[k].double()).abs().max()) for k in wa}
    worst = max(diffs, key=diffs.get)
    results[name] = {
        "stopped": stopped,
        "steps": [whole.summary["steps"], resumed.summary["steps"]],
        "same_keys": sorted(wa) == sorted(wb),
        "max_abs_diff": diffs[worst],
        "worst": worst,
        "same_records": records(whole.run_dir) == records(resumed.run_dir),
        "nondeterministic": sorted({str(w.message)[:200] for w in caught
                                    if "deterministic" in str(w.message)}),
    }
print(json.dumps(results))
"""


def test_resumed_run_equals_the_uninterrupted_one(tmp_path, record_property):
    """Deterministic algorithms on, in a fresh process (cuBLAS reads its workspace setting when
    it starts): bitwise, unless torch warns that an operation has no deterministic version."""
    results = _python(RESUME_SCRIPT, str(tmp_path), timeout=300, CUBLAS_WORKSPACE_CONFIG=":4096:8")
    for name, r in results.items():
        record_property(f"{name}_max_abs_diff", r["max_abs_diff"])
        if r["nondeterministic"]:
            record_property(f"{name}_nondeterministic", "; ".join(r["nondeterministic"]))
        assert r["stopped"] and r["steps"] == [18, 18] and r["same_keys"], (name, r)
        if r["nondeterministic"]:
            assert r["max_abs_diff"] <= 1e-5, (name, r)
        else:
            assert r["max_abs_diff"] == 0.0 and r["same_records"], (name, r)


def test_export_of_a_cuda_trained_model_computes_the_same_on_the_cpu(tmp_path, capsys):
    model = _fit(tmp_path, "run", network="conv", network_opts={"width": 8}, epochs=1)
    run_dir = Path(model.run_dir)
    x = load_dataset("digits", {"limit": 300}).test[:7]
    with torch.no_grad():
        x_dev = x.to(DEVICE).contiguous(memory_format=torch.channels_last)
        z = model.encode(x_dev, sample=False)
        x_hat = model.decode(z)
    z, x_hat = z.float().cpu(), x_hat.float().cpu()

    for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx")):
        out = tmp_path / fmt
        code, stdout, err = wae(capsys, "export", str(run_dir), "--format", fmt, "--out", str(out))
        assert code == 0, err
        encoder, decoder = (
            _exported(fmt, out / f"encoder{suffix}"),
            _exported(fmt, out / f"decoder{suffix}"),
        )
        (z_file,) = encoder(x.numpy())
        (x_file,) = decoder(z.numpy())
        assert _rel(torch.from_numpy(z_file), z) < 1e-4, (fmt, "encoder")
        assert _rel(torch.from_numpy(x_file), x_hat) < 1e-4, (fmt, "decoder")

    # From the model object itself, its weights still on the device.
    result = wt.export_model(model, "torchscript", tmp_path / "from-object")
    encoder = _exported("torchscript", result.out_dir / "encoder.pt")
    assert _rel(torch.from_numpy(encoder(x.numpy())[0]), z) < 1e-4


_exported = _runner  # numpy in, numpy out, from the exported file alone, on the CPU


# ---------------------------------------------------------------------------------------------
# One process under the launcher, with NCCL

NCCL_SCRIPT = """
import json, os, sys

import torch
import torch.distributed as dist

import wae_toolkit as wt
from wae_toolkit.engine.distributed import init_from_env, shutdown
from wae_toolkit.engine.distributed.collectives import _Gather, _check_same_shape

device = os.environ["WAE_TEST_DEVICE"]
backend = "nccl" if device.startswith("cuda") else "gloo"
if device.startswith("cuda"):
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
dist.init_process_group(backend)  # torchrun's environment: a group of one
ctx = init_from_env(device=device)  # describes the group it finds and leaves it alone
out = {"backend": str(dist.get_backend()), "world": ctx.world_size, "owns": ctx.owns_group,
       "device": str(ctx.device)}
t = torch.arange(12.0, device=ctx.device).reshape(4, 3).requires_grad_(True)
_check_same_shape(t, None)  # the tiny all-gather of shapes
g = _Gather.apply(t, None)  # the differentiable all-gather and its all-reduce backward
(g * torch.arange(3.0, device=ctx.device)).sum().backward()
out["gather"] = torch.equal(g.detach(), t.detach())
out["gather_grad"] = torch.equal(t.grad, torch.arange(3.0, device=ctx.device).expand(4, 3))
s = torch.ones(5, device=ctx.device)
dist.all_reduce(s)
out["all_reduce"] = s.tolist()
net = torch.nn.Linear(3, 2).to(ctx.device)
ddp = torch.nn.parallel.DistributedDataParallel(
    net, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
ddp(t.detach()).square().sum().backward()
out["ddp_grad_finite"] = bool(all(torch.isfinite(p.grad).all() for p in net.parameters()))
model = wt.fit(data="digits", data_opts={"limit": 300}, epochs=1, device=device, log_every=1,
               out=sys.argv[1])
out["steps"] = model.summary["steps"]
out["processes"] = model.summary["processes"]
out["still_initialized"] = dist.is_initialized()
shutdown()
print(json.dumps(out))
"""


def test_one_process_under_torchrun_with_nccl(tmp_path, capsys):
    """``wae run --nproc 1`` trains in the launching process (torchrun starts only for N > 1)
    and a one-process group never communicates, so NCCL is checked here in a group of one that
    torchrun sets up: the all-gather (forward and backward), an all-reduce, DDP, and a whole run
    inside the group."""
    if ON_CUDA and not torch.distributed.is_nccl_available():
        pytest.skip("this torch was built without NCCL")
    args = ["--nproc", "1", "--device", DEVICE, "--epochs", "1", "--data-opt", "limit=300"]
    code, _, err = wae(capsys, "run", *args, "--out", str(tmp_path / "nproc1"))
    assert code == 0, err
    script = tmp_path / "nccl_check.py"
    script.write_text(NCCL_SCRIPT)
    run = tmp_path / "in-group"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    proc = subprocess.run(
        [*cmd, str(script), str(run)],
        capture_output=True,
        text=True,
        timeout=240,
        env=_env(),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == ("nccl" if ON_CUDA else "gloo"), out
    assert out["world"] == 1 and out["owns"] is False, out
    assert out["gather"] and out["gather_grad"] and out["ddp_grad_finite"], out
    assert out["all_reduce"] == [1.0] * 5, out
    assert out["steps"] == 3 and out["processes"] == 1 and out["still_initialized"], out


# ---------------------------------------------------------------------------------------------
# Last, as the slowest (a compilation)


def test_compiled_run_starts_where_the_eager_one_does(tmp_path, record_property):
    eager = _fit(tmp_path, "eager", network="mlp")
    compiled = _fit(tmp_path, "compiled", network="mlp", compile=True)
    _check_run(compiled)
    first_eager, first_compiled = _step_losses(eager.run_dir)[0], _step_losses(compiled.run_dir)[0]
    record_property("first_losses", f"eager {first_eager:.6g}, compiled {first_compiled:.6g}")
    assert abs(first_compiled - first_eager) <= 1e-4 * abs(first_eager), (
        first_compiled,
        first_eager,
    )


def test_reduce_overhead_run_replays_cuda_graphs_and_starts_where_the_eager_one_does(
    tmp_path, record_property
):
    """``compile_mode="reduce-overhead"`` (CUDA graphs on CUDA): two epochs with evaluations in
    between, the logged losses of every step kept (each step's outputs are copied out of the
    graphs' memory before the next replay overwrites it), the first step as the eager run's."""
    eager = _fit(tmp_path, "eager", network="mlp")
    graphs = _fit(tmp_path, "graphs", network="mlp", compile=True, compile_mode="reduce-overhead")
    _check_run(graphs)
    eager_losses, graph_losses = _step_losses(eager.run_dir), _step_losses(graphs.run_dir)
    record_property("losses", f"eager {eager_losses}, reduce-overhead {graph_losses}")
    assert abs(graph_losses[0] - eager_losses[0]) <= 1e-4 * abs(eager_losses[0])
    assert len(set(graph_losses)) == len(graph_losses), graph_losses  # no step's logs overwritten
