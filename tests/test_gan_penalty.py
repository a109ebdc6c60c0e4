"""The gan-js latent discriminator penalty: finite under saturation, trains, right architecture.

Reference values are computed here independently, in float64, from the definitions
``-log sigmoid(D(z_p)) - log(1 - sigmoid(D(z_q)))`` and ``-log sigmoid(D(z_q))``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from wae_toolkit.builtins.gan import JSGANPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.testing import IsotropicGaussian


class StandInPrior(IsotropicGaussian):
    """The kit's N(0, variance I) plus a parameter that must not leak into the GAN."""

    def __init__(self, dim: int, variance: float = 1.0) -> None:
        super().__init__(dim, variance)
        self.shift = nn.Parameter(torch.zeros(()))


def _linears(pen: JSGANPenalty) -> list[nn.Linear]:
    assert pen.discriminator is not None
    return [m for m in pen.discriminator if isinstance(m, nn.Linear)]


@torch.no_grad()
def _reference_logits(pen: JSGANPenalty, z: torch.Tensor) -> torch.Tensor:
    """The MLP evaluated by hand in float64, layer by layer."""
    h = z.double()
    lin = _linears(pen)
    for layer in lin[:-1]:
        h = torch.relu(h @ layer.weight.double().T + layer.bias.double())
    return (h @ lin[-1].weight.double().T + lin[-1].bias.double()).squeeze(-1)


def test_discriminator_has_the_configured_architecture():
    pen = JSGANPenalty(hidden=32, layers=3)
    assert pen.adversarial and pen.discriminator is None and pen.optimizer is None
    pen.bind(StandInPrior(5))
    mods = list(pen.discriminator)
    assert [type(m) for m in mods] == [nn.Linear, nn.ReLU] * 3 + [nn.Linear]
    assert [(m.in_features, m.out_features) for m in _linears(pen)] == [
        (5, 32),
        (32, 32),
        (32, 32),
        (32, 1),
    ]
    default = JSGANPenalty()
    default.bind(StandInPrior(8))
    assert [(m.in_features, m.out_features) for m in _linears(default)] == [(8, 512)] + [
        (512, 512)
    ] * 3 + [(512, 1)]
    # Without bind, the discriminator is built for the codes on first use.
    lazy = JSGANPenalty(hidden=8, layers=1)
    lazy(torch.randn(4, 3), torch.randn(4, 3))
    assert [(m.in_features, m.out_features) for m in _linears(lazy)] == [(3, 8), (8, 1)]


def test_losses_match_their_definitions():
    torch.manual_seed(0)
    pen = JSGANPenalty(hidden=16, layers=2, lr=1e-3)
    pen.bind(StandInPrior(3))
    g = torch.Generator().manual_seed(1)
    z_q = torch.randn(20, 3, generator=g) + 1.0
    z_p = torch.randn(24, 3, generator=g)
    # Encoder loss: -mean log sigmoid(D(z_q)).
    want = -torch.log(torch.sigmoid(_reference_logits(pen, z_q))).mean()
    assert float(pen(z_q, z_p)) == pytest.approx(float(want), rel=1e-5)
    # critic_loss: the discriminator loss before the (single) update.
    before = copy.deepcopy(pen)
    lq, lp = _reference_logits(before, z_q), _reference_logits(before, z_p)
    want_critic = -torch.log(torch.sigmoid(lp)).mean() - torch.log(1 - torch.sigmoid(lq)).mean()
    logs = pen.critic_step(z_q, z_p)
    assert set(logs) == {"critic_loss"}
    loss = logs["critic_loss"]
    assert loss.dim() == 0 and not loss.requires_grad and loss.device == z_q.device
    assert float(loss) == pytest.approx(float(want_critic), rel=1e-5)
    # One Adam step moved the discriminator.
    assert not torch.equal(_linears(pen)[0].weight, _linears(before)[0].weight)


