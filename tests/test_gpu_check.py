"""``make gpu-check`` keeps working without a GPU: ``benchmarks/gpu_check.py --smoke`` runs every
part at its CPU smoke size (the CUDA tests skip) and writes its JSON and Markdown reports.

Nothing here is timed; the statuses and the reports' content are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_writes_every_part_and_its_reports(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the CPU path, also on a GPU machine
    env.pop("WAE_TEST_DEVICE", None)
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md", "logs.txt"]
    report = json.loads((out / "gpu_check.json").read_text())
    logs = (out / "logs.txt").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + logs[-3000:]
    parts = report["parts"]
    assert list(parts) == ["env", "tests", "penalties", "vs_pythae", "throughput"]
    assert report["mode"] == "smoke"
    for name, part in parts.items():
        assert part["status"] in ("ok", "skipped"), (name, part)
        assert part["steps"] and all("argv" in s for s in part["steps"]), name

    env_info = parts["env"]["results"]
    assert env_info["cuda_available"] is False and env_info["torch"]
    assert "mmd-imq" in env_info["plugins"]["penalty"]

    tests = parts["tests"]["results"]
    assert tests["tests"] and tests["skipped"] == len(tests["tests"]) > 10  # no GPU: all skip
    assert all("CUDA" in t["message"] for t in tests["tests"])

    rows = parts["penalties"]["results"]["rows"]
    assert {r["penalty"] for r in rows} == {"distances", "mmd-imq", "mmd-imq+block64", "swd", "kl"}
    assert all(r["seconds"] > 0 for r in rows)
    (row,) = parts["throughput"]["results"]["rows"]
    assert row["model"] == "mnist" and row["samples_per_second"] > 0
    if parts["vs_pythae"]["status"] == "ok":  # pythae is the bench extra's, not the test's
        case = parts["vs_pythae"]["results"]["cases"]["cpu-mlp-digits"]
        assert case["ratio_median"] > 0
    else:
        assert parts["vs_pythae"]["reason"] == "pythae is not installed"

    md = (out / "gpu_check.md").read_text()
    for heading in ("# GPU check:", "## CUDA tests", "## Latent penalties", "## Throughput"):
        assert heading in md, heading
    assert "| part | status | seconds | summary |" in md
    for name in parts:
        assert f"| {name} | " in md
    # the summary table is the last thing printed
    assert proc.stdout.rstrip().splitlines()[-1].startswith(f"{report['seconds']:.0f} s; reports")
