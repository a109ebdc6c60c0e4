"""``wae run --track wandb``: what W&B wrote offline equals the run folder; the tracker table.

W&B runs with ``WANDB_MODE=offline`` and its folders under a temporary folder: no network. What
it logged is read back from its transaction logs (``RUN_DIR/wandb/offline-run-*/run-ID.wandb``,
LevelDB's log format of ``wandb_internal_pb2.Record`` messages, the files ``wandb sync``
uploads), by a reader of this module's own; the reference is what the run wrote
(``config.json``, ``metrics.jsonl``, ``summary.json``, the figures).

The tracker table's tests (an unknown name, a tracker added with one line) need no W&B.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_tracking import _cfg as _tracked_cfg
from tests.test_tracking import _flat
from wae_toolkit.api import train
from wae_toolkit.cli.app import _tracker_names, main
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.folder import read_metrics
from wae_toolkit.trackers import TRACKERS, TrackerSpec, make_trackers
from wae_toolkit.trackers.base import _Tracker

from .callbacks import CrashAt
from .test_cli import error_line, wae

PREFIX = {"step": "train", "epoch": "epoch", "eval": "eval", "pretrain": "pretrain"}
NOT_PARAMS = {"out", "overwrite", "track", "tracking_uri", "experiment"}
QUICK = ["--epochs", "2", "--data-opt", "limit=300", "--device", "cpu", "--log-every", "2"]
FIGURES = {"reconstructions", "samples", "interpolations", "latent", "losses"}
WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """W&B in offline mode for this module's runs, its own folders in a temporary folder."""
    wandb = pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        for name in WANDB_ENV[1:]:
            mp.setenv(name, str(root / name.lower()))
        mp.delenv("WANDB_API_KEY", raising=False)
        wandb.teardown()  # W&B reads its environment once per session
        yield wandb
        wandb.teardown()


# -- reading W&B's transaction logs -------------------------------------------------------------


def _chunks(data: bytes):
    """The records of a LevelDB log: 32 KiB blocks of ``crc:u32 len:u16 type:u8`` chunks."""
    assert data[:4] == b":W&B"
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield chunk
        elif kind in (2, 3):
            parts = (parts if kind == 3 else b"") + chunk
        elif kind == 4:
            yield parts + chunk


def _items(items) -> dict[str, Any]:
    """``{name: value}`` of history or summary items; an image's fields as one dict."""
    out: dict[str, Any] = {}
    for item in items:
        keys = [item.key] if item.key else list(item.nested_key)
        value = json.loads(item.value_json)
        if len(keys) == 1:
            out[keys[0]] = value
        else:
            out.setdefault(keys[0], {})["/".join(keys[1:])] = value
    return out


def _wandb_log(path: Path) -> dict[str, Any]:
    """What one transaction log holds: the run record, config, history rows, summary, exit."""
    from wandb.proto import wandb_internal_pb2 as pb

    log: dict[str, Any] = {"run": None, "config": {}, "rows": [], "summary": {}, "exit": None}
    for raw in _chunks(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            log["run"] = record.run
            log["config"] |= {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "config":
            log["config"] |= {i.key: json.loads(i.value_json) for i in record.config.update}
        elif kind == "history":
            log["rows"].append(_items(record.history.item))
        elif kind == "summary":
            log["summary"] |= _items(record.summary.update)
        elif kind == "exit":
            log["exit"] = record.exit.exit_code
    return log


def _wandb_logs(run_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The run id that tracking.json names, and the transaction logs of it, oldest first, once
    each holds its exit record (W&B's service may write the last records a moment after
    ``run.finish()`` returned)."""
    saved = json.loads((run_dir / "tracking.json").read_text())["wandb"]
    rid = saved["run_id"]
    paths = sorted((run_dir / "wandb").glob(f"offline-run-*-{rid}/run-{rid}.wandb"))
    assert paths, list((run_dir / "wandb").iterdir())
    deadline = time.monotonic() + 30
    while True:
        logs = [_wandb_log(p) for p in paths]
        if all(log["exit"] is not None for log in logs) or time.monotonic() > deadline:
            return rid, logs
        time.sleep(0.2)


def _history(logs: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value)...]}`` of every number logged, in the order logged."""
    series: dict[str, list[tuple[int, float]]] = {}
    for log in logs:
        for row in log["rows"]:
            for key, value in row.items():
                if key != "step" and not key.startswith("_") and not isinstance(value, dict):
                    series.setdefault(key, []).append((row["step"], value))
    return series


def _expected_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value)...]}`` from metrics.jsonl, in the file's order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for rec in read_metrics(run_dir):
        for key, value in rec.items():
            if key not in ("kind", "epoch", "step"):
                series.setdefault(f"{PREFIX[rec['kind']]}/{key}", []).append((rec["step"], value))
    return series


