"""Offline metrics: sharpness, OT, Fréchet, the cached classifier, evaluate_run and the CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from wae_toolkit.api import train
from wae_toolkit.cli.eval_cmds import compare_command, eval_command
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data import load_dataset
from wae_toolkit.errors import UsageError
from wae_toolkit.metrics import EVAL_FILE, RunDataError, compare_runs, evaluate_run
from wae_toolkit.metrics import classifier as clf_mod
from wae_toolkit.metrics import compare as compare_mod
from wae_toolkit.metrics import fid as fid_mod
from wae_toolkit.metrics.classifier import cache_root, dataset_key, load_or_train
from wae_toolkit.metrics.frechet import frechet, frechet_from_stats, trace_sqrt_product
from wae_toolkit.metrics.ot import ot_distance, sinkhorn_divergence, w2_exact
from wae_toolkit.metrics.sharpness import laplace_variance, sharpness


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These networks and matrices are small: one thread is fastest (and, on a busy machine,
    far faster than two threads spinning against other processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------ sharpness


def test_sharpness_of_a_constant_image_is_zero():
    assert sharpness(torch.full((3, 1, 8, 8), 0.7)) == pytest.approx(0.0, abs=1e-12)
    assert sharpness(torch.full((2, 3, 6, 5), 0.2)) == pytest.approx(0.0, abs=1e-12)


def test_sharpness_of_a_checkerboard_and_a_dot_match_hand_computed_values():
    # 0/1 checkerboard: every filtered pixel is 4 (1 - v) - 4 v = +-4, half of each: variance 16.
    board = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2
    assert sharpness(board.float().view(1, 1, 6, 6)) == pytest.approx(16.0)
    # One bright pixel in a 5x5 image: filtered 3x3 = -4 in the centre, 1 on its four sides,
    # 0 at the corners; mean 0, variance (16 + 4) / 9.
    dot = torch.zeros(1, 1, 5, 5)
    dot[0, 0, 2, 2] = 1.0
    assert sharpness(dot) == pytest.approx(20.0 / 9.0)
    # The score is the mean of the per-image variances.
    both = torch.cat([board.float().view(1, 1, 6, 6)[..., :5, :5], dot])
    assert sharpness(both) == pytest.approx(float(laplace_variance(both).mean()))


def test_sharpness_of_rgb_uses_the_luma_and_refuses_tiny_images():
    gray = torch.rand(4, 1, 7, 7, generator=torch.Generator().manual_seed(0))
    rgb = gray.expand(-1, 3, -1, -1)
    assert sharpness(rgb) == pytest.approx(sharpness(gray) * 0.9999**2, rel=1e-9)
    with pytest.raises(UsageError, match="at least 3x3"):
        sharpness(torch.zeros(2, 1, 2, 8))


# ------------------------------------------------------------------------------------ OT


def _points(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_w2_is_zero_between_a_set_and_itself_and_grows_with_a_shift():
    x = _points(50, 3, 0)
    assert ot_distance(x, x).w2 == pytest.approx(0.0, abs=1e-6)  # sqrt of float64 rounding
    shifts = [0.1, 0.5, 2.0]
    values = [ot_distance(x, _points(50, 3, 1) + s).w2 for s in shifts]
    assert values == sorted(values)


def test_w2_between_shifted_copies_is_the_shift_norm():
    x = _points(40, 5, 2).reshape(40, 1, 5)  # any sample shape is flattened
    shift = torch.tensor([0.3, -1.0, 0.0, 2.0, 0.5], dtype=torch.float64)
    result = ot_distance(x, x + shift)
    assert result.method == "exact"
    assert result.w2 == pytest.approx(float(shift.norm()), rel=1e-9)


def test_exact_w2_matches_a_brute_force_assignment():
    x, y = _points(6, 2, 3), _points(6, 2, 4)
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)
    best = min(
        sum(float(cost[i, p[i]]) for i in range(6)) for p in itertools.permutations(range(6))
    )
    assert w2_exact(x, y) == pytest.approx(best / 6, rel=1e-9)


def test_sinkhorn_branch_approximates_half_the_squared_w2():
    # geomloss's cost is |x - y|^2 / 2, so the divergence is in units of W2^2 / 2.
    x, y = _points(300, 4, 5), _points(300, 4, 6) + 1.0
    exact = w2_exact(x, y)
    assert sinkhorn_divergence(x, y, blur=0.05, scaling=0.9) == pytest.approx(exact / 2, rel=0.03)
    approx = ot_distance(x, y, exact_max=100, blur=0.05, scaling=0.9)
    assert approx.method == "sinkhorn" and approx.blur == 0.05
    assert approx.w2 == pytest.approx(math.sqrt(exact), rel=0.015)
    assert sinkhorn_divergence(x, x) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------ Fréchet


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda k: st.tuples(
            *[st.lists(st.floats(-3, 3), min_size=k, max_size=k) for _ in range(2)],
            *[st.lists(st.floats(0, 4), min_size=k, max_size=k) for _ in range(2)],
        )
    )
)
def test_frechet_of_diagonal_gaussians_matches_the_closed_form(params):
    mu1, mu2, a, b = (np.array(p) for p in params)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_from_stats(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_frechet_matches_scipy_sqrtm_on_full_covariances():
    linalg = pytest.importorskip("scipy.linalg", reason="scipy is not installed")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert trace_sqrt_product(s1, s2) == pytest.approx(np.trace(covmean), rel=1e-8)


def test_frechet_of_feature_sets_is_zero_on_itself_and_finite_when_singular():
    f = _points(200, 8, 7)
    assert frechet(f, f) == pytest.approx(0.0, abs=1e-8)
    assert frechet(f, f + 1.0) == pytest.approx(8.0, rel=1e-8)  # a shift adds ||d mu||^2
    few = _points(5, 20, 8)  # 5 samples in 20 dimensions: singular covariances
    assert math.isfinite(frechet(few, _points(5, 20, 9)))


# ------------------------------------------------------------------------------------ classifier


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One classifier cache for the module, so the digits classifier is trained once."""
    return tmp_path_factory.mktemp("wae-cache")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_classifier_trains_well_on_digits_and_is_cached(cache, digits, monkeypatch):
    first = load_or_train(digits, cache_dir=cache)
    assert first.accuracy > 0.9
    assert first.path.is_file() and first.path.with_suffix(".json").is_file()
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["accuracy"] == first.accuracy and meta["key"] == dataset_key(digits, 0, 1500)
    stamp = first.path.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier was trained again")

    monkeypatch.setattr(clf_mod, "_train", no_training)
    second = load_or_train(digits, cache_dir=cache)
    assert second.cached and second.accuracy == first.accuracy
    assert first.path.stat().st_mtime_ns == stamp
    x = digits.test[:50]
    assert torch.equal(first.features(x), second.features(x))


