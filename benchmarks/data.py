"""Throughput and peak memory of the resident and the streaming data paths.

Makes a synthetic data set several times larger than a memory budget (a memory-mapped ``uint8``
array of 32x32 RGB images, and a folder of PNG images of the same pixels), then trains one epoch
of a small MLP WAE on each, in a fresh process per case: resident (no budget: the whole training
part held as float32) and streamed (``--memory-budget``: batches read from disk by the data
loader's workers). Reports samples per second of the whole training step (reading, moving,
converting and training) and the peak resident memory of the training process and of its
largest worker. The held-out part is kept at a fixed size, so a streamed run's peak memory should
not grow with the data: compare it with a streamed run on a data set half as large (give a
``--factor`` of 4 or more, so that both are larger than the budget).

    python benchmarks/data.py                           # budget 32 MB, data 4x the budget
    python benchmarks/data.py --budget 64MB --factor 6 --workers 2 --json /tmp/data.json

Prints one table and writes JSON. Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (3, 32, 32)  #: one sample: 3,072 bytes as uint8, 12,288 as float32
HELD_OUT = 500  #: held-out samples, the same for every size


def _make_array(path: Path, n: int) -> None:
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *SHAPE))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        x[start:stop] = rng.integers(0, 256, (stop - start, *SHAPE), dtype=np.uint8)
    x.flush()
    del x


def _make_folder(folder: Path, array: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    x = np.load(array, mmap_mode="r")
    for i in range(n):
        Image.fromarray(np.ascontiguousarray(x[i].transpose(1, 2, 0))).save(folder / f"{i:06d}.png")


def _case(data: str, n: int, budget: str | None, workers: int, batch: int) -> dict[str, Any]:
    """One training epoch in a fresh process; its throughput and peak memory."""
    code = f"""
import json, resource, time, wae_toolkit as wt
t = time.perf_counter()
model = wt.fit(data={data!r}, epochs=1, batch_size={batch}, latent_dim=8, eval_every=1000,
               data_opts={{"test_fraction": {HELD_OUT / n!r}}}, memory_budget={budget!r},
               workers={workers}, network_opts={{"hidden": [256, 256]}}, overwrite=True,
               out={str(Path(tempfile.gettempdir()) / "wae-bench-data")!r})
s = model.summary
print(json.dumps({{"seconds": s["seconds"], "samples_per_second": s["samples_per_second"],
    "steps": s["steps"], "total_seconds": time.perf_counter() - t,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _parse_bytes(text: str) -> int:
    from wae_toolkit.memory import parse_bytes

    value = parse_bytes(text)
    if value is None:
        sys.exit(f"--budget must be a size such as 32MB; got {text!r}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="32MB", help="the streamed runs' --memory-budget")
    parser.add_argument("--factor", type=float, default=4.0, help="data size / budget (uint8)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--kinds", default="array,folder", help="array, folder or both")
    parser.add_argument("--json", default="benchmarks/results/data.json")
    args = parser.parse_args()
    budget = _parse_bytes(args.budget)
    n = int(args.factor * budget) // int(np.prod(SHAPE))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size, count in (("full", n), ("half", n // 2)):
            array = root / f"{size}.npy"
            _make_array(array, count)
            kinds = {"array": str(array)}
            if "folder" in args.kinds:
                _make_folder(root / f"{size}-png", array, count)
                kinds["folder"] = str(root / f"{size}-png")
            for kind, data in kinds.items():
                if kind not in args.kinds:
                    continue
                paths = [("streamed", args.budget)] + (
                    [("resident", None)] if size == "full" else []
                )
                for path, given in paths:
                    started = time.perf_counter()
                    row = _case(data, count, given, args.workers, args.batch)
                    row |= {"kind": kind, "size": size, "n": count, "path": path}
                    row["mib_uint8"] = count * int(np.prod(SHAPE)) / 2**20
                    row["wall"] = time.perf_counter() - started
                    rows.append(row)
                    print(f"  {kind} {size} {path}: {row}", file=sys.stderr)
    print(
        f"\nbudget {args.budget} ({budget / 2**20:.0f} MiB), {args.workers} worker(s), batch "
        f"{args.batch}, samples {SHAPE} uint8, held-out part {HELD_OUT}\n"
    )
    print(
        "| data | samples | MiB as uint8 | path | samples/s | peak MiB (loop) | peak MiB (worker) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            head = f"| {r['kind']} | {r['n']:,} | {r['mib_uint8']:.0f} | {r['path']}"
            print(f"{head} | {r['error']} | | |")
            continue
        print(
            f"| {r['kind']} | {r['n']:,} | {r['mib_uint8']:.0f} | {r['path']} | "
            f"{r['samples_per_second']:,.0f} | {r['peak_mib']:.0f} | {r['worker_peak_mib']:.0f} |"
        )
    meta = {"budget": budget, "workers": args.workers, "batch": args.batch, "shape": SHAPE}
    meta["max_rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