# -- one tracked run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked(offline, tmp_path_factory):
    """One short run through the CLI, tracked by W&B offline in the project 'exp-w'."""
    run_dir = tmp_path_factory.mktemp("tracked") / "runs" / "wb"
    args = ["run", *QUICK, "--pretrain-steps", "4", "--penalty-opt", "block=256"]
    args += ["--track", "wandb", "--out", str(run_dir), "--experiment", "exp-w"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code in (0, None)
    return run_dir


def test_the_run_record_and_config_are_the_runs(tracked):
    record = json.loads((tracked / "config.json").read_text())
    assert record["run"]["track"] == ["wandb"]
    rid, [log] = _wandb_logs(tracked)
    run = log["run"]
    assert (run.run_id, run.project, run.display_name) == (rid, "exp-w", "wb")
    saved = json.loads((tracked / "tracking.json").read_text())
    assert saved == {"wandb": {"run_id": rid, "project": "exp-w", "mode": "offline"}}
    expected = {k: v for k, v in _flat(record["run"]).items() if k.split(".")[0] not in NOT_PARAMS}
    for key in ("name", "sample_shape", "train_size", "test_size"):
        expected[f"dataset.{key}"] = record["data"][key]
    config = {k: v for k, v in log["config"].items() if not k.startswith("_")}
    assert config == expected
    assert config["penalty_opts.block"] == 256 and "penalty_opts.scales" in config
    assert log["exit"] == 0


def test_the_history_equals_metrics_jsonl_and_summary_json(tracked):
    _, logs = _wandb_logs(tracked)
    history = _history(logs)
    expected = _expected_series(tracked)
    assert {"train/loss", "epoch/lr", "eval/test_mmd", "pretrain/loss"} <= set(expected)
    for name, points in expected.items():
        assert history[name] == points, name  # every point at its step, once, exactly
    assert history["eval/test_mmd"][0][0] == 0  # the evaluation before training too
    assert [s for s, _ in history["pretrain/loss"]] == [2, 4]  # logged before step 0's eval
    summary = json.loads((tracked / "summary.json").read_text())
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float)}
    final = {k: v for k, v in history.items() if k.startswith("final/")}
    assert final == {f"final/{k}": [(summary["steps"], v)] for k, v in numbers.items()}
    assert set(history) == set(expected) | set(final)
    # the run's summary: the final evaluation, and the last value of every series
    wandb_summary = logs[-1]["summary"]
    for key, value in numbers.items():
        assert wandb_summary[f"final/{key}"] == value, key
    assert wandb_summary["eval/test_mmd"] == expected["eval/test_mmd"][-1][1]


def test_the_figures_are_images_of_the_last_step(tracked):
    rid, [log] = _wandb_logs(tracked)
    summary = json.loads((tracked / "summary.json").read_text())
    rows = [r for r in log["rows"] if any(k.startswith("figures/") for k in r)]
    assert len(rows) == 1 and rows[0]["step"] == summary["steps"]
    images = {k.removeprefix("figures/"): v for k, v in rows[0].items() if k != "step"}
    images = {k: v for k, v in images.items() if not k.startswith("_")}
    assert set(images) == FIGURES
    from PIL import Image

    files = next((tracked / "wandb").glob(f"offline-run-*-{rid}")) / "files"
    for name, image in images.items():
        assert image["_type"] == "image-file"
        assert (files / image["path"]).is_file(), image
        with Image.open(tracked / f"{name}.png") as img:
            assert (image["width"], image["height"]) == img.size


# -- resuming ------------------------------------------------------------------------------------


def _cfg(out: Path, **kw) -> RunConfig:
    return _tracked_cfg(out, None, **({"track": ["wandb"]} | kw))