def test_classifier_cache_is_keyed_on_the_data(cache, digits, monkeypatch):
    other_split = load_dataset("digits", {"seed": 7})
    changed = dataclasses.replace(digits, train=digits.train.flip(0))
    keys = {dataset_key(d, 0, 1500) for d in (digits, other_split, changed)}
    assert len(keys) == 3
    calls = []
    real_train = clf_mod._train

    def counting(data, seed, steps, device):
        calls.append(data)
        return real_train(data, seed, 5, device)

    monkeypatch.setattr(clf_mod, "_train", counting)
    trained = load_or_train(other_split, cache_dir=cache)
    assert len(calls) == 1 and not trained.cached
    assert trained.path != load_or_train(digits, cache_dir=cache).path


def test_cache_root_follows_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("WAE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "wae-toolkit"


def test_classifier_needs_labels(tmp_path):
    unlabelled = load_dataset("swiss-roll", {"n": 100})
    with pytest.raises(UsageError, match="no labels"):
        load_or_train(unlabelled, cache_dir=tmp_path)


# ------------------------------------------------------------------------------------ FID


def test_fid_says_why_it_cannot_run(tmp_path, monkeypatch):
    x = torch.rand(4, 1, 8, 8)
    reason = fid_mod.fid_status()
    if reason is not None:
        assert fid_mod.fid(x, x, (0.0, 1.0)) == (None, reason)
    monkeypatch.setattr(fid_mod, "_import_fidelity", lambda: (object(), None))
    missing = tmp_path / "none.pth"
    assert fid_mod.fid_status(missing) == (
        f"Inception weights not found at {missing} (they are never downloaded)"
    )


def test_fid_with_inception_weights():
    reason = fid_mod.fid_status()
    if reason is not None:
        pytest.skip(f"FID cannot run here: {reason}")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, 32, 32, generator=gen), torch.rand(64, 3, 32, 32, generator=gen)
    value, why = fid_mod.fid(x, y, (0.0, 1.0))
    assert why is None and value is not None and value >= 0.0


