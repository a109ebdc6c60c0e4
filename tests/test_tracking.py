"""``wae run --track mlflow/tensorboard``: what the real libraries read back equals the run folder
(W&B: ``test_tracking_wandb.py``).

MLflow runs are read with ``MlflowClient`` from SQLite stores in temporary folders, TensorBoard
event files with tensorboard's ``EventAccumulator``; the reference is what the run wrote
(``config.json``, ``metrics.jsonl``, ``summary.json``, the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing import event_accumulator as ea

import wae_toolkit as wt
from wae_toolkit.api import train
from wae_toolkit.cli.app import main
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.faults import TrainingInterrupted
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.folder import read_metrics
from wae_toolkit.trackers.mlflow import mlflow_store

from .callbacks import CrashAt, StopAt
from .test_cli import error_line, wae

#: metrics.jsonl record kind -> the prefix of the tracked metric names (docs/tracking.md).
PREFIX = {"step": "train", "epoch": "epoch", "eval": "eval", "pretrain": "pretrain"}
#: settings that say where a run goes: not logged as parameters.
NOT_PARAMS = {"out", "overwrite", "track", "tracking_uri", "experiment"}
QUICK = ["--epochs", "2", "--data-opt", "limit=300", "--device", "cpu", "--log-every", "2"]
FIGURES = {"reconstructions", "samples", "interpolations", "latent", "losses"}


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no network calls from the tests


def _expected_series(run_dir: Path) -> dict[str, dict[int, float]]:
    """``{name: {step: value}}`` from metrics.jsonl, each (name, step) once."""
    series: dict[str, dict[int, float]] = {}
    for rec in read_metrics(run_dir):
        for key, value in rec.items():
            if key in ("kind", "epoch", "step"):
                continue
            points = series.setdefault(f"{PREFIX[rec['kind']]}/{key}", {})
            assert rec["step"] not in points, (key, rec)
            points[rec["step"]] = value
    return series


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same_value(text: str, value) -> bool:
    if isinstance(value, str):
        return text == value
    if value is None or isinstance(value, bool):
        return text == str(value)
    if isinstance(value, int | float):
        return float(text) == value
    return json.loads(text) == value


def _mlflow_run(run_dir: Path):
    saved = json.loads((run_dir / "tracking.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def _history(client, run) -> dict[str, list[tuple[int, float]]]:
    return {
        k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
        for k in run.data.metrics
    }


def _scalars(logdir: Path) -> tuple[ea.EventAccumulator, dict[str, list[tuple[int, float]]]]:
    acc = ea.EventAccumulator(str(logdir), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc, {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One short run through the CLI with both trackers, MLflow in its own SQLite store."""
    root = tmp_path_factory.mktemp("tracked")
    run_dir, db = root / "runs" / "both", root / "store" / "mlflow.db"
    args = ["run", *QUICK, "--pretrain-steps", "4", "--penalty-opt", "block=256"]
    args += ["--track", "mlflow,tensorboard", "--track", "mlflow", "--out", str(run_dir)]
    args += ["--tracking-uri", f"sqlite:///{db}", "--experiment", "exp-a"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        with pytest.raises(SystemExit) as done:
            main(args)
    assert done.value.code in (0, None)
    return run_dir, db


def test_mlflow_holds_the_parameters_of_config_json(tracked):
    run_dir, _ = tracked
    record = json.loads((run_dir / "config.json").read_text())
    assert record["run"]["track"] == ["mlflow", "tensorboard"]  # comma-separated, each once
    client, run = _mlflow_run(run_dir)
    expected = {k: v for k, v in _flat(record["run"]).items() if k.split(".")[0] not in NOT_PARAMS}
    for key in ("name", "sample_shape", "train_size", "test_size"):
        expected[f"dataset.{key}"] = record["data"][key]
    params = run.data.params
    assert set(params) == set(expected)
    for key, value in expected.items():
        assert _same_value(params[key], value), (key, params[key], value)
    # plugin options with their defaults, and where the given values came from
    assert params["penalty_opts.block"] == "256" and "penalty_opts.scales" in params
    tags = run.data.tags
    assert tags["wae.source.penalty_opts.block"] == "command line"
    assert tags["wae.source.epochs"] == "command line"
    assert "wae.source.lam" not in tags  # defaults are not tagged
    assert tags["wae.plugin.penalty"] == f"mmd-imq (wae-toolkit {wt.__version__})"
    assert tags["wae.version"] == wt.__version__
    assert Path(tags["wae.run_dir"]) == run_dir.resolve()
    assert run.info.run_name == "both" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "exp-a"


def test_mlflow_metric_histories_equal_metrics_jsonl_and_summary(tracked):
    run_dir, _ = tracked
    client, run = _mlflow_run(run_dir)
    history = _history(client, run)
    expected = _expected_series(run_dir)
    assert {"train/loss", "epoch/lr", "eval/test_mmd", "pretrain/loss"} <= set(expected)
    for name, points in expected.items():
        assert history[name] == sorted(points.items()), name
    assert history["eval/test_mmd"][0][0] == 0  # the evaluation before training too
    summary = json.loads((run_dir / "summary.json").read_text())
    final = {k: v for k, v in history.items() if k.startswith("final/")}
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float)}
    assert set(final) == {f"final/{k}" for k in numbers}
    for key, value in numbers.items():
        assert final[f"final/{key}"] == [(summary["steps"], float(value))], key
    assert set(expected) | set(final) == set(history)


