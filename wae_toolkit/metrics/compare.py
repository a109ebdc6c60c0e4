"""Compare runs: each run's ``eval.json``, computed where it is missing or out of date."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError
from wae_toolkit.metrics.evaluate import evaluate_run
from wae_toolkit.metrics.ot import EXACT_MAX
from wae_toolkit.metrics.record import eval_settings, reusable
from wae_toolkit.runs.read import check_run_folder

__all__ = ["compare_runs"]


def compare_runs(
    run_dirs: Sequence[str | Path],
    *,
    recompute: bool = False,
    n_samples: int = 5000,
    seed: int = 0,
    exact_max: int = EXACT_MAX,
    classifier_steps: int = 1500,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Each run's evaluation, in the order given.

    A run's ``eval.json`` is read when it was computed with the same settings on the run's
    current weights (and ``recompute`` is False); otherwise :func:`evaluate_run` computes it
    (and writes it). ``kwargs`` go to :func:`evaluate_run` (``device``, ``cache_dir``...).

    Raises:
        UsageError: no run, or a path that is not a run folder (every path is checked before
            any work starts).
    """
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise UsageError("Give at least one run folder to compare.")
    for path in paths:
        check_run_folder(path)
    settings = eval_settings(n_samples, seed, exact_max, classifier_steps)
    results = []
    for path in paths:
        record = None if recompute else reusable(path, settings)
        if record is None:
            record = evaluate_run(
                path,
                n_samples=n_samples,
                seed=seed,
                exact_max=exact_max,
                classifier_steps=classifier_steps,
                **kwargs,
            )
        results.append(record)
    return results