def test_a_crashed_run_resumes_the_same_wandb_run_without_a_point_twice(
    offline, tmp_path, capfd, monkeypatch
):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    out = tmp_path / "runs" / "r"
    cfg = _cfg(out, track=["wandb", "mlflow"], tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callback=CrashAt(13))
    saved = json.loads((out / "tracking.json").read_text())
    assert set(saved) == {"wandb", "mlflow"}  # each tracker keeps its part
    rid, [first] = _wandb_logs(out)
    assert first["exit"] == 1 and first["summary"]["wae.error"] == "simulated crash"
    # steps 11-13 came after the step-10 checkpoint: W&B holds them already
    assert max(s for s, _ in _history([first])["train/loss"]) == 13
    # W&B names an offline session's folder by the second it began and the run id: a resume
    # within the same second would share the crashed session's folder (a flaky test, not a bug)
    time.sleep(1.1)
    code, _, err = wae(capfd, "run", "--resume", str(out))
    assert code == 0, err
    rid2, logs = _wandb_logs(out)
    assert rid2 == rid and len(logs) == 2  # the same W&B run, a second offline session
    assert json.loads((out / "tracking.json").read_text())["mlflow"] == saved["mlflow"]
    history = _history(logs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 18
    for name, points in _expected_series(out).items():
        assert history[name] == points, name  # no step logged twice, none lost
    assert history["final/test_cost"] == [(18, summary["test_cost"])]
    assert logs[1]["exit"] == 0
    # the resumed session holds only what came after the crash
    assert min(s for s, _ in _history(logs[1:])["train/loss"]) == 14


def test_wandb_prints_nothing_of_its_own(offline, tmp_path, capfd):
    code, stdout, err = wae(capfd, "run", *QUICK, "--track", "wandb", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "wandb:" not in (stdout + err).lower(), stdout + err  # W&B's prefix


def test_wandb_mode_disabled_logs_nothing_and_the_run_finishes(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    offline.teardown()
    try:
        result = train(_cfg(tmp_path / "d", epochs=1))
    finally:
        monkeypatch.setenv("WANDB_MODE", "offline")
        offline.teardown()
    assert result.summary["steps"] == 6
    saved = json.loads((tmp_path / "d" / "tracking.json").read_text())["wandb"]
    assert saved["mode"] == "disabled"
    assert not list((tmp_path / "d").glob("wandb/*run-*"))


def test_online_without_credentials_stops_before_the_run_folder_is_written(tmp_path):
    pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {"HOME": str(tmp_path), "NETRC": str(tmp_path / "none"), "WANDB_MODE": "online"}
    env |= {"WANDB_CONFIG_DIR": str(tmp_path / "cfg"), "WANDB_CACHE_DIR": str(tmp_path / "c")}
    env.pop("WORLD_SIZE", None)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "wae_toolkit", "run", *QUICK, "--track", "wandb", "-o", str(out)]
    proc = subprocess.run(
        cmd, capture_output=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=300
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    line = error_line(err)
    assert line.startswith("Error: W&B tracking failed: "), line
    assert line.endswith("To log to the run folder only, set WANDB_MODE=offline."), line
    assert not out.exists()


# -- the table of trackers -----------------------------------------------------------------------


def test_an_unknown_tracker_is_one_sentence():
    with pytest.raises(UsageError) as err:
        make_trackers(["mlflow", "nope"], None, "e")
    assert str(err.value) == "Unknown tracker 'nope'; trackers: mlflow, tensorboard, wandb."
    assert RunConfig(track=["wandbb"]).problems() == [
        "Unknown tracker 'wandbb' in track. Did you mean 'wandb'? "
        "Trackers: mlflow, tensorboard, wandb."
    ]


class FakeTracker(_Tracker):
    """A tracker of this module: it keeps what it is given."""

    name = "Fake"
    made: list[FakeTracker] = []

    def __init__(self, tracking_uri=None, experiment="wae-toolkit") -> None:
        super().__init__(tracking_uri, experiment)
        self.points: list[tuple[str, float, int]] = []
        self.opened: tuple[Path, dict, bool] | None = None
        self.finished = False
        FakeTracker.made.append(self)

    def _open(self, run_dir, record, resumed):
        self.opened = (run_dir, record, resumed)

    def _log(self, points):
        self.points += points

    def _finish(self, result):
        self.finished = True

    def _close(self, error):
        pass


def test_a_tracker_is_one_class_and_one_line_of_the_table(tmp_path, monkeypatch, capsys):
    spec = TrackerSpec(f"{__name__}:FakeTracker", "json", "Fake", extra="fake")
    monkeypatch.setitem(TRACKERS, "fake", spec)
    monkeypatch.setattr(FakeTracker, "made", [])
    assert _tracker_names("mlflow,fa") == ["mlflow,fake"]
    out = tmp_path / "run"
    args = ["run", *QUICK, "--track", "fake", "--experiment", "x", "-o", str(out)]
    code, _, err = wae(capsys, *args)
    assert code == 0, err
    [tracker] = FakeTracker.made
    assert tracker.experiment == "x" and tracker.finished
    assert tracker.opened is not None and not tracker.opened[2]
    assert Path(tracker.opened[0]).resolve() == out.resolve()
    logged: dict[str, list[tuple[int, float]]] = {}
    for tag, value, step in tracker.points:
        logged.setdefault(tag, []).append((step, value))
    assert logged == _expected_series(out)
    # a missing package is named, with its extra, before anything is trained
    monkeypatch.setitem(TRACKERS, "fake", spec._replace(package="no_such_package_here"))
    code, _, err = wae(capsys, "run", *QUICK, "--track", "fake", "-o", str(tmp_path / "r2"))
    assert code == 2
    assert error_line(err) == (
        "Error: --track fake needs Fake, which is not installed: pip install 'wae-toolkit[fake]'."
    )
    assert not (tmp_path / "r2").exists()


def test_the_closing_lines_say_where_the_wandb_run_is(tmp_path, capsys):
    """After a tracked ``wae run``: the W&B run, and in offline mode how to upload it."""
    from wae_toolkit.cli.run_cmd import _print_tracking

    entry = {"run_id": "abc123", "project": "exp-w", "mode": "offline"}
    (tmp_path / "tracking.json").write_text(json.dumps({"wandb": entry}))
    _print_tracking(["wandb"], tmp_path)
    text = " ".join(capsys.readouterr().out.split())
    assert "W&B: run abc123 of the project 'exp-w', offline; upload it with: wandb sync" in text
    assert f"{tmp_path / 'wandb'}/offline-run-*" in text