def test_mlflow_artifacts_are_the_run_files_beside_the_store(tracked):
    run_dir, db = tracked
    client, run = _mlflow_run(run_dir)
    rid = run.info.run_id
    root = {a.path for a in client.list_artifacts(rid)}
    assert {"config.json", "summary.json", "metrics.jsonl", "figures"} <= root
    figures = {Path(a.path).stem for a in client.list_artifacts(rid, "figures")}
    assert figures == FIGURES
    local = Path(client.download_artifacts(rid, "figures/samples.png", str(run_dir.parent)))
    assert local.read_bytes() == (run_dir / "samples.png").read_bytes()
    saved = Path(client.download_artifacts(rid, "config.json", str(db.parent)))
    assert json.loads(saved.read_text()) == json.loads((run_dir / "config.json").read_text())
    # artifacts live beside the database, never in the working directory
    assert run.info.artifact_uri.startswith((db.parent / "mlartifacts").as_uri())
    # the model artifact is a folder that loads back as the trained model
    model_dir = Path(client.download_artifacts(rid, "model", str(db.parent / "dl")))
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors"]
    x = torch.rand(4, 1, 8, 8)
    want, got = wt.load(run_dir), wt.load(model_dir)
    assert torch.equal(got.decode(got.encode(x)), want.decode(want.encode(x)))


def test_tensorboard_events_hold_the_scalars_images_config_and_hparams(tracked):
    run_dir, _ = tracked
    acc, scalars = _scalars(run_dir / "tensorboard")
    expected = _expected_series(run_dir)
    for name, points in expected.items():
        got = scalars[name]
        assert [s for s, _ in got] == sorted(points), name  # each step once
        assert [v for _, v in got] == [np.float32(points[s]) for s in sorted(points)], name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert scalars["final/test_mmd"] == [(summary["steps"], np.float32(summary["test_mmd"]))]
    images = {t.removeprefix("figures/"): acc.Images(t)[-1] for t in acc.Tags()["images"]}
    assert set(images) == FIGURES
    from PIL import Image

    with Image.open(run_dir / "samples.png") as img:
        assert (images["samples"].width, images["samples"].height) == img.size
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"penalty": "mmd-imq"' in text and '"train_size": 300' in text
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)


def _cfg(out: Path, db: Path | None, **kw) -> RunConfig:
    """A 3-epoch tracked run of 6 steps per epoch (MLflow in ``db`` and TensorBoard unless
    ``track`` says otherwise)."""
    settings = dict(
        data_opts={"limit": 600},  # 6 steps per epoch
        epochs=3,
        device="cpu",
        eval_every=1,
        log_every=1,
        checkpoint_every=5,
        out=str(out),
        track=["mlflow", "tensorboard"],
        tracking_uri=None if db is None else f"sqlite:///{db}",
    )
    return RunConfig(**(settings | kw))


