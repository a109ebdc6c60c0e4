"""One command that proves the CUDA paths and measures the GPU figures: ``make gpu-check``.

On a CUDA machine five parts, each command a subprocess with its own time limit inside one
overall budget (``--budget``, 315 s), so that one failing or slow command never stops the others:

* ``env``: torch, CUDA, cuDNN, the GPU, the packages and the plugins found;
* ``tests``: ``pytest -m cuda tests/test_cuda.py`` (every CUDA path against the CPU);
* ``penalties``: ``benchmarks/penalties.py`` at B = 1,024 to 16,384, D = 64 (time, peak memory),
  the IMQ MMD eager and with its blocks fused by ``torch.compile``;
* ``vs_pythae``: ``benchmarks/vs_pythae.py``'s GPU cases, one subprocess each, and the digits
  MLP again with ``--compile --compile-mode reduce-overhead`` (CUDA graphs);
* ``throughput``: ``benchmarks/throughput.py``: eager in fp32, TF32 and bf16; CUDA graphs at
  batch 100; compiled at batch 1,024 (each compiled variant costs a compilation of 20-60 s).

The commands run most wanted first (env, tests, penalties, the two pythae cases with targets,
eager throughput, the digits MLP with CUDA graphs, the compiled CelebA bf16 of the MFU target,
the pythae case at batch 1,024, CUDA-graph throughput, the other compiled variants), so that a
spent budget cuts the least wanted; a command that would get less than 10 s is not started.

Without a GPU (or with ``--smoke``) the same parts run at their CPU smoke sizes in well under a
minute (the CUDA tests skip), which is how the test suite keeps this script working
(tests/test_gpu_check.py).

Writes, under ``--out`` (after every part, so a run cut short keeps what it did):
``gpu_check.json`` (everything: versions, every part's status, seconds and results),
``gpu_check.md`` (Markdown tables for docs/performance.md) and ``logs.txt`` (every command's
output). Prints a short summary last. Exits 0 when every part passed (or was skipped for a
stated reason), 1 otherwise.

    python benchmarks/gpu_check.py --out gpu-check-out
    python benchmarks/gpu_check.py --smoke --out /tmp/gc          # the CPU smoke sizes
    python benchmarks/gpu_check.py --parts env,tests --out /tmp/gc
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("env", "tests", "penalties", "vs_pythae", "throughput")
#: Seconds kept back from the budget for writing the reports.
RESERVE = 5.0
#: A step that would get fewer seconds than this is not started.
MIN_STEP = 10.0


@dataclass
class Step:
    """One command of a part: what to run, for how long at most, and the JSON it writes."""

    label: str
    argv: list[str]
    timeout: float
    json: Path | None = None
    #: Steps run in this order across parts (then in plan order): the most wanted first, so that
    #: a spent budget cuts the least wanted.
    order: int = 0


def plan(gpu: bool, smoke: bool, tmp: Path, py: str) -> dict[str, list[Step]]:
    """The commands of every part: the GPU sizes, or the CPU smoke sizes."""
    bench = str(ROOT / "benchmarks")
    junit = tmp / "junit.xml"
    pytest = [py, "-m", "pytest", "-v", "-m", "cuda", "tests/test_cuda.py", "-o", "addopts="]
    pytest += ["-rfEs", "--durations=15", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    steps: dict[str, list[Step]] = {
        "env": [Step("env", [py, "-c", ENV_SCRIPT], 90, order=0)],
        "tests": [Step("tests", pytest, 170 if gpu else 120, junit, order=1)],
    }
    device = "cuda" if gpu else "cpu"
    if gpu and not smoke:
        pen = ["--batches", "1024,4096,16384", "--dims", "64", "--repeats", "3"]
        pen += ["--penalties", "mmd-imq,mmd-imq+compiled,mmd-rbf,mmd-imq+block4096,swd,kl"]
        steps["penalties"] = [
            Step(
                "penalties",
                [py, f"{bench}/penalties.py", "--device", "cuda", *pen, "--json"],
                60,
                tmp / "penalties.json",
                order=2,
            )
        ]
        steps["vs_pythae"] = [
            Step(
                f"vs_pythae {case}",
                [py, f"{bench}/vs_pythae.py", "--cases", case, "--repeats", "2"]
                + ["--epochs", str(epochs), "--json"],
                50,
                tmp / f"vs_pythae_{case}.json",
                order=order,
            )
            for case, epochs, order in (
                ("gpu-mlp-digits", 30, 3),  # 420 steps; the target: >= 10x
                ("gpu-conv-28-b100", 2, 4),  # 200 steps; the target: >= 5x
                ("gpu-conv-28-b1024", 2, 7),  # 40 steps; no target
            )
        ]
        # the 10x target's case again with the lever for small models: CUDA graphs
        graphs = ["--compile", "--compile-mode", "reduce-overhead"]
        steps["vs_pythae"].append(
            Step(
                "vs_pythae gpu-mlp-digits, CUDA graphs",
                [py, f"{bench}/vs_pythae.py", "--cases", "gpu-mlp-digits", "--repeats", "2"]
                + ["--epochs", "30", *graphs, "--json"],
                90,
                tmp / "vs_pythae_gpu-mlp-digits_graphs.json",
                order=5,
            )
        )
        tp = [py, f"{bench}/throughput.py", "--steps", "10", "--warmup", "3"]
        steps["throughput"] = [
            Step(
                "throughput eager",
                tp
                + ["--models", "mnist,celeba", "--batches", "100,1024"]
                + ["--variants", "eager-fp32,eager-tf32,eager-bf16", "--json"],
                60,
                tmp / "throughput_eager.json",
                order=5,
            ),
            Step(  # launch overhead at batch 100: CUDA graphs
                "throughput CUDA graphs, batch 100",
                tp
                + ["--models", "mnist,celeba", "--batches", "100"]
                + ["--variants", "graphs-fp32,graphs-bf16", "--json"],
                120,
                tmp / "throughput_graphs.json",
                order=7,
            ),
            Step(  # the MFU target: CelebA, batch 1024, bf16, compiled
                "throughput compiled celeba bf16",
                tp
                + ["--models", "celeba", "--batches", "1024", "--variants", "compiled-bf16"]
                + ["--json"],
                100,
                tmp / "throughput_compiled_celeba_bf16.json",
                order=6,
            ),
            Step(
                "throughput compiled, the others",
                tp
                + ["--models", "mnist,celeba", "--batches", "1024"]
                + ["--variants", "compiled-bf16,compiled-fp32", "--skip", "celeba:compiled-bf16"]
                + ["--json"],
                180,
                tmp / "throughput_compiled_others.json",
                order=8,
            ),
        ]
    else:
        steps["penalties"] = [
            Step(
                "penalties",
                [py, f"{bench}/penalties.py", "--device", device, "--batches", "128"]
                + ["--dims", "8", "--repeats", "1", "--threads", "1"]
                + ["--penalties", "mmd-imq,mmd-imq+block64,swd,kl", "--json"],
                60,
                tmp / "penalties.json",
                order=2,
            )
        ]
        case = "gpu-mlp-digits" if gpu else "cpu-mlp-digits"
        steps["vs_pythae"] = [
            Step(
                f"vs_pythae {case}",
                [py, f"{bench}/vs_pythae.py", "--cases", case, "--repeats", "1"]
                + ["--epochs", "1", "--threads", "1", "--json"],
                90,
                tmp / f"vs_pythae_{case}.json",
                order=3,
            )
        ]
        steps["throughput"] = [
            Step(
                "throughput eager",
                [py, f"{bench}/throughput.py", "--device", device, "--models", "mnist"]
                + ["--batches", "4", "--variants", "eager-fp32", "--steps", "1", "--warmup", "1"]
                + ["--threads", "1", "--json"],
                60,
                tmp / "throughput_eager.json",
                order=4,
            )
        ]
    for part in steps.values():  # the JSON path goes last, after --json
        for step in part:
            if step.json is not None and step.argv[-1] == "--json":
                step.argv.append(str(step.json))
    return steps


ENV_SCRIPT = r"""
import importlib.metadata as md, json, os, platform, sys
out = {"python": sys.version.split()[0], "executable": sys.executable}
out["platform"] = platform.platform()
import torch
out["torch"] = torch.__version__
out["cuda"] = torch.version.cuda
out["cuda_available"] = torch.cuda.is_available()
if torch.cuda.is_available():
    out["cudnn"] = torch.backends.cudnn.version()
    out["gpus"] = torch.cuda.device_count()
    p = torch.cuda.get_device_properties(0)
    out["device"] = torch.cuda.get_device_name(0)
    out["capability"] = f"{p.major}.{p.minor}"
    out["memory_gib"] = round(p.total_memory / 2**30, 1)
    out["multiprocessors"] = p.multi_processor_count
    out["nccl"] = torch.distributed.is_available() and torch.distributed.is_nccl_available()
