"""The WAE paper's comparison (VAE vs WAE-MMD vs WAE-GAN) on the built-in digits.

Trains the ``digits-vae``, ``digits-mmd`` and ``digits-gan`` presets with the same budget and
several seeds, evaluates every run with ``wae eval``'s offline metrics, and prints one row per
preset: each metric as mean +- standard deviation over the seeds, with its floor (the value real
data reach) where the metric has one. Writes the table as JSON too.

    python benchmarks/paper_table.py                       # 3 seeds, the presets' 300 epochs
    python benchmarks/paper_table.py --seeds 0,1 --epochs 50 --out /tmp/table

Not a test: it trains nine models (about 10 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from wae_toolkit.api import train
from wae_toolkit.config.presets import resolve_config
from wae_toolkit.metrics import evaluate_run

PRESETS = ("digits-vae", "digits-mmd", "digits-gan")
COLUMNS = {
    "test_cost": "reconstruction",
    "test_mmd": "MMD(codes, prior)",
    "sharpness_samples": "sharpness(samples)",
    "w2_samples": "W2(samples, held-out)",
    "cfd_samples": "classifier FD(samples)",
    "cfd_reconstructions": "classifier FD(recons)",
}


def _fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4g} +- {spread:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=None, help="override the presets' epochs")
    parser.add_argument("--out", default="runs/paper_table", help="folder for the runs")
    parser.add_argument("--json", default=None, help="where to write the table (JSON)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    started = time.perf_counter()
    results: dict[str, dict[str, list[float]]] = {}
    floors: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, list[float]] = {}
    for preset in PRESETS:
        for seed in seeds:
            given = {"seed": seed, "out": str(out / f"{preset}-seed{seed}"), "overwrite": True}
            if args.epochs:
                given["epochs"] = args.epochs
            config, _ = resolve_config(preset, given)
            t0 = time.perf_counter()
            run = train(config)
            seconds.setdefault(preset, []).append(time.perf_counter() - t0)
            record = evaluate_run(run.run_dir, seed=seed)
            for key, metric in record["metrics"].items():
                results.setdefault(preset, {}).setdefault(key, []).append(metric["value"])
                if metric.get("floor") is not None:
                    floors.setdefault(preset, {}).setdefault(key, []).append(metric["floor"])
            print(f"{preset} seed {seed}: trained in {seconds[preset][-1]:.0f} s", flush=True)

    header = ["preset", *COLUMNS.values(), "train s"]
    rows = []
    for preset in PRESETS:
        row = [preset]
        for key in COLUMNS:
            vals = results[preset].get(key)
            row.append(_fmt(vals) if vals else "-")
        row.append(f"{statistics.fmean(seconds[preset]):.0f}")
        rows.append(row)
    floor_row = ["floor (real data)"]
    for key in COLUMNS:
        vals = [v for p in PRESETS for v in floors.get(p, {}).get(key, [])]
        floor_row.append(_fmt(vals) if vals else "-")
    floor_row.append("")
    rows.append(floor_row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(f"\nDigits, {len(seeds)} seeds ({args.seeds}), mean +- std over seeds:\n")
    print("| " + line + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    total = time.perf_counter() - started
    print(f"\ntotal time {total:.0f} s")
    table = {
        "seeds": seeds,
        "epochs": args.epochs,
        "results": results,
        "floors": floors,
        "train_seconds": seconds,
        "total_seconds": total,
    }
    path = Path(args.json) if args.json else out / "paper_table.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=2) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
