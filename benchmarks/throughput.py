"""Training throughput and model FLOP utilisation of the paper's MNIST and CelebA architectures.

For each architecture (the WAE paper's conv nets: MNIST 28x28x1 with width 128 and kernel 4,
CelebA 64x64x3 with width 128 and kernel 5, latent 8 and 64), each batch size and each variant
(eager, ``torch.compile``, or ``torch.compile`` in ``reduce-overhead`` mode, which replays CUDA
graphs: ``graphs``; fp32, TF32 matmuls and convolutions, or bf16 autocast), the script times
full training steps of wae-toolkit's own step functions (the same ``StepFunctions`` ``wae run``
uses: encoder, decoder, squared-L2 cost, IMQ MMD penalty, fused Adam) on synthetic images,
counts the FLOPs of one step with ``torch.utils.flop_counter.FlopCounterMode`` (matrix
products and convolutions, forward and backward), and reports samples per second and model FLOP
utilisation (MFU = achieved FLOP/s / the device's peak dense FLOP/s for the precision). Prints
one table and writes JSON. Not a test.

    python benchmarks/throughput.py                          # CUDA when present, else CPU
    python benchmarks/throughput.py --models celeba --batches 1024 --variants compiled-bf16
    python benchmarks/throughput.py --models mnist --batches 100 --variants eager-fp32,graphs-fp32

The peak comes from a small table of known GPUs (dense, no sparsity) or ``--peak-tflops``; on a
CPU without ``--peak-tflops`` MFU is left blank.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from wae_toolkit.assembly.components import build_components
from wae_toolkit.assembly.model import adam
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.step import StepFunctions

#: name: (sample shape, latent dim, network options) -- the paper's setups.
MODELS: dict[str, tuple[tuple[int, int, int], int, dict[str, Any]]] = {
    "mnist": ((1, 28, 28), 8, {"width": 128, "kernel": 4}),
    "celeba": ((3, 64, 64), 64, {"width": 128, "kernel": 5}),
}
#: Dense peak TFLOP/s (fp32 without TF32, TF32, bf16) of GPUs by a name fragment (the vendors'
#: data sheets, without sparsity).
PEAKS: dict[str, tuple[float, float, float]] = {
    "H200": (67.0, 494.7, 989.0),
    "H100 SXM": (67.0, 494.7, 989.0),
    "H100 PCIe": (51.0, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.0),
    "A100": (19.5, 156.0, 312.0),
    "L4": (30.3, 60.0, 121.0),
}
#: ``MODE-PRECISION``: eager, compiled (``torch.compile``) or graphs (its ``reduce-overhead``
#: mode: CUDA graphs), and fp32, tf32 or bf16.
MODES = {
    "eager": (False, "default"),
    "compiled": (True, "default"),
    "graphs": (True, "reduce-overhead"),
}
PRECISIONS = ("fp32", "tf32", "bf16")
VARIANTS = ("eager-fp32", "eager-bf16", "compiled-fp32", "compiled-bf16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device, precision: str, override: float | None) -> float | None:
    """Peak FLOP/s for the precision, or None when unknown."""
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (fp32, tf32, bf16) in PEAKS.items():
        if key in name:
            return dict(zip(PRECISIONS, (fp32, tf32, bf16), strict=True))[precision] * 1e12
    return None


class Bench:
    """One model, batch and variant: the step functions, optimizer and a batch of data."""

    def __init__(self, model: str, batch: int, variant: str, device: torch.device) -> None:
        shape, latent, net_opts = MODELS[model]
        mode, precision = variant.split("-")
        if mode not in MODES or precision not in PRECISIONS:
            raise ValueError(f"variant {variant!r}: MODE-PRECISION of {list(MODES)}, {PRECISIONS}")
        compiled, compile_mode = MODES[mode]
        self.config = RunConfig(
            network="conv",
            network_opts=net_opts,
            latent_dim=latent,
            compile=compiled,
            compile_mode=compile_mode,
            precision=precision,
            device=str(device),
        )
        if device.type == "cuda":  # fp32 means fp32; tf32 what wae run sets for it
            tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        comps = build_components(self.config, shape, (0.0, 1.0))
        self.model = comps.model.to(device).to(memory_format=torch.channels_last)
        comps.penalty.to(device)
        self.steps = StepFunctions(comps, self.config, device)
        self.opt = adam([p for p in self.model.parameters() if p.requires_grad], 1e-3, (0.5, 0.999))
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.rand(batch, *shape, generator=gen, device=device)
        self.x = x.contiguous(memory_format=torch.channels_last)
        self.z_p = torch.randn(batch, latent, generator=gen, device=device)

    def step(self) -> None:
        if self.steps.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        mean, log_var, z_q = self.steps.encode(self.x)
        terms = self.steps.objective(self.x, z_q, log_var, (z_q, self.z_p, mean, log_var))
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.opt.step()

    def flops(self) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:  # the uncompiled functions: the same arithmetic, countable
            mean, log_var, z_q = self.steps._encode(self.x)
            pen = (z_q, self.z_p, mean, log_var)
            terms = self.steps._objective(self.x, z_q, log_var, pen)
            terms["loss"].backward()
        self.opt.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())


def measure(
    model: str,
    batch: int,
    variant: str,
    device: torch.device,
    steps: int,
    warmup: int,
    peak_override: float | None,
) -> dict[str, Any]:
    bench = Bench(model, batch, variant, device)
    flops = bench.flops()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(warmup):  # includes compilation for compiled variants
        bench.step()
    _sync(device)
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        bench.step()
        _sync(device)
        times.append(time.perf_counter() - t)
    per_step = statistics.median(times)
    peak = _peak(device, variant.split("-")[1], peak_override)
    achieved = flops / per_step
    return {
        "model": model,
        "batch": batch,
        "variant": variant,
        "flops_per_step": flops,
        "ms_per_step": per_step * 1e3,
        "samples_per_second": batch / per_step,
        "tflops": achieved / 1e12,
        "mfu": None if peak is None else achieved / peak,
        "warmup_seconds": warm_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mnist,celeba")
    parser.add_argument("--batches", default="100,1024")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument(
        "--skip", default="", help="MODEL:VARIANT pairs to leave out, comma-separated"
    )
    parser.add_argument("--json", default="benchmarks/results/throughput.json")
    args = parser.parse_args()
    skip = {tuple(pair.split(":", 1)) for pair in args.skip.split(",") if ":" in pair}
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {name}, {torch.get_num_threads()} CPU thread(s)")
    rows: list[dict[str, Any]] = []
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'model':8} {'batch':>6} {'variant':14} {'GFLOP/step':>11} {'ms/step':>9} "
        f"{'samples/s':>10} {'TFLOP/s':>8} {'MFU':>6} {'warm-up s':>9}"
    )
    print(header)
    print("-" * len(header))
    for model in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            for variant in args.variants.split(","):
                if (model, variant) in skip:
                    continue
                try:
                    r = measure(
                        model, batch, variant, device, args.steps, args.warmup, args.peak_tflops
                    )
                except Exception as exc:  # one variant failing (out of memory, a compiler
                    # error) leaves the others to run; the row says what happened
                    r = {"model": model, "batch": batch, "variant": variant, "error": repr(exc)}
                    print(f"{model:8} {batch:>6} {variant:14} failed: {exc!r}"[:300], flush=True)
                else:
                    mfu = "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
                    print(
                        f"{model:8} {batch:>6} {variant:14} {r['flops_per_step'] / 1e9:>11.1f} "
                        f"{r['ms_per_step']:>9.2f} {r['samples_per_second']:>10.0f} "
                        f"{r['tflops']:>8.2f} {mfu:>6} {r['warmup_seconds']:>9.1f}",
                        flush=True,
                    )
                rows.append(r)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                # after every row, so that a run stopped part-way keeps what it measured
                doc = {"device": name, "torch": torch.__version__, "rows": rows}
                out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