# ------------------------------------------------------------------------------------ runs


def _tiny_run(path: Path, **kw) -> Path:
    cfg = {"data_opts": {"limit": 200}, "epochs": 1, "device": "cpu", "out": str(path)} | kw
    train(RunConfig(**cfg))
    return path


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_run(tmp_path_factory.mktemp("runs") / "r")


ALL_METRICS = {
    "test_cost",
    "test_mmd",
    "sharpness_reconstructions",
    "sharpness_samples",
    "w2_samples",
    "cfd_samples",
    "cfd_reconstructions",
}


def test_evaluate_run_computes_every_metric_and_writes_eval_json(digits_run, cache):
    result = evaluate_run(digits_run, cache_dir=cache)
    assert ALL_METRICS <= set(result["metrics"])
    assert ("fid_samples" in result["metrics"]) != ("fid" in result["skipped"])
    for name in ALL_METRICS - {"test_cost"}:
        m = result["metrics"][name]
        assert math.isfinite(m["value"]) and math.isfinite(m["floor"]), name
    assert result["n"] == 360  # digits' held-out split; the floor uses 360 training samples
    assert result["details"]["ot"]["samples"]["method"] == "exact"
    assert result["details"]["classifier"]["accuracy"] > 0.9
    assert json.loads((digits_run / EVAL_FILE).read_text()) == result
    again = evaluate_run(digits_run, cache_dir=cache)
    assert again["metrics"] == result["metrics"]  # a fixed seed gives the same values


def test_compare_reuses_current_eval_json(digits_run, cache, monkeypatch):
    first = compare_runs([digits_run], cache_dir=cache)[0]
    calls = []
    monkeypatch.setattr(compare_mod, "evaluate_run", lambda p, **kw: calls.append(kw) or first)
    assert compare_runs([digits_run, digits_run], cache_dir=cache) == [first, first]
    assert calls == []
    compare_runs([digits_run], seed=1, cache_dir=cache)
    assert len(calls) == 1 and calls[0]["seed"] == 1


def test_evaluate_run_on_toy_vectors_skips_image_metrics(tmp_path):
    run = _tiny_run(tmp_path / "toy", data="swiss-roll", data_opts={"n": 400})
    result = evaluate_run(run, cache_dir=tmp_path / "cache")
    assert "not images" in result["skipped"]["sharpness"]
    assert "no labels" in result["skipped"]["classifier_fd"]
    assert {"test_cost", "test_mmd", "w2_samples"} <= set(result["metrics"])


def test_evaluate_run_says_when_the_data_is_gone(tmp_path):
    data = tmp_path / "points.npy"
    np.save(data, np.random.default_rng(0).standard_normal((120, 2)).astype(np.float32))
    run = _tiny_run(tmp_path / "run", data=str(data), data_opts={})
    data.unlink()
    with pytest.raises(RunDataError, match="can no longer be loaded"):
        evaluate_run(run, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
    return app


def test_eval_and_compare_commands_print_tables(cli, digits_run, cache):
    runner = CliRunner()
    res = runner.invoke(cli, ["eval", str(digits_run), "--cache-dir", str(cache)])
    assert res.exit_code == 0, res.output
    for text in ("MMD^2", "sharpness", "W2(samples", "classifier FD", "floor", "eval.json"):
        assert text in res.output
    res = runner.invoke(
        cli, ["compare", str(digits_run), str(digits_run), "--cache-dir", str(cache)]
    )
    assert res.exit_code == 0, res.output
    assert res.output.count(digits_run.name) >= 2 and "W2(samples" in res.output


def test_eval_command_refuses_a_folder_that_is_not_a_run(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["eval", str(empty)], ["compare", str(empty)]):
        res = CliRunner().invoke(cli, args)
        assert isinstance(res.exception, UsageError)
        assert str(res.exception) == f"'{empty}' is not a run folder: it has no config.json."
