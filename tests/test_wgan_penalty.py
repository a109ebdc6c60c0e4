"""The wgan-clip and wgan-gp critics: they estimate W1, stay finite, and respect their constraints.

Ground truth: the Wasserstein-1 distance between N(0, 1) (prior) and N(3, 1) (codes) is 3 (a
translation), and the best 1-Lipschitz critic is ``f(z) = -z``. The critics' values are checked
against the MLP evaluated by hand in float64, and the gradient-penalty optimum against a
quadrature computed here with scipy (see :func:`_gp_optimum`).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from wae_toolkit.builtins.wgan import WGANClipPenalty, WGANGPPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.testing import IsotropicGaussian

W1 = 3.0  # W1(N(0, 1), N(3, 1))
EVAL_N = 50_000


def _linears(pen) -> list[nn.Linear]:
    assert pen.critic is not None
    return [m for m in pen.critic if isinstance(m, nn.Linear)]


@torch.no_grad()
def _reference_f(pen, z: torch.Tensor) -> torch.Tensor:
    """The critic MLP evaluated by hand in float64, layer by layer."""
    h = z.double()
    lin = _linears(pen)
    for layer in lin[:-1]:
        h = torch.relu(h @ layer.weight.double().T + layer.bias.double())
    return (h @ lin[-1].weight.double().T + lin[-1].bias.double()).squeeze(-1)


def _gp_optimum(gp_weight: float) -> float:
    """The estimate ``E f(z_p) - E f(z_q)`` of the best critic under the gradient penalty.

    In 1-D, ``E f(P) - E f(Q) = -int f'(t) h(t) dt`` with ``h = F_P - F_Q >= 0`` (``int h = W1``),
    and the penalty is ``gp_weight * int (|f'(t)| - 1)^2 rho(t) dt`` with ``rho`` the density of
    the interpolates ``e z_q + (1 - e) z_p`` (given ``e``: ``N(3 e, e^2 + (1 - e)^2)``). The
    objective separates over ``t``: the best slope is ``f' = -(1 + h / (2 gp_weight rho))``, so
    the best critic's estimate is ``W1 + int h^2 / (2 gp_weight rho) dt``: a soft constraint
    overshoots W1 (by 0.46 for gp_weight = 10).
    """
    t = np.linspace(-10.0, 13.0, 4601)  # step 0.005; a finer grid changes the 7th digit
    h = norm.cdf(t) - norm.cdf(t - W1)
    e = (np.arange(400) + 0.5) / 400
    rho = norm.pdf(t[:, None], W1 * e, np.sqrt(e**2 + (1 - e) ** 2)).mean(1)
    return float(np.sum(h + h**2 / (2 * gp_weight * rho)) * (t[1] - t[0]))


def _train_on_gaussians(pen, calls: int, seed: int = 0, batch: int = 256):
    """Train ``pen``'s critic with ``calls`` critic steps on N(3, 1) codes against N(0, 1).

    The critic starts with the slope sign of the optimum: in 1-D the critic's slope cannot change
    sign without passing through 0 at every point, which the gradient penalty punishes, so a
    critic initialised the wrong way round can stay at a spurious local optimum (for this pair,
    slope ``-(1 - h / (2 gp_weight rho))``, estimate about -2.54). Negating the last layer puts
    the initial critic on the right side whatever the initialisation.
    """
    torch.manual_seed(seed)
    pen.bind(IsotropicGaussian(1))
    g = torch.Generator().manual_seed(seed + 100)
    if float(pen(torch.randn(4096, 1, generator=g) + W1, torch.randn(4096, 1, generator=g))) < 0:
        with torch.no_grad():
            _linears(pen)[-1].weight.neg_()
    logs = []
    for _ in range(calls):
        z_q = torch.randn(batch, 1, generator=g) + W1
        z_p = torch.randn(batch, 1, generator=g)
        logs.append(pen.critic_step(z_q, z_p))
    z_q = torch.randn(EVAL_N, 1, generator=g) + W1
    z_p = torch.randn(EVAL_N, 1, generator=g)
    return float(pen(z_q, z_p)), logs


def _slopes(pen) -> torch.Tensor:
    """``f'`` by autograd on a grid of step 0.005 over [-5, 8] (the data's mass up to 1e-6)."""
    grid = torch.linspace(-5.0, 8.0, 2601)[:, None].requires_grad_(True)
    (grad,) = torch.autograd.grad(pen.outputs(grid).sum(), grid)
    return grad[:, 0]


def test_wgan_gp_estimates_w1_up_to_the_known_bias():
    # Tolerance 0.15 around the gradient-penalty optimum (3.46): 5 standard errors of the
    # evaluation (s.e. = sqrt(2 Var f / 50000) <= 0.008 for |f'| <= 1.4) plus the critic's
    # finite size and training noise; ten seeds gave 3.35 to 3.48.
    target = _gp_optimum(10.0)
    assert target == pytest.approx(3.463, abs=0.005)
    pen = WGANGPPenalty(hidden=64, layers=2, lr=1e-3)
    estimate, logs = _train_on_gaussians(pen, calls=150)
    assert abs(estimate - target) < 0.15, (estimate, target)
    assert abs(estimate - W1) < (target - W1) + 0.15
    # The last batch's w1_estimate agrees with the large-sample value (batch s.e. ~0.12).
    assert abs(float(logs[-1]["w1_estimate"]) - estimate) < 0.5
    # The gradient penalty holds the slope near 1 where the interpolates are.
    slopes = _slopes(pen)
    assert float(slopes.max()) < 0 and 1.0 < float(slopes.abs().max()) < 1.6


def test_wgan_clip_estimate_over_its_lipschitz_constant_is_at_most_w1():
    # For any K-Lipschitz f, E f(z_p) - E f(z_q) <= K W1 (Kantorovich-Rubinstein), so the
    # estimate divided by K = max |f'| (autograd, on a grid spanning the data) is at most W1, up
    # to 5 evaluation standard errors (sqrt(2 / 50000) K each, 0.032 in all) and the grid. It
    # reaches W1 only for a slope of -K everywhere the data is; clipping keeps the critic from
    # that (a first-layer unit with saturated weight and bias, |w| = |b| = clip, bends at
    # |z| = 1, inside the data), and ten seeds gave 0.57 W1 to 0.69 W1: we require half.
    pen = WGANClipPenalty(hidden=64, layers=2, lr=1e-3)
    estimate, logs = _train_on_gaussians(pen, calls=150)
    slopes = _slopes(pen)
    lipschitz = float(slopes.abs().max())
    assert lipschitz > 0
    ratio = estimate / lipschitz
    assert 0.5 * W1 < ratio < W1 + 0.032 + 0.01, ratio
    # The optimal critic decreases everywhere: the clipped one points the same way.
    assert float(slopes.max()) <= 0
    assert all(set(entry) == {"critic_loss", "w1_estimate"} for entry in logs)


def test_wgan_clip_keeps_every_parameter_within_the_clip():
    torch.manual_seed(0)
    pen = WGANClipPenalty(hidden=16, layers=2, clip=0.02, lr=0.1)
    pen.bind(IsotropicGaussian(3))
    params = list(pen.parameters())
    assert all(float(p.detach().abs().max()) <= 0.02 for p in params)  # clipped when built
    assert any(float(p.detach().abs().max()) == pytest.approx(0.02) for p in params)
    before = copy.deepcopy(pen)
    for _ in range(3):
        pen.critic_step(torch.randn(32, 3) + 2, torch.randn(32, 3))
        assert all(float(p.detach().abs().max()) <= 0.02 for p in pen.parameters())
    # A large learning rate drives many weights to the bounds, exactly.
    saturated = sum(int((p.abs() == 0.02).sum()) for p in pen.parameters())
    assert saturated > sum(int((p.abs() == 0.02).sum()) for p in before.parameters())


def test_values_and_logs_match_their_definitions():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    z_q = torch.randn(20, 3, generator=g) + 1.0
    z_p = torch.randn(24, 3, generator=g)
    for pen in (
        WGANClipPenalty(hidden=16, layers=2, clip=0.2, critic_steps=1),
        WGANGPPenalty(hidden=16, layers=2, critic_steps=1, gp_weight=3.0),
    ):
        pen.bind(IsotropicGaussian(3))
        want = _reference_f(pen, z_p).mean() - _reference_f(pen, z_q).mean()
        assert float(pen(z_q, z_p)) == pytest.approx(float(want), rel=1e-5)
        # critic_loss: -(E f(z_p) - E f(z_q)) (+ the gradient penalty), before the update.
        before = copy.deepcopy(pen)
        torch.manual_seed(7)
        logs = pen.critic_step(z_q, z_p)
        assert set(logs) == {"critic_loss", "w1_estimate"}
        for v in logs.values():
            assert v.dim() == 0 and not v.requires_grad and v.device == z_q.device
        assert float(logs["w1_estimate"]) == pytest.approx(float(want), rel=1e-5)
        extra = 0.0
        if isinstance(pen, WGANGPPenalty):
            torch.manual_seed(7)
            e = torch.rand(20, 1)  # the same draws: interpolates of the first min(B, N) pairs
            x = (e * z_q[:20] + (1 - e) * z_p[:20]).double().requires_grad_(True)
            (grad,) = torch.autograd.grad(_reference_f_grad(before, x).sum(), x)
            extra = 3.0 * float(((grad.norm(dim=1) - 1) ** 2).mean())
        assert float(logs["critic_loss"]) == pytest.approx(-float(want) + extra, rel=1e-5)
        assert not torch.equal(_linears(pen)[0].weight, _linears(before)[0].weight)


def _reference_f_grad(pen, z: torch.Tensor) -> torch.Tensor:
    """:func:`_reference_f` with autograd enabled (for the gradient penalty's reference)."""
    h = z
    lin = _linears(pen)
    for layer in lin[:-1]:
        h = torch.relu(h @ layer.weight.detach().double().T + layer.bias.detach().double())
    return (h @ lin[-1].weight.detach().double().T + lin[-1].bias.detach().double()).squeeze(-1)


@pytest.mark.parametrize("cls", [WGANClipPenalty, WGANGPPenalty])
def test_forward_gives_gradients_to_codes_only(cls):
    torch.manual_seed(0)
    pen = cls(hidden=16, layers=2)
    pen.bind(IsotropicGaussian(3))
    z_q = torch.randn(10, 3, requires_grad=True)
    pen(z_q, torch.randn(12, 3)).backward()
    assert z_q.grad is not None and torch.isfinite(z_q.grad).all() and z_q.grad.abs().sum() > 0
    assert all(p.grad is None for p in pen.parameters())
    z = torch.randn(8, 3)
    assert float(pen(z, z)) == 0.0


@pytest.mark.parametrize("cls", [WGANClipPenalty, WGANGPPenalty])
def test_never_nan_far_from_the_prior(cls):
    torch.manual_seed(0)
    pen = cls(hidden=16, layers=2, lr=1e-2)
    pen.bind(IsotropicGaussian(4))
    z_q = (1e4 * torch.randn(32, 4)).requires_grad_(True)  # codes far from the prior
    z_p = torch.randn(32, 4)
    for _ in range(5):
        logs = pen.critic_step(z_q.detach(), z_p)
        assert all(torch.isfinite(v) for v in logs.values())
    assert all(torch.isfinite(p).all() for p in pen.parameters())
    value = pen(z_q, z_p)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(z_q.grad).all()
    # Identical batches: the interpolates coincide with the points, and all stays finite.
    same = torch.zeros(16, 4)
    logs = pen.critic_step(same, same)
    assert all(torch.isfinite(v) for v in logs.values())


def test_defaults_and_optimizers():
    clip, gp = WGANClipPenalty(), WGANGPPenalty()
    assert (clip.hidden, clip.layers, clip.lr, clip.clip, clip.critic_steps) == (
        512,
        4,
        5e-5,
        0.01,
        5,
    )
    assert (gp.hidden, gp.layers, gp.lr, gp.beta1, gp.beta2, gp.gp_weight, gp.critic_steps) == (
        512,
        4,
        1e-4,
        0.5,
        0.9,
        10.0,
        5,
    )
    for pen in (clip, gp):
        pen.bind(IsotropicGaussian(8))
        assert pen.adversarial and pen.optimizer is None
        assert [(m.in_features, m.out_features) for m in _linears(pen)] == [(8, 512)] + [
            (512, 512)
        ] * 3 + [(512, 1)]
    small_clip, small_gp = WGANClipPenalty(hidden=4, layers=1), WGANGPPenalty(hidden=4, layers=1)
    for pen in (small_clip, small_gp):
        pen.bind(IsotropicGaussian(2))
        pen.critic_step(torch.randn(6, 2), torch.randn(6, 2))
    assert isinstance(small_clip.optimizer, torch.optim.RMSprop)
    assert small_clip.optimizer.defaults["lr"] == 5e-5
    assert isinstance(small_gp.optimizer, torch.optim.Adam)
    assert small_gp.optimizer.defaults["betas"] == (0.5, 0.9)


@pytest.mark.parametrize("cls", [WGANClipPenalty, WGANGPPenalty])
def test_critic_steps_option_runs_that_many_updates(cls):
    torch.manual_seed(0)
    one = cls(hidden=8, layers=1, critic_steps=1)
    one.bind(IsotropicGaussian(2))
    three = copy.deepcopy(one)
    three.critic_steps = 3
    z_q, z_p = torch.randn(16, 2) + 1, torch.randn(16, 2)
    torch.manual_seed(1)
    for _ in range(3):
        one.critic_step(z_q, z_p)
    torch.manual_seed(1)
    three.critic_step(z_q, z_p)
    for a, b in zip(three.parameters(), one.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", [WGANClipPenalty, WGANGPPenalty])
def test_state_dict_round_trip_and_dtype(cls):
    torch.manual_seed(0)
    pen = cls(hidden=8, layers=2)
    pen.bind(IsotropicGaussian(3))
    pen.critic_step(torch.randn(6, 3), torch.randn(6, 3))
    assert all(k.startswith("critic.") for k in pen.state_dict())
    fresh = cls(hidden=8, layers=2)
    fresh.load_state_dict(pen.state_dict())
    z = torch.randn(5, 3)
    torch.testing.assert_close(fresh.outputs(z), pen.outputs(z))
    # The optimizer's state follows a later .double().
    pen.double()
    logs = pen.critic_step(torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3).double())
    assert logs["w1_estimate"].dtype == torch.float64
    assert pen(z.double(), z.double() + 1).dtype == torch.float64


def test_bad_inputs_and_options():
    pen = WGANGPPenalty(hidden=4, layers=1)
    pen.bind(IsotropicGaussian(3))
    with pytest.raises(UsageError, match=r"z_q \(6, 3\) and z_p \(6, 2\)"):
        pen(torch.randn(6, 3), torch.randn(6, 2))
    with pytest.raises(UsageError, match=r"critic takes codes of dimension 3"):
        pen.critic_step(torch.randn(6, 2), torch.randn(6, 2))
    for cls, options in (
        (WGANClipPenalty, {"clip": 0.0}),
        (WGANClipPenalty, {"clip": math.inf}),
        (WGANClipPenalty, {"hidden": 0}),
        (WGANGPPenalty, {"gp_weight": -1.0}),
        (WGANGPPenalty, {"beta2": 1.0}),
        (WGANGPPenalty, {"critic_steps": 0}),
        (WGANGPPenalty, {"lr": 0.0}),
    ):
        with pytest.raises(UsageError):
            cls(**options)
