"""One trial of a sweep: its runs (one per seed), its pruning, and the value it reports.

Each run is an ordinary run folder, ``FOLDER/trial-0007`` (``trial-0007-seed1``... with
several seeds), trained by :func:`wae_toolkit.train`. While the first seed's run trains,
:class:`PruningCallback` reports the held-out metric ``prune_on`` at each evaluation to the
trial (its step is the epoch) and stops the run cleanly when the pruner says the trial falls
behind; the trial then ends PRUNED.

The trial's value is the mean over its seeds of the objective: a held-out metric of the run's
last evaluation (``summary.json``), or ``w2_samples``: the exact 2-Wasserstein distance
(:func:`wae_toolkit.metrics.ot.ot_distance`, as ``wae eval``) between ``w2_points`` prior
samples decoded by the trained model and as many held-out points (both drawn with seed 0, so
every trial is measured on the same points).
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

import torch

from wae_toolkit.engine.callbacks import Callback, CallbackList
from wae_toolkit.engine.faults import NonFiniteError, TrainingInterrupted
from wae_toolkit.metrics.batching import batched
from wae_toolkit.metrics.ot import OTResult, ot_distance
from wae_toolkit.sweep.plan import SweepPlan

__all__ = ["PruningCallback", "TrialObjective", "sample_w2", "run_dir_name"]


def run_dir_name(number: int, seed: int | None = None) -> str:
    """``trial-0007``, or ``trial-0007-seed1`` for one seed of a trial with several."""
    return f"trial-{number:04d}" + ("" if seed is None else f"-seed{seed}")


@torch.no_grad()
def sample_w2(model: Any, test: torch.Tensor, points: int, seed: int = 0) -> OTResult:
    """W2 between ``min(points, len(test))`` prior samples decoded by ``model`` and as many
    held-out points ``test`` (a seeded subset); exact OT with POT, as ``wae eval``'s
    ``w2_samples``."""
    device = next(model.parameters()).device
    n = min(points, len(test))
    pick = torch.Generator().manual_seed(seed)
    real = test[torch.randperm(len(test), generator=pick)[:n]].to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    samples = batched(model.decode, model.prior.sample(n, generator=gen))
    return ot_distance(samples, real)


class PruningCallback(Callback):
    """Reports ``metric`` at each held-out evaluation to an Optuna ``trial`` (step: the epoch)
    and, with ``prune``, stops the run when ``trial.should_prune()``; not at the evaluation after
    the last epoch (``epochs``), when there is nothing left to save."""

    main_process_only = True

    def __init__(self, trial: Any, metric: str, prune: bool = True, epochs: int = 0) -> None:
        self.trial, self.metric, self.prune, self.epochs = trial, metric, prune, epochs
        self.pruned_at: int | None = None

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value) or self.pruned_at is not None:
            return
        self.trial.report(float(value), epoch)
        if self.prune and epoch < self.epochs and self.trial.should_prune():
            self.pruned_at = epoch
            self.request_stop(
                f"pruned by the sweep after epoch {epoch} ({self.metric} {value:.4g})"
            )


class TrialObjective:
    """The function Optuna calls for each trial (``study.optimize(TrialObjective(...))``).

    Args:
        plan: the sweep.
        folder: where the trials' run folders go.
        threads: CPU threads of each run when the file does not set them.
        callback: one more :class:`~wae_toolkit.Callback` for every run (tests use it).
        started: called once the trial exists (a worker releases its lock there).
    """

    def __init__(
        self, plan: SweepPlan, folder: Path, threads: int | None = None, callback: Any = None,
        started: Any = None,
    ) -> None:  # fmt: skip
        from wae_toolkit.engine.callbacks import as_callback

        self.plan, self.folder, self.threads = plan, folder, threads
        self.callback, self.started = as_callback(callback), started

    def __call__(self, trial: Any) -> float:
        import optuna

        if self.started is not None:
            self.started()
        plan = self.plan
        values = {p.name: p.suggest(trial) for p in plan.space}
        trial.set_user_attr("pid", os.getpid())
        dirs: list[str] = []
        results: list[float] = []
        try:
            for k in range(plan.seeds):
                seed = plan.seed + k
                run_dir = self.folder / run_dir_name(trial.number, seed if plan.seeds > 1 else None)
                dirs.append(str(run_dir))
                trial.set_user_attr("run_dirs", dirs)
                value = self._run(values, seed, run_dir, k == 0 and trial)
                if value is None:
                    raise optuna.TrialPruned(
                        f"pruned after epoch {trial.user_attrs['pruned_at_epoch']}"
                    )
                results.append(value)
                trial.set_user_attr("values", results)
        except NonFiniteError as exc:  # the settings diverged: a failed trial that counts
            trial.set_user_attr("counted", True)
            trial.set_user_attr("error", str(exc).splitlines()[0])
            raise
        except (TrainingInterrupted, KeyboardInterrupt):  # not counted: the next session redoes it
            trial.set_user_attr("interrupted", True)
            raise
        if not all(math.isfinite(v) for v in results):
            trial.set_user_attr("counted", True)
            trial.set_user_attr("error", f"the {plan.objective} of a run is not finite")
            return math.nan  # Optuna records the trial as failed
        if len(results) > 1:
            trial.set_user_attr("std", statistics.stdev(results))
        return statistics.fmean(results)

    def _run(self, values: dict[str, Any], seed: int, run_dir: Path, trial: Any) -> float | None:
        """Train one run; its objective, or None when it was pruned. ``trial``: the Optuna trial
        its held-out evaluations are reported to (the first seed's run), or False."""
        from wae_toolkit.api import train

        plan = self.plan
        config, sources = plan.trial_config(values, seed, run_dir, self.threads)
        pruning = (
            PruningCallback(trial, plan.prune_on, plan.prune, config.epochs) if trial else None
        )
        callbacks = [cb for cb in (pruning, self.callback) if cb is not None]
        result = train(config, callback=CallbackList(callbacks), sources=sources)
        if pruning is not None and pruning.pruned_at is not None:
            trial.set_user_attr("pruned_at_epoch", pruning.pruned_at)
            return None
        if self.plan.objective != "w2_samples":
            return float(result.summary[self.plan.objective])
        test = result.dataset.test
        return sample_w2(result.model, test, self.plan.w2_points).w2