def _no_duplicates_and_equal_to_the_file(run_dir: Path) -> None:
    client, run = _mlflow_run(run_dir)
    history = _history(client, run)
    _, scalars = _scalars(run_dir / "tensorboard")
    for name, points in _expected_series(run_dir).items():
        assert history[name] == sorted(points.items()), name
        assert [s for s, _ in scalars[name]] == sorted(points), name
        assert [v for _, v in scalars[name]] == [np.float32(points[s]) for s in sorted(points)]


def test_a_crashed_run_is_failed_and_its_resume_continues_the_same_runs(tmp_path):
    out, db = tmp_path / "runs" / "r", tmp_path / "mlflow.db"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(out, db), callback=CrashAt(13))
    client, run = _mlflow_run(out)
    assert run.info.status == "FAILED" and run.data.tags["wae.error"] == "simulated crash"
    # steps 11-13 came after the step-10 checkpoint: the trackers hold them already
    assert max(s for s, _ in _history(client, run)["train/loss"]) == 13
    first_id = run.info.run_id
    resumed = train(_cfg(out, db), resume=True)
    client, run = _mlflow_run(out)
    assert run.info.run_id == first_id and run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert resumed.summary["steps"] == 18
    _no_duplicates_and_equal_to_the_file(out)
    assert _history(client, run)["final/test_cost"] == [(18, resumed.summary["test_cost"])]


def test_an_interrupted_run_is_killed_and_resumes_through_the_cli(tmp_path, capsys):
    out, db = tmp_path / "runs" / "r", tmp_path / "mlflow.db"
    with pytest.raises(TrainingInterrupted):
        train(_cfg(out, db), callback=StopAt(12))  # at an epoch's end
    client, run = _mlflow_run(out)
    assert run.info.status == "KILLED"
    code, stdout, err = wae(capsys, "run", "--resume", str(out))
    assert code == 0, err
    assert f"MLflow: run {run.info.run_id} of the experiment 'wae-toolkit'" in stdout
    assert f"tensorboard --logdir {out.parent}" in stdout
    client, run2 = _mlflow_run(out)
    assert run2.info.run_id == run.info.run_id and run2.info.status == "FINISHED"
    _no_duplicates_and_equal_to_the_file(out)