else:
    out["device"] = "CPU (" + (platform.processor() or platform.machine()) + ")"
    out["cpu_threads"] = torch.get_num_threads()
versions = {}
for name in ("wae-toolkit", "wae-toolkit-energy", "numpy", "scipy", "scikit-learn", "geomloss",
             "pythae", "pydantic", "pydantic_core", "typing_extensions", "onnx", "onnxruntime",
             "onnxscript", "triton", "safetensors", "pytest"):
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
out["packages"] = versions
import wae_toolkit
from wae_toolkit.plugins import registry
out["wae_toolkit_file"] = wae_toolkit.__file__
out["plugins"] = {kind: registry.plugin_names(kind) for kind in registry.KINDS}
print(json.dumps(out))
"""


# ---------------------------------------------------------------------------------------------
# Running


class Runner:
    """Runs the steps one after the other within the budget; logs everything to ``logs.txt``."""

    def __init__(self, out: Path, budget: float, env: dict[str, str]) -> None:
        self.out, self.env = out, env
        self.deadline = time.monotonic() + budget
        self.log_path = out / "logs.txt"
        self.log_path.write_text("")
        #: Each step's output, by label.
        self.outputs: dict[str, str] = {}

    def log(self, text: str) -> None:
        with self.log_path.open("a") as f:
            f.write(text)

    def left(self) -> float:
        return self.deadline - time.monotonic() - RESERVE

    def run(self, step: Step) -> dict[str, Any]:
        timeout = min(step.timeout, self.left())
        record: dict[str, Any] = {"label": step.label, "argv": _shown(step.argv)}
        if timeout < MIN_STEP:
            self.log(f"\n==== {step.label}: not run, the budget is spent\n")
            return record | {"status": "not run", "reason": "the budget was spent"}
        record["timeout"] = round(timeout, 1)
        self.log(f"\n==== {step.label} (at most {timeout:.0f} s)\n$ {' '.join(record['argv'])}\n")
        offset = self.log_path.stat().st_size
        start = time.monotonic()
        with self.log_path.open("ab") as log:
            log.flush()
            proc = subprocess.Popen(
                step.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a timeout ends its children too
            )
            try:
                rc = proc.wait(timeout=timeout)
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                _kill(proc)
                rc, status = None, "timeout"
        seconds = time.monotonic() - start
        with self.log_path.open("rb") as f:
            f.seek(offset)
            self.outputs[step.label] = f.read().decode(errors="replace")
        self.log(f"\n==== {step.label}: {status} (exit code {rc}) in {seconds:.1f} s\n")
        record |= {"status": status, "returncode": rc, "seconds": round(seconds, 1)}
        if status == "failed" and "pythae is not installed" in self.outputs[step.label]:
            record["no_pythae"] = True
        return record

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _kill(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _shown(argv: list[str]) -> list[str]:
    """The command as a person would type it: the inline env script abbreviated, the files this
    script reads back (in a temporary folder) left out."""
    shown: list[str] = []
    for a in argv:
        if a.startswith("--junitxml="):
            continue
        if shown and shown[-1] == "--json":
            shown.pop()
            continue
        if a == ENV_SCRIPT:
            shown.append("<env script>")
        elif a == sys.executable or a.endswith("/python") or a.endswith("/python3"):
            shown.append("python")
        else:
            shown.append(str(a).replace(str(ROOT) + "/", ""))
    return shown


# ---------------------------------------------------------------------------------------------
# Results of each part


def _read_json(path: Path | None) -> Any:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _env_results(runner: Runner, step: Step) -> Any:
    """The env script prints one JSON line, its last."""
    for line in reversed(runner.outputs.get(step.label, "").splitlines()):
        if line.startswith("{") and '"torch"' in line:
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _test_results(runner: Runner, step: Step) -> dict[str, Any]:
    """Per test: outcome, seconds and message, from the JUnit file, or from ``-v``'s lines when
    pytest was stopped before it wrote the file."""
    tests: list[dict[str, Any]] = []
    junit = step.json
    if junit is not None and junit.is_file():
        try:
            root = ET.parse(junit).getroot()
        except ET.ParseError:
            root = None
        for case in [] if root is None else root.iter("testcase"):
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed", "error": "error"}.get(child.tag, "skipped")
                    message = (child.get("message") or child.text or "")[:500]
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            tests.append(
                {
                    "name": f"{case.get('name')}",
                    "outcome": outcome,
                    "seconds": round(float(case.get("time") or 0), 2),
                    "message": message,
                    "properties": props,  # what a test recorded: errors, peak memory...
                }
            )
    if not tests:  # pytest was stopped: the -v lines say what finished
        pattern = re.compile(r"tests/test_cuda\.py::(\S+) (PASSED|FAILED|SKIPPED|ERROR)")
        for m in pattern.finditer(runner.outputs.get(step.label, "")):
            tests.append({"name": m.group(1), "outcome": m.group(2).lower(), "seconds": None})
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped")}
    counts["errors"] = sum(t["outcome"] == "error" for t in tests)
    return counts | {"tests": tests}


def _merge(results: list[Any], key: str) -> Any:
    """The rows (or cases) of several JSON files of one benchmark, in order."""
    docs = [r for r in results if isinstance(r, dict)]
    if not docs:
        return None
    merged = dict(docs[0])
    if key == "cases":  # a case run again with compile is its own entry
        merged["cases"] = {
            (
                f"{k}, compiled {d.get('wae_compile_mode') or 'default'}"
                if d.get("wae_compile")
                else k
            ): v
            for d in docs
            for k, v in d.get("cases", {}).items()
        }
    else:
        merged[key] = [row for d in docs for row in d.get(key, [])]
    return merged


def part_report(
    name: str, steps: list[Step], records: list[dict[str, Any]], runner: Runner
) -> dict[str, Any]:
    """A part's status, steps and results from the records of its steps that ran so far."""
    statuses = [r["status"] for r in records]
    if len(records) < len(steps):
        status = "running"
    elif all(s == "not run" for s in statuses):
        status = "not run"
    elif "timeout" in statuses:
        status = "timeout"
    elif "failed" in statuses:
        status = "failed"
    elif "not run" in statuses:
        status = "partial"
    else:
        status = "ok"
    part: dict[str, Any] = {"status": status, "steps": records}
    part["seconds"] = round(sum(r.get("seconds", 0.0) for r in records), 1)
    if status in ("not run", "partial"):
        part["reason"] = "the budget was spent" + (" before its last steps" * (status == "partial"))
    if name == "env":
        part["results"] = _env_results(runner, steps[0])
    elif name == "tests":
        part["results"] = _test_results(runner, steps[0])
        if status == "failed" and not part["results"]["failed"] + part["results"]["errors"]:
            part["reason"] = "pytest failed before running the tests (see logs.txt)"
    else:
        key = {"penalties": "rows", "throughput": "rows", "vs_pythae": "cases"}[name]
        part["results"] = _merge([_read_json(s.json) for s in steps], key)
        if (
            name == "vs_pythae"
            and status == "failed"
            and all(r.get("no_pythae") for r in records if r["status"] == "failed")
        ):
            part["status"], part["reason"] = "skipped", "pythae is not installed"
    return part


