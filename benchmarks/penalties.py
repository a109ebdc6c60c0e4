"""Forward+backward time and peak memory of every latent penalty, beside the bare distance matrix.

For each penalty, batch size B (codes and prior samples both B) and latent dimension D, the
script times ``penalty(z_q, z_p).backward()`` and, as the floor any kernel penalty pays, the bare
pairwise squared-distance computation of the same size (``squared_distances(z_q, z_p)`` forward
and backward through its sum). It prints one table and writes JSON.

    python benchmarks/penalties.py                               # CPU, B up to 4096
    python benchmarks/penalties.py --batches 128,1024,16384 --dims 8,64 --device cuda

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above the inputs; on CPU (Linux), the
high-water mark of the process's resident memory during one call above what was resident before
it. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from wae_toolkit.errors import WaeError
from wae_toolkit.numerics.kernels import squared_distances
from wae_toolkit.plugins import registry
from wae_toolkit.plugins.testing import IsotropicGaussian

#: Small critics so the adversarial penalties measure their estimator, not a 4x512 MLP.
OPTIONS: dict[str, dict[str, Any]] = {
    "gan-js": {"hidden": 128},
    "wgan-clip": {"hidden": 128, "critic_steps": 1},
    "wgan-gp": {"hidden": 128, "critic_steps": 1},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Any, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_bytes(fn: Any, device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)

    # CPU: Linux's high-water mark of the resident memory, reset just before the call
    # (writing 5 to /proc/self/clear_refs), minus the resident memory at that moment. torch's
    # profiler does not record most frees on CPU, so summing its events overstates the peak.
    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{key} missing from /proc/self/status")

    Path("/proc/self/clear_refs").write_text("5")
    base = status("VmRSS")
    fn()
    return max(0, status("VmHWM") - base)


def _case(name: str, batch: int, dim: int, device: torch.device, repeats: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    z_q = torch.randn(batch, dim, generator=g).to(device).requires_grad_(True)
    z_p = torch.randn(batch, dim, generator=g).to(device)
    if name == "distances":

        def step() -> None:
            squared_distances(z_q, z_p).sum().backward()

    else:
        plugin, *variants = name.split("+")
        options = dict(OPTIONS.get(plugin, {}))
        for variant in variants:  # NAME+compiled, NAME+block4096 (an MMD's options)
            if variant == "compiled":
                options["compiled"] = True
            elif variant.startswith("block") and variant[5:].isdigit():
                options["block"] = int(variant[5:])
            else:
                raise SystemExit(f"unknown variant {variant!r} in {name!r}: compiled or blockN")
        penalty = registry.create("penalty", plugin, **options)
        penalty.bind(IsotropicGaussian(dim).to(device))
        penalty.to(device)
        stats = None
        if penalty.needs_encoder_stats:
            stats = {"mean": z_q, "log_var": torch.zeros_like(z_q)}

        def step() -> None:
            if penalty.adversarial:
                penalty.critic_step(z_q.detach(), z_p)
            value = penalty(z_q, z_p, **stats) if stats else penalty(z_q, z_p)
            value.backward()

    seconds = _time(step, device, repeats)
    peak = _peak_bytes(step, device)
    return {"penalty": name, "batch": batch, "dim": dim, "seconds": seconds, "peak_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="128,512,1024,4096")
    parser.add_argument("--dims", default="8,64")
    parser.add_argument(
        "--penalties",
        default=None,
        help="comma-separated (default: every one); NAME+compiled for an MMD with compiled=true, "
        "NAME+block4096 for another block size",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default="benchmarks/results/penalties.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.penalties.split(",") if args.penalties else registry.plugin_names("penalty")
    rows: list[dict[str, Any]] = []
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    if device.type == "cuda":
        meta["device_name"] = torch.cuda.get_device_name(device)
    for dim in (int(d) for d in args.dims.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            try:
                base: dict[str, Any] | None = _case("distances", batch, dim, device, args.repeats)
                rows.append(base | {"ratio": 1.0})
            except (RuntimeError, MemoryError) as exc:
                base = None
                rows.append(
                    {"penalty": "distances", "batch": batch, "dim": dim, "error": str(exc)[:80]}
                )
            for name in names:
                try:
                    row = _case(name, batch, dim, device, args.repeats)
                except (RuntimeError, MemoryError, WaeError) as exc:  # too large at this size
                    row = {"penalty": name, "batch": batch, "dim": dim, "error": str(exc)[:80]}
                else:
                    row["ratio"] = None if base is None else row["seconds"] / base["seconds"]
                rows.append(row)
                print(_line(row), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                # after every row, so that a run stopped part-way keeps what it measured
                path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\n{device} ({torch.get_num_threads()} threads), torch {torch.__version__}\n")
    print("| penalty | B | D | ms | x distances | peak MiB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(_line(row))
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {path}")


def _line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"| {row['penalty']} | {row['batch']} | {row['dim']} | failed: {row['error']} | | |"
    ratio = "" if row.get("ratio") is None else f"{row['ratio']:.1f}"
    return (
        f"| {row['penalty']} | {row['batch']} | {row['dim']} | {row['seconds'] * 1e3:.2f} | "
        f"{ratio} | {row['peak_bytes'] / 2**20:.1f} |"
    )


if __name__ == "__main__":
    main()
