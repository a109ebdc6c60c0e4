"""The search that chose the default run's settings (issue 17; docs/results.md).

An Optuna study (TPE, seed 0) over the settings a new default may change, each trial being two
runs (seeds 0 and 1) at the peers' budget: digits, the default MLP, batch 100, 50 epochs, scored
as ``benchmarks/vs_pythae_quality.py`` scores them. The objective is the excess of W2(samples,
held-out) over its floor, plus twice any held-out reconstruction error above 0.95 (pythae's
WAE_MMD with the paper's settings reaches 1.01): a change of the defaults may not buy samples
with reconstructions. The space:

* ``lr`` in [1e-3, 6e-3] (log), ``lam`` in [0.5, 30] (log), ``beta1`` in {0.5, 0.9};
* ``latent_dim`` in {4, 6, 8};
* the learning rate constant or on the per-step cosine schedule;
* ``ema`` in {none, 0.98, 0.995}.

The first two trials are enqueued: earlier probes (latent 8, lam 1.8, lr 2e-3, constant, EMA
0.995; the same at latent 6). ``wae sweep`` does the same for any setting with one metric as the
objective (docs/sweeps.md); this script exists because the objective here combines two.

    python benchmarks/defaults_search.py --trials 40 --storage sqlite:///defaults.db

Needs the ``sweep`` and ``bench`` extras. Not a test: about 15 s per trial on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_pythae_quality as quality  # noqa: E402

#: Reconstruction errors above this cost the objective (pythae-paper's mean is 1.01).
RECON_LIMIT = 0.95


def score(settings: dict[str, Any], seeds: tuple[int, ...] = (0, 1)) -> tuple[float, float]:
    """Mean excess of W2(samples) over its floor, and mean held-out reconstruction error."""
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(quality.run_wae(seed, Path(tmp) / "run", **settings))
    return (
        statistics.fmean(r["excess"] for r in rows),
        statistics.fmean(r["recon"] for r in rows),
    )


def objective(trial: Any) -> float:
    settings: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-3, 6e-3, log=True),
        "lam": trial.suggest_float("lam", 0.5, 30.0, log=True),
        "beta1": trial.suggest_categorical("beta1", [0.5, 0.9]),
        "latent_dim": trial.suggest_categorical("latent_dim", [4, 6, 8]),
    }
    if trial.suggest_categorical("schedule", ["constant", "cosine"]) == "cosine":
        settings |= {"schedule": "cosine", "lr_schedule": []}
    else:
        settings["lr_schedule"] = []
    ema = trial.suggest_categorical("ema", [0.0, 0.98, 0.995])
    settings["ema"] = ema or None
    excess, recon = score(settings)
    trial.set_user_attr("excess", excess)
    trial.set_user_attr("recon", recon)
    return excess + 2.0 * max(0.0, recon - RECON_LIMIT)


def main() -> None:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--storage", default="sqlite:///defaults_search.db")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="defaults",
        storage=args.storage,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=8),
    )
    if not study.trials:
        base = {"beta1": 0.5, "schedule": "constant", "ema": 0.995}
        study.enqueue_trial({"lr": 2e-3, "lam": 1.8, "latent_dim": 8, **base})
        study.enqueue_trial({"lr": 3e-3, "lam": 2.0, "latent_dim": 6, **base})
    study.optimize(objective, n_trials=max(0, args.trials - len(study.trials)))
    done = [t for t in study.trials if t.value is not None]
    print(f"{'objective':>9} {'excess':>7} {'recon':>6}  settings")
    for t in sorted(done, key=lambda t: t.value)[:10]:
        excess, recon = t.user_attrs["excess"], t.user_attrs["recon"]
        print(f"{t.value:9.4f} {excess:7.4f} {recon:6.3f}  {t.params}")


if __name__ == "__main__":
    main()