# ---------------------------------------------------------------------------------------------
# Reports


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def _summary_of(name: str, part: dict[str, Any]) -> str:
    res = part.get("results")
    if part.get("reason"):
        return part["reason"]
    if not res:
        return ""
    if name == "env":
        return f"{res.get('device')}, torch {res.get('torch')}, CUDA {res.get('cuda')}"
    if name == "tests":
        failed = [t["name"] for t in res["tests"] if t["outcome"] in ("failed", "error")]
        text = f"{res['passed']} passed, {res['failed']} failed, {res['skipped']} skipped"
        if res["errors"]:
            text += f", {res['errors']} errors"
        return text + (f" (failed: {', '.join(failed[:6])})" if failed else "")
    if name == "vs_pythae":
        cases = res.get("cases", {})
        return ", ".join(
            f"{c}: {v['ratio_median']:.2f}x" if "ratio_median" in v else f"{c}: skipped"
            for c, v in cases.items()
        )
    if name == "penalties":
        rows = [r for r in res.get("rows", []) if "error" not in r]
        big = max((r["batch"] for r in rows), default=None)
        picks = [r for r in rows if r["batch"] == big and r["penalty"] in ("distances", "mmd-imq")]
        return "; ".join(
            f"{r['penalty']} B={r['batch']} D={r['dim']}: {r['seconds'] * 1e3:.1f} ms, "
            f"{r['peak_bytes'] / 2**20:.0f} MiB"
            for r in picks
        )
    if name == "throughput":
        rows = [r for r in res.get("rows", []) if "error" not in r]
        best = max(rows, key=lambda r: r.get("mfu") or 0, default=None)
        if best is None:
            return ""
        mfu = "" if best.get("mfu") is None else f", MFU {100 * best['mfu']:.1f}%"
        return (
            f"{len(rows)} rows; best: {best['model']} b{best['batch']} {best['variant']} "
            f"{best['samples_per_second']:,.0f} samples/s{mfu}"
        )
    return ""


