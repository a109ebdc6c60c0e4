"""The ``eval.json`` record of a run folder: its name, its metrics and when it can be reused.

``eval.json`` holds ``metrics`` (name -> ``{"value", "floor"}``), ``skipped`` (name -> reason),
``details``, ``timings``, the ``settings`` it was computed with and the SHA-256 of the run's
``model.safetensors``: a record is reused only for the same settings and the same weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wae_toolkit.config.checks import is_number
from wae_toolkit.runs.names import EVAL_FILE

__all__ = [
    "EVAL_FILE",
    "METRICS",
    "HOW_TO_READ",
    "eval_settings",
    "reusable",
    "best_index",
]

#: Metric name -> (label, what its floor is, which way is better), in table order.
METRICS: dict[str, tuple[str, str, str]] = {
    "test_cost": ("held-out cost", "-", "lower"),
    "test_mmd": (
        "MMD^2(codes, prior), eval's draws",
        "2 prior samples",
        "lower, down to the floor",
    ),
    "sharpness_reconstructions": ("sharpness, reconstructions", "real data", "close to real"),
    "sharpness_samples": ("sharpness, samples", "real data", "close to real"),
    "w2_samples": ("W2(samples, held-out)", "train vs held-out", "lower, down to the floor"),
    "cfd_samples": ("classifier FD, samples", "train vs held-out", "lower, down to the floor"),
    "cfd_reconstructions": ("classifier FD, reconstr.", "0: the same points", "lower"),
    "fid_samples": ("FID, samples", "train vs held-out", "lower, down to the floor"),
}
#: The line under the tables that says how to read them.
HOW_TO_READ = (
    "Lower is better for the cost and the distances, down to their floor (real data against real "
    "data at the same sample size); sharpness should be close to the real data's."
)


def eval_settings(
    n_samples: int, seed: int, exact_max: int, classifier_steps: int
) -> dict[str, int]:
    """The settings an ``eval.json`` was computed with (all of them change its values)."""
    return {
        "n_samples": n_samples,
        "seed": seed,
        "exact_max": exact_max,
        "classifier_steps": classifier_steps,
    }


def _is_record(record: dict[str, Any]) -> bool:
    """Whether ``record`` has the shape :func:`wae_toolkit.metrics.evaluate_run` writes (what
    ``wae compare`` shows from it)."""
    n, metrics, skipped = record.get("n"), record.get("metrics"), record.get("skipped")
    return (
        isinstance(n, int)
        and not isinstance(n, bool)
        and isinstance(metrics, dict)
        and all(
            isinstance(m, dict)
            and set(m) >= {"value", "floor"}
            and all(v is None or is_number(v) for v in (m["value"], m["floor"]))
            for m in metrics.values()
        )
        and isinstance(skipped, dict)
        and all(isinstance(v, str) for v in skipped.values())
    )


def reusable(run_dir: Path, settings: dict[str, int]) -> dict[str, Any] | None:
    """The run's ``eval.json`` when it was computed with ``settings`` on its current weights
    (``None`` when it is absent, damaged, or of other settings or weights)."""
    from wae_toolkit.runs.read import read_run

    record = read_run(run_dir).evaluation  # None unless computed on the current weights
    if record is None or record.get("settings") != settings or not _is_record(record):
        return None
    return record


def best_index(values: list[float | None], floors: list[float | None], better: str) -> int | None:
    """Index of the best run for a metric (``better`` as in :data:`METRICS`): the lowest value,
    or the closest to its floor for sharpness; ``None`` with fewer than two values or a tie."""
    scored = []
    for i, (v, f) in enumerate(zip(values, floors, strict=True)):
        if v is None:
            continue
        if better.startswith("close"):
            if f is None:
                continue
            scored.append((abs(v - f), i))
        else:
            scored.append((v, i))
    if len(scored) < 2:
        return None
    scored.sort()
    return scored[0][1] if scored[0][0] < scored[1][0] else None  # no winner on a tie
