"""Offline evaluation of trained runs: metrics that need no download, and FID when it can run.

- :mod:`~wae_toolkit.metrics.sharpness`: the paper's sharpness, the variance of the
  Laplace-filtered image.
- :mod:`~wae_toolkit.metrics.ot`: the 2-Wasserstein distance between sample sets (exact with
  POT, Sinkhorn with geomloss for large sets).
- :mod:`~wae_toolkit.metrics.frechet`: the Fréchet distance between Gaussians fitted to
  features.
- :mod:`~wae_toolkit.metrics.classifier`: a small classifier trained (and cached) per data set,
  whose features give the classifier Fréchet distance.
- :mod:`~wae_toolkit.metrics.fid`: FID with Inception features through the optional
  torch-fidelity.
- :mod:`~wae_toolkit.metrics.evaluate`: :func:`evaluate_run`, which writes ``eval.json``
  (:mod:`~wae_toolkit.metrics.record`); :mod:`~wae_toolkit.metrics.compare`: :func:`compare_runs`.

Every metric is reported beside its floor, the value real data reach at the same sample size.
The names below are imported on first use, so importing one submodule stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.metrics.compare import compare_runs
    from wae_toolkit.metrics.evaluate import RunDataError, evaluate_run
    from wae_toolkit.metrics.record import EVAL_FILE, METRICS

__all__ = ["EVAL_FILE", "METRICS", "RunDataError", "evaluate_run", "compare_runs"]

__getattr__ = lazy_getattr(
    "wae_toolkit.metrics",
    {
        "EVAL_FILE": "record",
        "METRICS": "record",
        "RunDataError": "evaluate",
        "evaluate_run": "evaluate",
        "compare_runs": "compare",
    },
)