VS_LABELS = {
    "gpu-mlp-digits": ("GPU, digits, MLP 64-256-256-8, batch 100, fp32", ">= 10"),
    "gpu-conv-28-b100": (
        "GPU, 28x28, the paper's MNIST conv net (width 128), batch 100, fp32",
        ">= 5",
    ),
    "gpu-conv-28-b1024": ("same, batch 1024, fp32", ""),
    "cpu-mlp-digits": ("CPU, digits, MLP 64-256-256-8, batch 100, fp32", ">= 5"),
}


def markdown(report: dict[str, Any]) -> str:
    env = (report["parts"].get("env") or {}).get("results") or {}
    lines = [
        f"# GPU check: {env.get('device', '?')}",
        "",
        f"torch {env.get('torch', '?')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
        f"Python {env.get('python', '?')}; {report['started']}; mode {report['mode']}; "
        f"`{report['command']}`",
        "",
        "| part | status | seconds | summary |",
        "|---|---|---|---|",
    ]
    for name, part in report["parts"].items():
        lines.append(
            f"| {name} | {part['status']} | {part.get('seconds', '')} | "
            f"{_summary_of(name, part).replace('|', '/')} |"
        )
    parts = report["parts"]

    tests = (parts.get("tests") or {}).get("results")
    if tests and tests.get("tests"):
        lines += ["", "## CUDA tests: `pytest -m cuda tests/test_cuda.py`", ""]
        lines += ["| test | outcome | s |", "|---|---|---|"]
        skips: dict[str, int] = {}
        for t in tests["tests"]:
            msg = t.get("message", "") if t["outcome"] != "passed" else ""
            msg = " ".join(msg.split())[:160].replace("|", "/")
            if t["outcome"] == "skipped":  # one line per reason
                skips[msg] = skips.get(msg, 0) + 1
                continue
            props = ", ".join(f"{k} {v}" for k, v in (t.get("properties") or {}).items())
            outcome = t["outcome"] + (f": {msg}" if msg else "") + (f" ({props})" if props else "")
            lines.append(f"| `{t['name']}` | {outcome} | {_fmt(t.get('seconds'))} |")
        for msg, n in skips.items():
            lines.append(f"| {n} test{'s' * (n > 1)} | skipped: {msg} | |")

    vs = (parts.get("vs_pythae") or {}).get("results")
    if vs and vs.get("cases"):
        lines += _section(
            "Against pythae 0.1.2: `benchmarks/vs_pythae.py`",
            parts["vs_pythae"],
            [
                "case",
                "pythae samples/s",
                "wae-toolkit samples/s",
                "ratio (median of pairs)",
                "target",
            ],
        )
        for case, row in vs["cases"].items():
            label, target = VS_LABELS.get(case, (case, ""))
            if "ratio_median" not in row:
                lines.append(f"| {label} | | | {row.get('skipped', 'not run')} | {target} |")
                continue
            lines.append(
                f"| {label}, {row['steps']} steps | {row['pythae_samples_per_second']:,.0f} | "
                f"{row['wae_samples_per_second']:,.0f} | **{row['ratio_median']:.2f}** "
                f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) | {target} |"
            )

    pen = (parts.get("penalties") or {}).get("results")
    if pen and pen.get("rows"):
        rows = pen["rows"]
        sizes = sorted({(r["batch"], r["dim"]) for r in rows}, key=lambda s: (s[1], s[0]))
        names = list(dict.fromkeys(r["penalty"] for r in rows))
        by = {(r["penalty"], r["batch"], r["dim"]): r for r in rows}
        lines += ["", "## Latent penalties: `benchmarks/penalties.py`", ""]
        lines += _commands(parts["penalties"])
        lines += ["ms per forward+backward (x the bare distances of the same size):", ""]
        head = " | ".join(f"B={b}, D={d}" for b, d in sizes)
        lines += [f"| penalty | {head} |", "|---|" + "---|" * len(sizes)]
        for n in names:
            cells = []
            for b, d in sizes:
                r = by.get((n, b, d))
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("failed")
                else:
                    ratio = "" if r.get("ratio") is None else f" ({r['ratio']:.1f})"
                    cells.append(f"{_fmt(r['seconds'] * 1e3)}{ratio}")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines += ["", "Peak memory above the inputs, MiB:", ""]
        lines += [f"| penalty | {head} |", "|---|" + "---|" * len(sizes)]
        for n in names:
            cells = []
            for b, d in sizes:
                r = by.get((n, b, d))
                ok = r is not None and "error" not in r
                cells.append(f"{r['peak_bytes'] / 2**20:.1f}" if ok else "")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")

    tp = (parts.get("throughput") or {}).get("results")
    if tp and tp.get("rows"):
        columns = ["model", "batch", "variant", "GFLOP/step", "ms/step", "samples/s"]
        columns += ["TFLOP/s", "MFU", "warm-up s"]
        lines += _section(
            "Throughput and MFU: `benchmarks/throughput.py`", parts["throughput"], columns
        )
        for r in tp["rows"]:
            if "error" in r:
                err = r["error"][:100].replace("|", "/")
                lines.append(f"| {r['model']} | {r['batch']} | {r['variant']} | failed: {err} |")
                continue
            mfu = "" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['variant']} | "
                f"{r['flops_per_step'] / 1e9:.1f} | {r['ms_per_step']:.2f} | "
                f"{r['samples_per_second']:,.0f} | {r['tflops']:.1f} | {mfu} | "
                f"{r['warmup_seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def _section(title: str, part: dict[str, Any], columns: list[str]) -> list[str]:
    """A report section's title, the commands that made it and its table's header."""
    header = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return ["", f"## {title}", "", *_commands(part), *header]