def test_never_nan_or_inf_with_a_saturated_discriminator():
    torch.manual_seed(0)
    for prior_logit in (False, True):
        pen = JSGANPenalty(hidden=16, layers=2, prior_logit=prior_logit)
        pen.bind(StandInPrior(4))
        with torch.no_grad():
            last = _linears(pen)[-1]
            last.weight.mul_(1e4)
            last.bias.mul_(1e4)
        z_q = (1e3 * torch.randn(32, 4)).requires_grad_(True)  # codes far from the prior
        z_p = torch.randn(32, 4)
        logits = pen.logits(z_q.detach()).detach()
        # Saturated: the naive -log sigmoid or -log(1 - sigmoid) overflows to inf here.
        assert float(logits.abs().max()) > 1e3
        naive = torch.cat(
            [-torch.log(torch.sigmoid(logits)), -torch.log(1 - torch.sigmoid(logits))]
        )
        assert not torch.isfinite(naive).all()
        value = pen(z_q, z_p)
        assert torch.isfinite(value)
        value.backward()
        assert torch.isfinite(z_q.grad).all()
        for _ in range(3):
            logs = pen.critic_step(z_q.detach(), z_p)
            assert torch.isfinite(logs["critic_loss"])
        assert all(torch.isfinite(p).all() for p in pen.parameters())
        assert torch.isfinite(pen(z_q, z_p))


def test_critic_step_learns_to_separate_codes_from_prior():
    torch.manual_seed(0)
    pen = JSGANPenalty(hidden=32, layers=2, lr=1e-2)
    pen.bind(StandInPrior(2))
    g = torch.Generator().manual_seed(3)
    losses = []
    for _ in range(60):
        z_q = 0.5 * torch.randn(64, 2, generator=g) + 3.0  # separable from N(0, I)
        z_p = torch.randn(64, 2, generator=g)
        losses.append(float(pen.critic_step(z_q, z_p)["critic_loss"]))
    # Chance level is 2 log 2 = 1.386 (D = 1/2 everywhere); separable data can reach 0.
    assert losses[0] == pytest.approx(2 * math.log(2), abs=0.3)
    assert sum(losses[-10:]) / 10 < 0.25
    z_q = 0.5 * torch.randn(200, 2, generator=g) + 3.0
    z_p = torch.randn(200, 2, generator=g)
    assert float((pen.logits(z_p) > 0).double().mean()) > 0.95
    assert float((pen.logits(z_q) < 0).double().mean()) > 0.95
    # And the encoder's loss is now large on those codes: it pushes them towards the prior.
    assert float(pen(z_q, z_p)) > 2.0