def test_fit_tracks_to_the_default_store_beside_the_run_folders(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    model = wt.fit(
        epochs=1, data_opts={"limit": 300}, device="cpu", out="../runs/api", track=["mlflow"]
    )
    runs = (tmp_path / "runs").resolve()
    saved = json.loads((runs / "api" / "tracking.json").read_text())["mlflow"]
    assert saved["tracking_uri"] == f"sqlite:///{runs / 'mlflow.db'}"
    client, run = _mlflow_run(runs / "api")
    assert client.get_experiment(run.info.experiment_id).name == "wae-toolkit"
    assert run.info.artifact_uri.startswith((runs / "mlartifacts").as_uri())
    assert run.data.metrics["final/test_mmd"] == model.summary["test_mmd"]
    assert list(cwd.iterdir()) == []  # nothing in the working directory (no ./mlruns)
    assert not (runs / "api" / "tensorboard").exists()


@pytest.mark.parametrize(
    ("tracker", "module", "label"),
    [
        ("mlflow", "mlflow", "MLflow"),
        ("tensorboard", "tensorboard", "TensorBoard"),
        ("wandb", "wandb", "W&B"),
    ],
)
def test_a_missing_package_is_named_before_anything_is_trained(
    tmp_path, capsys, monkeypatch, tracker, module, label
):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    out = tmp_path / "run"
    code, _, err = wae(capsys, "run", *QUICK, "--track", tracker, "--out", str(out))
    assert code == 2
    assert error_line(err) == (
        f"Error: --track {tracker} needs {label}, which is not installed: "
        f"pip install 'wae-toolkit[{tracker}]'."
    )
    assert not out.exists()
    with pytest.raises(UsageError, match=f"needs {label}"):
        wt.fit(epochs=1, out=str(out), track=[tracker])
    assert not out.exists()


def test_bad_tracking_settings_are_refused_in_one_sentence(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = wae(capsys, "run", *QUICK, "--track", "mlfow", "--out", str(out))
    assert code == 2
    assert error_line(err) == (
        "Error: Unknown tracker 'mlfow' in track. Did you mean 'mlflow'? "
        "Trackers: mlflow, tensorboard, wandb."
    )
    code, _, err = wae(capsys, "run", *QUICK, "--tracking-uri", "x.db", "--out", str(out))
    assert code == 2
    assert "tracking_uri (--tracking-uri) is MLflow's; add --track mlflow." in error_line(err)
    assert not out.exists()
    problems = RunConfig(track="mlflow", experiment=" ").problems()
    assert problems == [
        "track must be a list of tracker names (mlflow, tensorboard, wandb); got 'mlflow'.",
        "experiment must be a non-empty name; got ' '.",
    ]


def test_settings_come_from_files_and_show_in_config_show(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('track = ["tensorboard"]\nexperiment = "e1"\n')
    code, out, _ = wae(capsys, "config", "show", "--config", str(cfg), "--set", "epochs=2")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "['tensorboard']" in rows["track"] and "file" in rows["track"]
    assert "'e1'" in rows["experiment"]
    code, out, _ = wae(capsys, "config", "show", "--set", "track=mlflow,tensorboard")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "['mlflow', 'tensorboard']" in rows["track"] and "command line" in rows["track"]
    # a config.json written before tracking existed still loads, with tracking off
    new = {"track", "tracking_uri", "experiment"}
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in new}
    loaded = RunConfig.from_dict(old)
    assert loaded.track == [] and loaded.tracking_uri is None and loaded.experiment == "wae-toolkit"


def test_overwrite_replaces_the_old_runs_event_files(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", *QUICK, "--track", "tensorboard", "--out", str(out)]
    assert wae(capsys, *args)[0] == 0
    assert wae(capsys, *args, "--epochs", "1", "--overwrite")[0] == 0
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    _, scalars = _scalars(out / "tensorboard")
    assert [s for s, _ in scalars["epoch/loss"]] == [3]  # the new one-epoch run only


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_processes_make_one_tracked_run(tmp_path):
    out, db = tmp_path / "runs" / "ddp", tmp_path / "mlflow.db"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "wae_toolkit", "run", "--nproc", "2", *QUICK, "--out", str(out)]
    cmd += ["--track", "mlflow,tensorboard", "--tracking-uri", f"sqlite:///{db}"]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    client, run = _mlflow_run(out)
    assert len(client.search_runs([run.info.experiment_id])) == 1  # rank 0's only
    assert run.info.status == "FINISHED" and run.data.metrics["final/processes"] == 2
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    _no_duplicates_and_equal_to_the_file(out)


def test_an_unusable_tracking_uri_stops_before_the_run_folder_is_written(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    out = tmp_path / "run"
    uri = "http://127.0.0.1:9"  # nothing listens on the discard port
    code, _, err = wae(
        capsys, "run", *QUICK, "--track", "mlflow", "--tracking-uri", uri, "-o", str(out)
    )
    assert code == 1
    assert error_line(err).startswith(f"Error: MLflow tracking at '{uri}' failed: ")
    assert not out.exists()


def test_a_path_ending_in_db_is_an_sqlite_store(tmp_path):
    db = tmp_path / "s" / "m.db"
    assert mlflow_store(str(db), tmp_path / "runs" / "r") == (
        f"sqlite:///{db.resolve()}",
        (db.resolve().parent / "mlartifacts").as_uri(),
    )
    assert mlflow_store("sqlite:///s/m.db", tmp_path)[0] == f"sqlite:///{Path('s/m.db').resolve()}"
    assert mlflow_store("http://h:5000", tmp_path) == ("http://h:5000", None)
    assert mlflow_store(str(tmp_path / "mlruns"), tmp_path) == (
        (tmp_path / "mlruns").as_uri(),
        None,
    )