def _commands(part: dict[str, Any]) -> list[str]:
    cmds = [" ".join(s["argv"]) for s in part.get("steps", []) if s.get("argv")]
    return ["```bash", *cmds, "```", ""] if cmds else []


def write_reports(out: Path, report: dict[str, Any]) -> None:
    for name, text in (
        ("gpu_check.json", json.dumps(report, indent=1) + "\n"),
        ("gpu_check.md", markdown(report)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def summary_table(report: dict[str, Any]) -> str:
    lines = [f"{'part':<11} {'status':<8} {'s':>6}  summary", "-" * 78]
    for name, part in report["parts"].items():
        lines.append(
            f"{name:<11} {part['status']:<8} {part.get('seconds', ''):>6}  "
            f"{_summary_of(name, part)}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu-check-out", help="folder for the reports")
    parser.add_argument("--smoke", action="store_true", help="the CPU smoke sizes, also on a GPU")
    parser.add_argument("--budget", type=float, default=None, help="seconds for everything")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument(
        "--site", default=None, help="a folder of extra packages, put first on PYTHONPATH"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; known: {', '.join(PARTS)}")

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only this project's conftest: no surprises
    path = [p for p in (args.site, str(ROOT), env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(path)
    gpu = _cuda_available(env)
    smoke = args.smoke or not gpu
    budget = args.budget or (315.0 if gpu and not smoke else 240.0)
    runner = Runner(out, budget, env)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    steps = plan(gpu, smoke, tmp, sys.executable)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": "gpu" if gpu and not smoke else "smoke",
        "command": " ".join(["python", "benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
        "budget_s": budget,
        "parts": {},
    }
    print(f"gpu_check: {report['mode']} mode, budget {budget:.0f} s, writing to {out}", flush=True)
    order = sorted(
        ((name, i, step) for name in wanted for i, step in enumerate(steps[name])),
        key=lambda t: (t[2].order, wanted.index(t[0]), t[1]),
    )
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    for name in wanted:  # in the parts' order, whatever the order of the commands
        report["parts"][name] = {"status": "not started", "steps": []}
    try:
        for name, _, step in order:
            print(f"[{time.monotonic() - started:6.1f} s] {step.label} ...", flush=True)
            try:
                records[name].append(runner.run(step))
                part = part_report(name, steps[name], records[name], runner)
            except Exception:  # a fault of this script: recorded, and the next step runs
                reason = traceback.format_exc()[-1500:]
                records[name].append({"label": step.label, "status": "error", "reason": reason})
                part = {"status": "error", "reason": reason, "steps": records[name]}
                runner.log(f"\n==== {step.label}: error in gpu_check.py\n{reason}\n")
            report["parts"][name] = part
            last = records[name][-1]
            print(
                f"[{time.monotonic() - started:6.1f} s] {step.label}: {last['status']} "
                f"({last.get('seconds', 0)} s)"
                + (f"; {name}: {_summary_of(name, part)}" if part["status"] != "running" else ""),
                flush=True,
            )
            if last["status"] not in ("ok", "not run") and not last.get("no_pythae"):
                print(f"--- last lines of its log ---\n{runner.tail()}\n---", flush=True)
            report["seconds"] = round(time.monotonic() - started, 1)
            write_reports(out, report)
    finally:
        report["seconds"] = round(time.monotonic() - started, 1)
        write_reports(out, report)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(summary_table(report))
    print(f"\n{report['seconds']:.0f} s; reports in {out}/gpu_check.md, .json and logs.txt")
    failed = [n for n, p in report["parts"].items() if p["status"] not in ("ok", "skipped")]
    return 1 if failed else 0


def _cuda_available(env: dict[str, str]) -> bool:
    """Whether torch sees a GPU, asked in a subprocess (this process never initialises CUDA)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.stdout.strip().endswith("True")


if __name__ == "__main__":
    sys.exit(main())
