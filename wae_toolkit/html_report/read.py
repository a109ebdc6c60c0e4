"""Reading run folders for the report: config.json, summary.json, metrics.jsonl, eval.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wae_toolkit.config import is_number
from wae_toolkit.errors import UsageError


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
        if first is None or not is_number(epochs):
            return None
        step, epoch = first.get("step"), first.get("epoch")
        if not (is_number(step) and is_number(epoch)) or epoch < 0:
            return None
        per_epoch = step / (int(epoch) + 1)
        return int(round(per_epoch * epochs)) if per_epoch else None


def _read_json(path: Path) -> tuple[Any, str | None]:
    """The JSON in ``path`` (None when absent) and a note when it could not be read."""
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"{path.name} could not be read ({type(exc).__name__}); it is left out"


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of ``metrics.jsonl``, skipping lines that are not JSON objects."""
    file = path / "metrics.jsonl"
    if not file.is_file():
        return [], ["metrics.jsonl is missing: no per-epoch table and no loss curves"]
    records, bad = [], 0
    try:
        with open(file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(rec, dict):
                    records.append(rec)
                else:
                    bad += 1
    except OSError as exc:
        return [], [f"metrics.jsonl could not be read ({exc.strerror or exc})"]
    notes = [f"{bad} line(s) of metrics.jsonl are not JSON records and were skipped"] * (bad > 0)
    return records, notes


def _read_evaluation(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``eval.json`` when it was computed on the run's current weights."""
    from wae_toolkit.metrics.record import EVAL_FILE, weights_hash

    record, note = _read_json(path / EVAL_FILE)
    if record is None:
        return None, note
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
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
    from wae_toolkit.runs import _read_record

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
    if summary is not None and not isinstance(summary, dict):
        summary = None
        notes.append("summary.json is not a JSON object; it is left out")
    records, more = _read_records(path)
    notes += more
    evaluation, note = _read_evaluation(path)
    if note:
        notes.append(note)
    step: int | None
    if summary is not None:
        status, finished = "finished", True
        step = summary.get("steps") if is_number(summary.get("steps")) else None
    else:
        from wae_toolkit.checkpoint import latest_checkpoint

        finished = False
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            step = int(ckpt.stem.split("-")[1])
            status = f"stopped at step {step}"
        else:
            logged = [r["step"] for r in records if is_number(r.get("step"))]
            step = max(logged) if logged else None
            status = "not finished, no checkpoint"
    return Run(path, label, record, summary, records, evaluation, status, finished, step, notes)


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short names of the runs: the folder names, or the paths when names repeat."""
    names = [p.resolve().name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def read_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise UsageError("Give at least one run folder to report on.")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise UsageError(f"The run '{p}' is given twice; name each run folder once.")
        seen[key] = p
    return [_read_run(p, label) for p, label in zip(paths, _labels(paths), strict=True)]
