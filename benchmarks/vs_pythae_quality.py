"""Sample quality of the default WAE-MMD against pythae 0.1.2's WAE_MMD, as a new user gets them.

Both train on the built-in digits (the same train/held-out split), with the same networks (the
MLP 64-256-256-8 and back that wae-toolkit's ``mlp`` plugin builds: pythae gets thin wrappers
around the very modules), batch 100, 50 epochs, one seed after the other:

* wae-toolkit: ``wae run --epochs 50 --seed S`` with every other setting at its default (or a
  config file given with ``--config``, to measure candidates for the defaults);
* ``pythae``: ``WAE_MMD_Config`` and ``BaseTrainerConfig`` at their defaults (IMQ kernel, scales
  0.1-10, ``reg_weight`` 3e-2, Adam at ``1e-4``) apart from the batch, the epochs and the seed;
* ``pythae-paper``: the same with the paper's settings, which were wae-toolkit's defaults
  before this benchmark chose new ones: ``reg_weight`` 10, Adam at ``1e-3`` with betas
  (0.5, 0.999), a constant learning rate (pythae has no schedule).

For every run: ``W2(samples)``, the exact 2-Wasserstein distance (POT, as ``wae eval``'s
``w2_samples``) between as many decoded prior samples as there are held-out images and the
held-out images; its floor, the same distance between the held-out images and as many training
images; and the held-out reconstruction error (squared L2 summed over the pixels, averaged over
the images). Prints mean +- standard deviation over the seeds and the target of issue 17: the
default's excess over the floor at most half pythae's, and a reconstruction no worse.

    python benchmarks/vs_pythae_quality.py                       # 5 seeds, 50 epochs
    python benchmarks/vs_pythae_quality.py --seeds 0,1 --only wae-toolkit --config cand.toml

Needs the ``bench`` extra (pythae 0.1.2) and POT. Not a test: about 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # pythae forces a tqdm bar; silence it before import

import torch  # noqa: E402
from vs_pythae import pythae_wae_mmd, quiet_pythae  # noqa: E402  (benchmarks/ is on the path)

from wae_toolkit.api import train  # noqa: E402
from wae_toolkit.assembly.components import build_components  # noqa: E402
from wae_toolkit.config.presets import resolve_config  # noqa: E402
from wae_toolkit.config.settings import RunConfig  # noqa: E402
from wae_toolkit.data import load_dataset  # noqa: E402
from wae_toolkit.metrics.ot import ot_distance  # noqa: E402

EPOCHS = 50
BATCH = 100


def _w2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(ot_distance(a.flatten(1).double(), b.flatten(1).double()).w2)


def _recon_error(reconstruct: Any, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((reconstruct(x) - x).flatten(1).square().sum(1).mean())


def _scores(sample: Any, reconstruct: Any, data: Any, seed: int) -> dict[str, float]:
    """W2 of ``sample(n, generator)`` (decoded prior samples) to the held-out data, its floor and
    the held-out reconstruction error."""
    test = data.test
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        samples = sample(len(test), gen)
    pick = torch.randperm(len(data.train), generator=gen)[: len(test)]
    floor = _w2(data.train[pick], test)
    w2 = _w2(samples, test)
    return {
        "w2": w2,
        "floor": floor,
        "excess": w2 - floor,
        "recon": _recon_error(reconstruct, test),
    }


def run_wae(
    seed: int, out: Path, config_file: str | None = None, **settings: Any
) -> dict[str, float]:
    """One wae-toolkit run at this budget: the defaults, a config file's settings, or the
    ``settings`` given (benchmarks/defaults_search.py), scored by :func:`_scores`."""
    given: dict[str, Any] = {"epochs": EPOCHS, "batch_size": BATCH, "seed": seed}
    given |= {"out": str(out), "overwrite": True, "threads": 1, **settings}
    config = resolve_config(None, given, config_file)[0] if config_file else RunConfig(**given)
    result = train(config)
    model = result.model.eval()

    def sample(n: int, gen: torch.Generator) -> torch.Tensor:
        return model.decode(model.prior.sample(n, generator=gen))

    return _scores(sample, model.reconstruct, result.dataset, seed)


#: pythae's settings of each row (model config, trainer config): its defaults, and the paper's.
PYTHAE_ROWS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "pythae": ({}, {}),
    "pythae-paper": (
        {"reg_weight": 10.0},
        {"learning_rate": 1e-3, "optimizer_params": {"betas": (0.5, 0.999)}},
    ),
}


def run_pythae(seed: int, tmp: Path, row: str) -> dict[str, float]:
    from pythae.data.datasets import BaseDataset
    from pythae.models import WAE_MMD_Config
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    model_settings, trainer_settings = PYTHAE_ROWS[row]
    data = load_dataset("digits", {})
    torch.manual_seed(seed)  # the networks' initial weights
    comps = build_components(RunConfig(latent_dim=8), data.sample_shape, data.value_range)
    shape = tuple(data.sample_shape)
    model_config = WAE_MMD_Config(input_dim=shape, latent_dim=8, **model_settings)
    model = pythae_wae_mmd(model_config, comps.model.encoder, comps.model.decoder)
    trainer_config = BaseTrainerConfig(
        output_dir=tempfile.mkdtemp(dir=tmp, prefix="pythae_"),
        per_device_train_batch_size=BATCH,
        num_epochs=EPOCHS,
        steps_saving=None,
        steps_predict=None,
        seed=seed,
        no_cuda=True,
        **trainer_settings,
    )
    train_set = BaseDataset(data.train, torch.zeros(len(data.train)))
    torch.set_num_threads(1)
    BaseTrainer(model, train_set, None, trainer_config).train()
    model.eval()

    def decode(z: torch.Tensor) -> torch.Tensor:
        return model.decoder(z)["reconstruction"]

    def sample(n: int, gen: torch.Generator) -> torch.Tensor:  # pythae's prior: N(0, I)
        return decode(torch.randn(n, 8, generator=gen))

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        return decode(model.encoder(x)["embedding"])

    return _scores(sample, reconstruct, data, seed)


def _fmt(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} +- {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument(
        "--only", default=None, help="comma-separated rows: wae-toolkit, " + ", ".join(PYTHAE_ROWS)
    )
    parser.add_argument("--config", default=None, help="a run config file for wae-toolkit")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if any(name != "wae-toolkit" for name in (args.only or "pythae").split(",")):
        quiet_pythae()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = ["wae-toolkit", *PYTHAE_ROWS]
    wanted = names if not args.only else [n for n in args.only.split(",") if n in names]
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in wanted}
    with tempfile.TemporaryDirectory(prefix="quality_") as tmp_name:
        tmp = Path(tmp_name)
        for seed in seeds:
            for name in wanted:
                if name == "wae-toolkit":
                    rows[name].append(run_wae(seed, tmp / f"wae-{seed}", args.config))
                else:
                    rows[name].append(run_pythae(seed, tmp, name))
            print(
                f"seed {seed}: " + json.dumps({k: v[-1] for k, v in rows.items() if v}), flush=True
            )
    print(f"\ndigits, MLP 64-256-256-8, batch {BATCH}, {EPOCHS} epochs, seeds {seeds}")
    print(f"{'library':12} {'W2(samples)':>16} {'floor':>16} {'excess':>16} {'recon':>16}")
    for lib, runs in rows.items():
        if runs:
            cells = [_fmt([r[k] for r in runs]) for k in ("w2", "floor", "excess", "recon")]
            print(f"{lib:12} " + " ".join(f"{c:>16}" for c in cells))
    for name in PYTHAE_ROWS:
        if rows.get("wae-toolkit") and rows.get(name):
            ours = statistics.fmean(r["excess"] for r in rows["wae-toolkit"])
            theirs = statistics.fmean(r["excess"] for r in rows[name])
            recon = statistics.fmean(r["recon"] for r in rows["wae-toolkit"])
            their_recon = statistics.fmean(r["recon"] for r in rows[name])
            print(
                f"against {name}: excess ratio {ours / theirs:.2f} (target <= 0.5), "
                f"reconstruction {recon:.3f} vs {their_recon:.3f} (target: no worse)"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": seeds, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
