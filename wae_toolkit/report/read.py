"""Reading run folders for the report: config.json, summary.json, metrics.jsonl, eval.json."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError
from wae_toolkit.report.markup import finite


@dataclass
class Run:
    """What a run folder holds, read once."""

    path: Path
    label: str
    record: dict[str, Any]
    summary: dict[str, Any] | None
    records: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    status: str
    finished: bool
    step: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def run(self) -> dict[str, Any]:
        return self.record["run"]  # type: ignore[no-any-return]

    @property
    def last_eval(self) -> dict[str, Any] | None:
        evals = [r for r in self.records if r.get("kind") == "eval"]
        return evals[-1] if evals else None

    def final(self) -> tuple[dict[str, Any], str | None]:
        """The final metrics and, for a run without summary.json, where they come from."""
        if self.summary is not None:
            return self.summary, None
        last = self.last_eval
        if last is None:
            return {}, "no evaluation was logged before the run stopped"
        return last, (
            f"the last held-out evaluation in metrics.jsonl (after {last.get('epoch', '?')} "
            f"epochs, step {last.get('step', '?')}); the run did not finish"
        )

    def total_steps(self) -> int | None:
        """Steps of the whole run, from the first epoch's record."""
        epochs = self.run.get("epochs")
        first = next((r for r in self.records if r.get("kind") == "epoch"), None)
        if first is None:
            return None
        step, epoch = first.get("step"), first.get("epoch")
        if not (finite(step) and finite(epoch) and finite(epochs)) or epoch < 0:
            return None
        total = step / (int(epoch) + 1) * epochs
        return int(round(total)) if total and math.isfinite(total) else None


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON object in ``path`` (None when absent) and a note when it could not be used."""
    from wae_toolkit.runs.folder import file_problem, read_json_object

    record, why = read_json_object(path)
    if why is not None:
        return None, f"{file_problem(path.name, why)}; it is left out"
    return record, None


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of ``metrics.jsonl``, skipping lines that are not JSON objects."""
    from wae_toolkit.runs.folder import METRICS, read_metrics_file

    file = path / METRICS
    if not os.path.lexists(file):
        return [], [f"{METRICS} is missing: no per-epoch table and no loss curves"]
    records, bad, why = read_metrics_file(file)
    notes = [f"{METRICS} could not be read ({why})"] if why else []
    if bad:
        notes.append(f"{bad} line(s) of {METRICS} are not JSON records and were skipped")
    return records, notes


def _read_evaluation(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``eval.json`` when it was computed on the run's current weights."""
    from wae_toolkit.metrics.record import EVAL_FILE, weights_hash

    record, note = _read_json(path / EVAL_FILE)
    if record is None:
        return None, note
    if not isinstance(record.get("metrics"), dict):
        return None, f"{EVAL_FILE} is not an evaluation record; it is left out"
    try:
        current = weights_hash(path)
    except OSError:
        current = None
    if record.get("weights_sha256") != current:
        return None, (
            f"{EVAL_FILE} was computed on other weights than the run's model.safetensors; it is "
            "left out (run 'wae eval' again)"
        )
    return record, None


def _read_run(path: Path, label: str) -> Run:
    from wae_toolkit.metrics.record import check_run_folder
    from wae_toolkit.runs.folder import _read_record

    if path.exists() and not path.is_dir():
        raise UsageError(f"'{path}' is a file; give a run folder written by 'wae run'.")
    check_run_folder(path)
    try:
        record = _read_record(path)
    except OSError as exc:
        raise UsageError(
            f"Cannot read '{path / 'config.json'}': {exc.strerror or exc}; give a readable run "
            "folder."
        ) from None
    notes: list[str] = []
    summary, note = _read_json(path / "summary.json")
    if note:
        notes.append(note)
    records, more = _read_records(path)
    notes += more
    evaluation, note = _read_evaluation(path)
    if note:
        notes.append(note)
    step: int | None
    if summary is not None:
        status, finished = "finished", True
        steps = summary.get("steps")
        step = int(steps) if finite(steps) else None
    else:
        from wae_toolkit.engine.checkpoint import latest_checkpoint

        finished = False
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            step = int(ckpt.stem.split("-")[1])
            status = f"stopped at step {step}"
        else:
            logged = [r["step"] for r in records if finite(r.get("step"))]
            step = int(max(logged)) if logged else None
            status = "not finished, no checkpoint"
    return Run(path, label, record, summary, records, evaluation, status, finished, step, notes)


def _resolved(path: Path) -> Path:
    """``path`` with its links resolved, or as an absolute path when they cannot be (a loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a link loop
        return path.absolute()


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short names of the runs: the folder names, or the paths when names repeat."""
    names = [_resolved(p).name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def read_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise UsageError("Give at least one run folder to report on.")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = _resolved(p)
        if key in seen:
            raise UsageError(f"The run '{p}' is given twice; name each run folder once.")
        seen[key] = p
    return [_read_run(p, label) for p, label in zip(paths, _labels(paths), strict=True)]
