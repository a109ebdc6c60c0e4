"""RunConfig validation, schedules, and the quality of the default run."""

from __future__ import annotations

import pytest

from wae_toolkit.config.settings import RunConfig, parse_schedule
from wae_toolkit.errors import UsageError


def test_the_papers_schedule_is_in_proportion_and_the_default_is_constant():
    assert RunConfig().resolved_schedule() == []  # the default: a constant learning rate
    assert [RunConfig().lr_factor(e) for e in (0, 150, 299)] == [1.0, 1.0, 1.0]
    assert RunConfig(epochs=100, lr_schedule=None).resolved_schedule() == [(30, 0.5), (50, 0.1)]
    cfg = RunConfig(epochs=300, lr_schedule=parse_schedule("paper"))
    assert [cfg.lr_factor(e) for e in (0, 89, 90, 149, 150, 299)] == [1, 1, 0.5, 0.5, 0.1, 0.1]
    assert RunConfig(lr_schedule=[]).lr_factor(299) == 1.0


def test_parse_schedule():
    assert parse_schedule("30:0.5, 50:0.1") == [(30, 0.5), (50, 0.1)]
    assert parse_schedule("none") == []
    assert parse_schedule("paper") is None
    with pytest.raises(UsageError, match="EPOCH:FACTOR"):
        parse_schedule("30=0.5")


def test_every_problem_is_reported_once():
    cfg = RunConfig(latent_dim=0, lam=-1.0, lr=0.0, beta1=1.5, encoder="x")
    problems = cfg.problems()
    assert len(problems) == 5
    with pytest.raises(UsageError) as exc:
        cfg.validate()
    assert str(exc.value).count("\n") == 4


def test_round_trip_and_unknown_keys():
    cfg = RunConfig(penalty="gan-js", lr_schedule=[(3, 0.5)], penalty_opts={"hidden": 32})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UsageError, match="Unknown run setting"):
        RunConfig.from_dict({"lamda": 3})


def test_default_run_is_a_good_wae_on_digits(tmp_path):
    """The default configuration, untouched: codes match the prior and reconstructions are good.

    Reference figures (seed 0, CPU): test_mmd 0.021 against a floor of 0.018, reconstruction
    cost 0.74 (sum of squared errors over 64 pixels; predicting the mean image costs about 7).
    """
    from wae_toolkit.api import train

    res = train(RunConfig(out=str(tmp_path / "default"), device="cpu"))
    s = res.summary
    assert s["test_mmd"] < 1.5 * s["prior_mmd"], s
    mean_cost = float(
        ((res.dataset.test - res.dataset.train.mean(0)) ** 2).flatten(1).sum(1).mean()
    )
    assert s["test_cost"] < 0.2 * mean_cost, (s, mean_cost)


def test_latent_dimension_defaults_to_8_or_the_data_size():
    assert RunConfig().resolved_latent_dim((1, 8, 8)) == 8
    assert RunConfig().resolved_latent_dim((2,)) == 2
    assert RunConfig(latent_dim=5).resolved_latent_dim((2,)) == 5
