"""The kl penalty (VAE baseline) against torch.distributions, Monte Carlo and quadrature.

Ground truth comes from outside the penalty: ``torch.distributions.kl_divergence`` of Normal
distributions, Monte Carlo averages of ``Normal.log_prob`` differences, and, for a mixture prior,
the KL integral computed by quadrature on a fine grid with numpy. Monte Carlo comparisons use a
tolerance of 5 standard errors measured from the draws themselves (a false failure has
probability below 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from wae_toolkit.api import train
from wae_toolkit.builtins.kl import KLPenalty
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins import registry
from wae_toolkit.plugins.testing import IsotropicGaussian


def _stats(b: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = 1.5 * torch.randn(b, d, generator=g, dtype=torch.float64)
    log_var = 2.0 * torch.randn(b, d, generator=g, dtype=torch.float64).clamp(-3, 3)
    return mean, log_var


def _draw(mean: torch.Tensor, log_var: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(mean.shape, generator=g, dtype=mean.dtype)
    return mean + eps * (0.5 * log_var).exp()


def _within_5_se(samples: torch.Tensor, target: float) -> None:
    se = float(samples.std()) / math.sqrt(len(samples))
    assert abs(float(samples.mean()) - target) < 5 * se + 1e-12, (
        f"mean {float(samples.mean()):.5f} vs {target:.5f} (s.e. {se:.2g})"
    )


@pytest.mark.parametrize("variance", [None, 1.0, 0.25, 4.0])
def test_closed_form_matches_torch_distributions(variance):
    mean, log_var = _stats(32, 5, seed=0)
    pen = KLPenalty()
    if variance is not None:
        pen.bind(IsotropicGaussian(5, variance))
    s2 = 1.0 if variance is None else variance  # before bind the prior is N(0, I)
    q = Normal(mean, (0.5 * log_var).exp())
    p = Normal(torch.zeros_like(mean), torch.full_like(mean, math.sqrt(s2)))
    want = kl_divergence(q, p).sum(1).mean()
    z_q = _draw(mean, log_var, seed=1)
    got = pen(z_q, torch.randn(32, 5), mean=mean, log_var=log_var)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(float(want), rel=1e-12)


def test_closed_form_gradients_match_the_derivatives():
    # d KL / d mu = mu / s2 and d KL / d lv = (exp(lv) / s2 - 1) / 2, divided by B for the mean.
    mean, log_var = _stats(8, 3, seed=2)
    mean.requires_grad_(True)
    log_var.requires_grad_(True)
    pen = KLPenalty()
    pen.bind(IsotropicGaussian(3, 2.0))
    pen(mean.detach(), mean.detach(), mean=mean, log_var=log_var).backward()
    torch.testing.assert_close(mean.grad, mean.detach() / 2.0 / 8)
    torch.testing.assert_close(log_var.grad, (log_var.detach().exp() / 2.0 - 1) / 2 / 8)


def test_closed_form_matches_a_large_monte_carlo_average():
    # KL(q || p) = E_q [log q(z) - log p(z)], estimated with 200000 draws per posterior.
    mean, log_var = _stats(3, 4, seed=3)
    pen = KLPenalty()
    pen.bind(IsotropicGaussian(4, 0.5))
    closed = [
        float(pen(m[None], m[None], mean=m[None], log_var=lv[None]))
        for m, lv in zip(mean, log_var, strict=True)
    ]
    for i in range(3):
        q = Normal(mean[i], (0.5 * log_var[i]).exp())
        z = q.sample((200_000,))
        p = Normal(
            torch.zeros(4, dtype=torch.float64),
            torch.full((4,), math.sqrt(0.5), dtype=torch.float64),
        )
        _within_5_se(q.log_prob(z).sum(1) - p.log_prob(z).sum(1), closed[i])


@pytest.mark.parametrize("prior_name", ["gaussian", "gmm"])
def test_sample_estimator_averages_to_the_kl(prior_name):
    torch.manual_seed(0)
    n = 200_000
    mu, s = 0.5, 0.8
    mean = torch.full((n, 1), mu, dtype=torch.float64)
    log_var = torch.full((n, 1), 2 * math.log(s), dtype=torch.float64)
    z_q = mean + s * torch.randn(n, 1, dtype=torch.float64)
    if prior_name == "gaussian":
        prior = registry.create("prior", "gaussian", dim=1, std=1.5)
        want = float(kl_divergence(Normal(mu, s), Normal(0.0, 1.5)))
    else:
        prior = registry.create(
            "prior", "gmm", dim=1, components=2, means=(-2.0, 2.0), stds=(0.5, 1.0)
        )
        # KL by quadrature: int q log(q / p) on a grid 14 posterior stds wide, step 1e-4.
        t = np.linspace(mu - 14 * s, mu + 14 * s, 200_001)
        q = np.exp(-0.5 * ((t - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        p = 0.5 * np.exp(-0.5 * ((t + 2) / 0.5) ** 2) / (0.5 * np.sqrt(2 * np.pi))
        p += 0.5 * np.exp(-0.5 * ((t - 2) / 1.0) ** 2) / np.sqrt(2 * np.pi)
        want = float(np.sum(q * np.log(q / p)) * (t[1] - t[0]))
    pen = KLPenalty(estimator="sample")
    pen.bind(prior.double())
    # The penalty is the batch mean, so per-draw values come from batches of one.
    per_draw = torch.stack(
        [pen(z_q[i : i + 1], z_q[:1], mean=mean[:1], log_var=log_var[:1]) for i in range(2000)]
    )
    total = pen(z_q, z_q[:1], mean=mean, log_var=log_var)
    se = float(per_draw.std()) / math.sqrt(n)
    assert abs(float(total) - want) < 5 * se
    if prior_name == "gaussian":
        # Against N(0, std^2), closed form and sample estimator agree in expectation.
        closed = KLPenalty()
        closed.bind(prior)
        assert float(closed(z_q, z_q, mean=mean, log_var=log_var)) == pytest.approx(want)


def test_sample_estimator_gradients_reach_the_mean_through_the_draw():
    mean, log_var = _stats(16, 3, seed=4)
    mean.requires_grad_(True)
    pen = KLPenalty(estimator="sample")
    pen.bind(IsotropicGaussian(3))
    eps = torch.randn(16, 3, dtype=torch.float64)
    z_q = mean + eps * (0.5 * log_var).exp()
    pen(z_q, z_q.detach(), mean=mean, log_var=log_var).backward()
    # log q(z|x) does not depend on mean for a reparameterised draw; -log p(z) gives z / s2.
    torch.testing.assert_close(mean.grad, z_q.detach() / 16)


def test_flags_and_prior_handling():
    pen = KLPenalty()
    assert pen.needs_encoder_stats and not pen.needs_prior_samples and not pen.adversarial
    prior = registry.create("prior", "gaussian", dim=2)
    sampled = KLPenalty(estimator="sample")
    sampled.bind(prior)
    assert not list(sampled.state_dict()) and not list(sampled.children())
    with pytest.raises(UsageError, match="needs the prior's log_prob"):
        KLPenalty(estimator="sample")(
            torch.zeros(2, 2), torch.zeros(2, 2), mean=torch.zeros(2, 2), log_var=torch.zeros(2, 2)
        )
    with pytest.raises(UsageError, match="unknown estimator"):
        KLPenalty(estimator="mc")  # type: ignore[arg-type]


def test_refused_without_encoder_statistics():
    pen = KLPenalty()
    with pytest.raises(UsageError, match='encoder="gaussian"'):
        pen(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(UsageError, match=r"must all be \(B, D\)"):
        pen(torch.randn(4, 2), torch.randn(4, 2), mean=torch.randn(4, 3), log_var=torch.randn(4, 3))


def test_training_needs_a_gaussian_encoder(tmp_path):
    base = dict(
        penalty="kl", data="digits", data_opts={"limit": 200}, epochs=1, device="cpu", lam=1.0
    )
    with pytest.raises(UsageError, match='encoder="gaussian"'):
        train(RunConfig(out=str(tmp_path / "det"), **base))
    assert not (tmp_path / "det").exists()  # refused before anything was written
    result = train(RunConfig(out=str(tmp_path / "vae"), encoder="gaussian", **base))
    assert math.isfinite(result.summary["test_cost"])
    steps = [r for r in _records(result.run_dir) if r["kind"] == "step"]
    assert steps and all(r["penalty"] > 0 and math.isfinite(r["penalty"]) for r in steps)


def _records(run_dir):
    from wae_toolkit.runs.folder import read_metrics

    return read_metrics(run_dir)