def test_critic_steps_option_runs_that_many_updates():
    torch.manual_seed(0)
    one = JSGANPenalty(hidden=8, layers=1, critic_steps=1)
    one.bind(StandInPrior(2))
    three = copy.deepcopy(one)
    three.critic_steps = 3
    z_q, z_p = torch.randn(16, 2) + 1, torch.randn(16, 2)
    manual = copy.deepcopy(one)
    for _ in range(3):
        manual.critic_step(z_q, z_p)
    three.critic_step(z_q, z_p)
    for a, b in zip(three.parameters(), manual.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_forward_gives_gradients_to_codes_only():
    torch.manual_seed(0)
    pen = JSGANPenalty(hidden=16, layers=2)
    pen.bind(StandInPrior(3))
    z_q = torch.randn(10, 3, requires_grad=True)
    pen(z_q, torch.randn(10, 3)).backward()
    assert z_q.grad is not None and torch.isfinite(z_q.grad).all() and z_q.grad.abs().sum() > 0
    # The model's backward pass leaves the discriminator untouched.
    assert all(p.grad is None for p in pen.parameters())


def test_critic_step_zeroes_stale_gradients():
    torch.manual_seed(0)
    pen = JSGANPenalty(hidden=16, layers=2)
    pen.bind(StandInPrior(3))
    clean = copy.deepcopy(pen)
    for p in pen.parameters():
        p.grad = torch.full_like(p, 1e6)  # stale gradients, e.g. from a model's backward
    z_q, z_p = torch.randn(12, 3) + 1, torch.randn(12, 3)
    pen.critic_step(z_q, z_p)
    clean.critic_step(z_q, z_p)
    for a, b in zip(pen.parameters(), clean.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_critic_step_detaches_codes_and_leaves_the_prior_alone():
    torch.manual_seed(0)
    prior = StandInPrior(3)
    pen = JSGANPenalty(hidden=16, layers=2, prior_logit=True)
    pen.bind(prior)
    # The prior is not a submodule: not moved, saved or trained with the penalty.
    assert not any(k.startswith("_prior") or "shift" in k for k in pen.state_dict())
    assert all(p is not prior.shift for p in pen.parameters())
    z_q = torch.randn(8, 3, requires_grad=True)
    pen.critic_step(z_q, torch.randn(8, 3))
    assert z_q.grad is None and prior.shift.grad is None


def test_prior_logit_adds_log_density():
    torch.manual_seed(0)
    prior = StandInPrior(3, variance=2.0)
    plain = JSGANPenalty(hidden=16, layers=2)
    plain.bind(prior)
    trick = JSGANPenalty(hidden=16, layers=2, prior_logit=True)
    trick.bind(prior)
    trick.load_state_dict(plain.state_dict())
    z = torch.randn(9, 3)
    torch.testing.assert_close(trick.logits(z), plain.logits(z) + prior.log_prob(z))
    want = -torch.log(torch.sigmoid(_reference_logits(plain, z) + prior.log_prob(z).double()))
    assert float(trick(z, z)) == pytest.approx(float(want.mean()), rel=1e-5)
    with pytest.raises(UsageError, match="prior_logit=True needs the prior"):
        JSGANPenalty(hidden=4, layers=1, prior_logit=True)(z, z)


def test_optimizer_is_created_lazily_and_follows_the_module():
    torch.manual_seed(0)
    pen = JSGANPenalty(hidden=8, layers=1)
    pen.bind(StandInPrior(2))
    pen.double()  # moved before the first critic step
    assert pen.optimizer is None
    z_q, z_p = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    assert pen.critic_step(z_q, z_p)["critic_loss"].dtype == torch.float64
    opt = pen.optimizer
    assert opt is not None
    assert [p for g in opt.param_groups for p in g["params"]] == list(pen.parameters())
    assert opt.defaults["lr"] == 5e-4 and opt.defaults["betas"] == (0.5, 0.999)
    # Moving the penalty after the optimizer exists keeps training working.
    pen.float()
    logs = pen.critic_step(z_q.float(), z_p.float())
    assert logs["critic_loss"].dtype == torch.float32 and torch.isfinite(logs["critic_loss"])


def test_state_dict_round_trip_into_an_unbuilt_penalty():
    torch.manual_seed(0)
    pen = JSGANPenalty(hidden=8, layers=2)
    pen.bind(StandInPrior(3))
    fresh = JSGANPenalty(hidden=8, layers=2)
    fresh.load_state_dict(pen.state_dict())
    z = torch.randn(5, 3)
    torch.testing.assert_close(fresh.logits(z), pen.logits(z))


def test_bad_inputs_and_options():
    pen = JSGANPenalty(hidden=4, layers=1)
    pen.bind(StandInPrior(3))
    with pytest.raises(UsageError, match=r"z_q \(6, 3\) and z_p \(6, 2\)"):
        pen(torch.randn(6, 3), torch.randn(6, 2))
    with pytest.raises(UsageError, match=r"dimension 3, but z_q has shape \(6, 2\)"):
        pen.critic_step(torch.randn(6, 2), torch.randn(6, 2))
    for options in (
        {"hidden": 0},
        {"layers": -1},
        {"lr": 0.0},
        {"beta1": 1.0},
        {"critic_steps": 0},
    ):
        with pytest.raises(UsageError):
            JSGANPenalty(**options)


@pytest.mark.parametrize("prior", ["sphere", "uniform"])
def test_prior_logit_refuses_priors_without_a_density_everywhere(prior):
    from wae_toolkit.plugins.registry import create

    pen = JSGANPenalty(hidden=8, prior_logit=True)
    with pytest.raises(UsageError, match="prior_logit=false"):
        pen.bind(create("prior", prior, dim=3))
    JSGANPenalty(hidden=8, prior_logit=True).bind(create("prior", "gmm", dim=3))
