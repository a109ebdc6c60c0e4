"""Evaluate a finished run folder with every offline metric.

:func:`evaluate_run` loads the run (:func:`~wae_toolkit.load_run`), rebuilds its held-out
split from the data set and options its ``config.json`` records, and computes each metric beside
its floor (what real data score at the same sample size), then writes ``eval.json`` into the run
folder. Sample-based metrics use ``n = min(n_samples, held-out size, training size)`` points: a
seeded subset of the held-out split, as many prior samples decoded by the model, the
reconstructions of that subset, and a seeded training subset of the same size for the floors.
The training subset and the classifier come from the data set without its ``limit`` option (the
held-out split does not depend on it), so a run trained on a few samples is measured like any
other.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from wae_toolkit._version import __version__
from wae_toolkit.data import Dataset, load_dataset
from wae_toolkit.engine.heldout import MAX_MMD_SAMPLES, evaluate, prior_mmd_floor
from wae_toolkit.errors import DataError, UsageError
from wae_toolkit.metrics.batching import batched
from wae_toolkit.metrics.classifier import load_or_train
from wae_toolkit.metrics.fid import fid
from wae_toolkit.metrics.frechet import frechet
from wae_toolkit.metrics.ot import EXACT_MAX, ot_distance
from wae_toolkit.metrics.record import EVAL_FILE, eval_settings
from wae_toolkit.metrics.sharpness import sharpness
from wae_toolkit.runs.folder import write_json
from wae_toolkit.runs.read import check_run_folder, weights_hash
from wae_toolkit.runs.restore import LoadedRun, load_run

__all__ = ["RunDataError", "evaluate_run"]


class RunDataError(DataError):
    """The data a run was trained on can no longer be loaded."""


def _load(run_dir: str | Path, device: str) -> tuple[LoadedRun, Dataset, Dataset]:
    """The run, its data as trained (for the held-out split) and its data without ``limit``."""
    from wae_toolkit.runs.safe_io import link_problem

    path = Path(run_dir)
    check_run_folder(path)
    if link_problem(path / EVAL_FILE, "file"):  # refused now: it could not be written at the end
        raise UsageError(
            f"Cannot write the evaluation record '{path / EVAL_FILE}': it is a symbolic link or "
            "not a plain file, and wae eval never writes through a link; remove it (or replace "
            "it with a plain file) and evaluate again."
        )
    run = load_run(path, device=device)
    if isinstance(run.record["run"].get("data"), dict):
        raise RunDataError(
            f"The run '{path}' was trained on data given in Python, which its config.json "
            "describes but does not hold, so wae eval cannot read them again; evaluate it in "
            "Python on the data (wae_toolkit.load, then model.encode/decode)."
        )
    spec, opts = run.config.data, dict(run.config.data_opts)
    try:
        data = load_dataset(spec, opts)
        full = load_dataset(spec, {k: v for k, v in opts.items() if k != "limit"})
    except DataError as exc:
        raise RunDataError(
            f"The run '{path}' was trained on '{spec}', which can no longer be loaded ({exc})"
        ) from None
    if full.test.shape != data.test.shape or not torch.equal(full.test, data.test):
        full = data  # a source whose held-out split depends on limit: stay with the run's data
    return run, data, full


def _metric(value: float | None, floor: float | None) -> dict[str, float | None]:
    return {"value": value, "floor": floor}


def evaluate_run(
    run_dir: str | Path,
    *,
    n_samples: int = 5000,
    seed: int = 0,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    exact_max: int = EXACT_MAX,
    classifier_steps: int = 1500,
    fid_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Compute every offline metric of a run and write ``eval.json`` into its folder.

    Args:
        run_dir: a run folder written by ``wae run``.
        n_samples: at most this many points enter the sample-based metrics.
        seed: seed of the subsets, the prior samples and the MMD estimates.
        device: where the model runs (``cpu``, ``cuda``...).
        cache_dir: cache root of the data-set classifiers (see
            :func:`wae_toolkit.metrics.classifier.cache_root`).
        exact_max: the largest set solved by exact OT; Sinkhorn beyond.
        classifier_steps: training steps of the classifier (part of its cache key).
        fid_weights: path of the Inception weights (see :mod:`wae_toolkit.metrics.fid`).

    Returns:
        The record written to ``eval.json``: ``metrics`` (name -> ``value`` and ``floor``),
        ``skipped`` (name -> reason), ``details``, ``settings`` and ``timings`` (seconds).

    Raises:
        UsageError: not a run folder, or an unfinished run; RunDataError: its data is gone.
    """
    if n_samples < 2:
        raise UsageError(f"n_samples must be at least 2; got {n_samples}.")
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    started = clock
    run, data, full = _load(run_dir, device)
    model, dev = run.model, torch.device(device)
    lap("load")
    gen = torch.Generator(device=dev).manual_seed(seed)
    test = data.test.to(dev)
    held_out = evaluate(model, run.cost, test, gen)
    mmd_floor = prior_mmd_floor(model.prior, min(len(test), MAX_MMD_SAMPLES), gen)
    metrics = {
        "test_cost": _metric(held_out["test_cost"], None),
        "test_mmd": _metric(held_out["test_mmd"], mmd_floor),
    }
    skipped: dict[str, str] = {}
    details: dict[str, Any] = {}
    lap("held_out")

    n = min(n_samples, len(test), len(full.train))
    pick = torch.Generator().manual_seed(seed)
    real = test[torch.randperm(len(test), generator=pick)[:n].to(dev)]
    train = full.train_tensor[torch.randperm(len(full.train), generator=pick)[:n]].to(dev)
    samples = batched(model.decode, model.prior.sample(n, generator=gen))
    recons = batched(model.reconstruct, real)
    lap("generate")

    is_image = len(data.sample_shape) == 3 and min(data.sample_shape[1:]) >= 3
    if is_image:
        ref = sharpness(real)
        metrics["sharpness_reconstructions"] = _metric(sharpness(recons), ref)
        metrics["sharpness_samples"] = _metric(sharpness(samples), ref)
    else:
        skipped["sharpness"] = f"the data are not images (samples of shape {data.sample_shape})"
    lap("sharpness")

    ot_samples = ot_distance(samples, real, exact_max=exact_max)
    ot_floor = ot_distance(train, real, exact_max=exact_max)
    metrics["w2_samples"] = _metric(ot_samples.w2, ot_floor.w2)
    details["ot"] = {"samples": ot_samples.to_dict(), "floor": ot_floor.to_dict()}
    lap("ot")

    try:
        clf = load_or_train(full, cache_dir=cache_dir, steps=classifier_steps, device=device)
    except UsageError as exc:  # no labels, or unusable ones
        skipped["classifier_fd"] = str(exc)
    else:
        f_real = clf.features(real)
        floor = frechet(clf.features(train), f_real)
        metrics["cfd_samples"] = _metric(frechet(clf.features(samples), f_real), floor)
        # Reconstructions are paired with the held-out points: 0 when perfect, and they can
        # score below two independent real samples, so their floor is 0.
        metrics["cfd_reconstructions"] = _metric(frechet(clf.features(recons), f_real), 0.0)
        details["classifier"] = clf.info()
    lap("classifier")

    if is_image:
        fid_to_real = partial(
            fid, images2=real, value_range=data.value_range, weights_path=fid_weights, device=device
        )
        value, reason = fid_to_real(samples)
        if value is None:
            skipped["fid"] = str(reason)
        else:
            metrics["fid_samples"] = _metric(value, fid_to_real(train)[0])
    else:
        skipped["fid"] = "the data are not images"
    lap("fid")
    timings["total"] = round(time.perf_counter() - started, 3)

    result: dict[str, Any] = {
        "run": str(run.path),
        "data": data.description,
        "n": n,
        "settings": eval_settings(n_samples, seed, exact_max, classifier_steps),
        "device": str(dev),
        "weights_sha256": weights_hash(run.path),
        "wae_toolkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": metrics,
        "skipped": skipped,
        "details": details,
        "timings": timings,
    }
    write_json(run.path / EVAL_FILE, result)
    return result
