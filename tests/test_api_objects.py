"""wae_toolkit.fit and wae_toolkit.load with plugins given as Python objects (classes, instances).

A class that is an installed plugin is recorded under its plugin name (the run repeats from the
command line); any other class runs under "module:QualifiedName" and must be given to load().
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

import wae_toolkit as wt
from wae_toolkit.builtins.mmd import IMQMMDPenalty
from wae_toolkit.builtins.priors import GaussianPrior
from wae_toolkit.cli.app import main
from wae_toolkit.data import load_dataset
from wae_toolkit.plugins.interfaces import LatentPenalty
from wae_toolkit.plugins.registry import IN_PROCESS, get_plugin_info

FAST = {"epochs": 1, "data_opts": {"limit": 200}, "device": "cpu", "seed": 3}


class MeanGapPenalty(LatentPenalty):
    """Squared distance between the means of the codes and the prior samples (a notebook class)."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight
        self.calls = 0

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        self.calls += torch.is_grad_enabled()  # training steps (evaluations run without grad)
        return self.weight * (z_q.mean(0) - z_p.mean(0)).pow(2).sum()


class WidePrior(GaussianPrior):
    """A Gaussian prior subclass that is not installed as a plugin."""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs without --out go to ./runs


def main_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


def _x() -> Tensor:
    return torch.rand(5, 64)


def test_an_installed_plugin_object_is_recorded_by_name_and_repeats_from_the_cli(tmp_path):
    penalty = IMQMMDPenalty(estimator="paper")
    a = wt.fit(penalty=penalty, out=str(tmp_path / "a"), **FAST)
    run = json.loads((tmp_path / "a" / "config.json").read_text())["run"]
    assert run["penalty"] == "mmd-imq" and run["penalty_opts"]["estimator"] == "paper"
    # the object itself was trained with (bound to the run's prior: D = 8, sigma^2 = 1), not a copy
    assert penalty.constant() == 2.0 * 8 * 1.0 and IMQMMDPenalty().constant(dim=3) == 6.0
    # the saved configuration repeats the run from the command line, bitwise
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b")])
    assert exit_info.value.code in (0, None)
    b = wt.load(tmp_path / "b")
    x = _x()
    assert torch.equal(a.encode(x), b.encode(x))


def test_a_notebook_class_and_instance_train_and_load_back(tmp_path):
    penalty = MeanGapPenalty(weight=2.0)
    model = wt.fit(penalty=penalty, prior=WidePrior, prior_opts={"std": 1.5}, **FAST)
    out = model.run_dir
    assert out.parent == Path("runs") and out.name.startswith("digits-MeanGapPenalty-")
    assert penalty.calls == model.summary["steps"]  # the instance given was the one trained
    record = json.loads((out / "config.json").read_text())
    assert record["run"]["penalty"] == f"{__name__}:MeanGapPenalty"
    assert record["run"]["penalty_opts"] == {"weight": 2.0}
    assert record["run"]["prior"] == f"{__name__}:WidePrior"
    assert record["plugins"]["prior"]["distribution"] == IN_PROCESS
    # the names are not left behind in the registry
    with pytest.raises(wt.WaeError, match="given to wae_toolkit.fit"):
        get_plugin_info("penalty", f"{__name__}:MeanGapPenalty")
    # loading needs the prior class again, and then gives the trained model
    with pytest.raises(wt.WaeError, match=r"wae_toolkit.load\(run, penalty=\.\.\., prior=\.\.\.\)"):
        wt.load(out)
    code = main_code(["sample", str(out), "-n", "4", "--out", str(tmp_path / "s.npy")])
    assert code == 2 and not (tmp_path / "s.npy").exists()
    loaded = wt.load(out, prior=WidePrior, penalty=MeanGapPenalty)
    x = _x()
    assert isinstance(loaded.prior, WidePrior) and loaded.prior.std == 1.5
    assert torch.allclose(loaded.reconstruct(x), model.reconstruct(x), atol=1e-6)


def test_the_given_penalty_is_the_one_optimised():
    # A penalty that sees only the codes' mean, weighted 0 or strongly: only the second pulls the
    # mean of the held-out codes to the prior's mean (0).
    x = load_dataset("digits", {"limit": 300}).test
    gaps = {}
    for weight in (0.0, 1.0):
        model = wt.fit(penalty=MeanGapPenalty(weight=weight), lam=100.0, **{**FAST, "epochs": 4})
        with torch.no_grad():
            gaps[weight] = float(model.encode(x).mean(0).pow(2).sum())
    assert gaps[1.0] < gaps[0.0] / 5, gaps  # measured: 0.024 against 0.335


def test_a_prior_instance_sets_the_latent_dimension(tmp_path):
    model = wt.fit(prior=GaussianPrior(dim=3, std=0.5), **FAST)
    record = json.loads((model.run_dir / "config.json").read_text())["run"]
    assert record["latent_dim"] == 3 and record["prior"] == "gaussian"
    assert record["prior_opts"] == {"std": 0.5}
    with pytest.raises(wt.WaeError, match="dimension 3 but the latent dimension is 4"):
        wt.fit(prior=GaussianPrior(dim=3), latent_dim=4, **FAST)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"penalty": 3}, "must be a plugin name, a subclass of LatentPenalty or an instance"),
        ({"penalty": GaussianPrior}, "subclass of LatentPenalty"),
        ({"cost": IMQMMDPenalty()}, "subclass of Cost"),
        (
            {"penalty": MeanGapPenalty(), "penalty_opts": {"weight": 2.0}},
            "give the options to the object's constructor",
        ),
    ],
)
def test_wrong_objects_get_one_sentence(settings, message, tmp_path):
    with pytest.raises(wt.WaeError, match=message):
        wt.fit(out=str(tmp_path / "x"), **{**FAST, **settings})
    assert not (tmp_path / "x").exists()


def test_load_refuses_other_keywords(tmp_path):
    with pytest.raises(wt.WaeError, match="load\\(\\) takes the classes"):
        wt.load(tmp_path, prior="gaussian")
    with pytest.raises(wt.WaeError, match="got seed"):
        wt.load(tmp_path, seed=3)
