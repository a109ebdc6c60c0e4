"""The priors against ground truth: closed-form densities and moments, torch.distributions, and
the known optima of point placement on a sphere."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import distributions as D

from wae_toolkit.builtins.priors import (
    GaussianMixturePrior,
    GaussianPrior,
    SpherePrior,
    UniformBoxPrior,
    spread_means,
)
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins import registry
from wae_toolkit.plugins.testing import check_prior


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def min_distance(x: torch.Tensor) -> float:
    d = torch.cdist(x.double(), x.double())
    d.fill_diagonal_(math.inf)
    return float(d.min())


# --------------------------------------------------------------------------------------------
# Sphere
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "radius"), [(1, 1.0), (2, 2.5), (3, 1.0), (8, 3.0), (64, 1.0)])
def test_sphere_samples_lie_on_the_sphere_with_the_uniform_moments(dim, radius):
    n = 200_000
    z = SpherePrior(dim, radius=radius).double().sample(n, generator=gen())
    torch.testing.assert_close(z.norm(dim=1), torch.full((n,), radius, dtype=torch.float64))
    # By symmetry E z_i = 0, E z_i^2 = r^2 / D and, for the uniform law on S^(D-1),
    # E z_i^4 = 3 r^4 / (D (D + 2)).
    se2 = radius**2 / math.sqrt(n)
    assert z.mean(0).abs().max() < 5 * radius / math.sqrt(n * dim) + 1e-12
    torch.testing.assert_close(
        z.pow(2).mean(0), torch.full((dim,), radius**2 / dim).double(), atol=5 * se2, rtol=0
    )
    assert abs(float(z.pow(4).mean()) - 3 * radius**4 / (dim * (dim + 2))) < 5 * radius**4 / n**0.5
    assert SpherePrior(dim, radius=radius).variance == pytest.approx(radius**2 / dim)


def test_sphere_first_coordinate_is_uniform_in_3d():
    """Archimedes: on the sphere in R^3 each coordinate is uniform on [-r, r]."""
    r = 2.0
    z = SpherePrior(3, radius=r).sample(20_000, generator=gen(1)).double()
    for i in range(3):
        assert stats.kstest(z[:, i].numpy(), stats.uniform(loc=-r, scale=2 * r).cdf).pvalue > 1e-3
    # the coordinates are uncorrelated
    corr = torch.corrcoef(z.T)
    assert (corr - torch.eye(3, dtype=torch.float64)).abs().max() < 0.05


def test_sphere_angle_is_uniform_in_2d():
    z = SpherePrior(2).sample(20_000, generator=gen(2)).double()
    angle = torch.atan2(z[:, 1], z[:, 0]).numpy()
    assert stats.kstest(angle, stats.uniform(loc=-math.pi, scale=2 * math.pi).cdf).pvalue > 1e-3


@pytest.mark.parametrize(
    ("dim", "area"),
    [
        (1, lambda r: 2.0),  # two points, counted
        (2, lambda r: 2 * math.pi * r),
        (3, lambda r: 4 * math.pi * r**2),
        (4, lambda r: 2 * math.pi**2 * r**3),
    ],
)
def test_sphere_log_prob_is_minus_log_surface_area_on_the_sphere(dim, area):
    r = 1.7
    prior = SpherePrior(dim, radius=r)
    assert not prior.has_density
    z = prior.sample(50, generator=gen())
    torch.testing.assert_close(prior.log_prob(z), torch.full((50,), -math.log(area(r))))
    lp = prior.log_prob(torch.cat([z * 1.01, z * 0.5, torch.zeros(1, dim)]))
    assert (lp == -math.inf).all()
    assert prior.log_prob(z.double()).dtype == torch.float64


@pytest.mark.parametrize("dim", [1, 2, 3, 8])
def test_sphere_conforms_with_another_radius(dim):
    check_prior(SpherePrior(dim, radius=3.0))


def test_sphere_refuses_bad_radius():
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(UsageError, match="radius"):
            SpherePrior(3, radius=bad)


# --------------------------------------------------------------------------------------------
# Uniform box
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "h"), [(1, 1.0), (2, 0.5), (5, math.sqrt(3)), (16, 2.0)])
def test_box_samples_and_moments(dim, h):
    n = 200_000
    prior = UniformBoxPrior(dim, half_width=h).double()
    z = prior.sample(n, generator=gen())
    assert z.abs().max() <= h
    assert z.mean(0).abs().max() < 5 * h / math.sqrt(3 * n)
    # U(-h, h): E z^2 = h^2 / 3, E z^4 = h^4 / 5
    torch.testing.assert_close(
        z.pow(2).mean(0), torch.full((dim,), h**2 / 3).double(), atol=5 * h**2 / n**0.5, rtol=0
    )
    assert abs(float(z.pow(4).mean()) - h**4 / 5) < 5 * h**4 / n**0.5
    assert prior.variance == pytest.approx(h**2 / 3)
    # each coordinate is uniform on [-h, h]
    assert stats.kstest(z[:20_000, 0].numpy(), stats.uniform(loc=-h, scale=2 * h).cdf).pvalue > 1e-3


def test_box_log_prob_matches_the_formula():
    h, dim = 1.5, 3
    prior = UniformBoxPrior(dim, half_width=h)
    inside = torch.tensor([[0.0, 0.0, 0.0], [1.5, -1.5, 1.0], [-1.4, 0.3, 1.49]])
    expected = -dim * math.log(2 * h)
    torch.testing.assert_close(prior.log_prob(inside), torch.full((3,), expected))
    outside = torch.tensor([[1.51, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 100.0]])
    assert (prior.log_prob(outside) == -math.inf).all()
    # against torch.distributions
    ref = D.Independent(D.Uniform(torch.full((dim,), -h), torch.full((dim,), h)), 1)
    torch.testing.assert_close(prior.log_prob(inside[:1]), ref.log_prob(inside[:1]))


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_box_conforms_with_another_width(dim):
    check_prior(UniformBoxPrior(dim, half_width=0.3))


# --------------------------------------------------------------------------------------------
# Gaussian and Gaussian mixture: log_prob against torch.distributions
# --------------------------------------------------------------------------------------------


def test_gaussian_log_prob_matches_torch():
    prior = GaussianPrior(4, std=1.7)
    z = torch.randn(10, 4, generator=gen()) * 3
    ref = D.Independent(D.Normal(torch.zeros(4), torch.full((4,), 1.7)), 1)
    torch.testing.assert_close(prior.log_prob(z), ref.log_prob(z))


def reference_mixture(prior: GaussianMixturePrior) -> D.MixtureSameFamily:
    mu = prior.mu.detach().double()
    sigma = prior.component_stds.detach().double()[:, None].expand_as(mu)
    return D.MixtureSameFamily(
        D.Categorical(probs=prior.w.double()), D.Independent(D.Normal(mu, sigma), 1)
    )


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 6),
    dim=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    learnable=st.booleans(),
)
def test_gmm_log_prob_matches_mixture_same_family(k, dim, seed, learnable):
    g = gen(seed)
    means = tuple((torch.randn(k * dim, generator=g) * 2).tolist())
    stds = tuple((torch.rand(k, generator=g) + 0.2).tolist())
    weights = tuple((torch.rand(k, generator=g) + 0.1).tolist())
    prior = GaussianMixturePrior(
        dim, components=k, means=means, stds=stds, weights=weights, learnable=learnable
    ).double()
    z = torch.randn(64, dim, generator=g, dtype=torch.float64) * 3
    torch.testing.assert_close(prior.log_prob(z), reference_mixture(prior).log_prob(z))


def test_gmm_variance_matches_samples_and_mixture():
    prior = GaussianMixturePrior(3, components=4, stds=(0.1, 0.5, 1.0, 2.0), weights=(1, 2, 3, 4))
    ref = reference_mixture(prior)
    assert prior.variance == pytest.approx(float(ref.variance.mean()), rel=1e-6)


# --------------------------------------------------------------------------------------------
# Learnable mixture
# --------------------------------------------------------------------------------------------


def test_fixed_gmm_has_no_parameters_and_keeps_its_buffers():
    prior = GaussianMixturePrior(2, components=3)
    assert list(prior.parameters()) == []
    assert set(prior.state_dict()) == {"mu", "sigma", "w"}


def test_learnable_gmm_parameters_and_gradients():
    prior = GaussianMixturePrior(2, components=3, learnable=True, stds=(0.5, 1.0, 2.0))
    names = {name for name, p in prior.named_parameters() if p.requires_grad}
    assert names == {"mu", "log_sigma"}
    torch.testing.assert_close(prior.component_stds, torch.tensor([0.5, 1.0, 2.0]))
    assert prior.variance == pytest.approx(float(reference_mixture(prior).variance.mean()))


def test_learnable_gmm_sample_gradients_are_the_reparameterised_ones():
    """z_i = mu_k + exp(s_k) eps_i for the samples i of component k, so for L = sum_ij z_ij:
    dL/dmu_k = n_k (1, ..., 1) and dL/ds_k = sum_{i in k} sum_j (z_ij - mu_kj)."""
    means = (0.0, 0.0, 50.0, 0.0, 0.0, 50.0)  # far apart: a sample's component is its nearest mean
    prior = GaussianMixturePrior(2, components=3, means=means, std=0.5, learnable=True)
    z = prior.sample(500, generator=gen())
    z.sum().backward()
    zd, mu = z.detach(), prior.mu.detach()
    member = torch.cdist(zd, mu).argmin(1)
    counts = torch.bincount(member, minlength=3).float()
    assert prior.mu.grad is not None and prior.log_sigma.grad is not None
    torch.testing.assert_close(prior.mu.grad, counts[:, None].expand(3, 2))
    expected = torch.stack([(zd[member == k] - mu[k]).sum() for k in range(3)])
    torch.testing.assert_close(prior.log_sigma.grad, expected, rtol=1e-4, atol=1e-3)


def test_learnable_gmm_log_prob_gradients_match_torch():
    prior = GaussianMixturePrior(
        3, components=4, stds=(0.5, 1.0, 1.5, 2.0), weights=(1, 2, 3, 4), learnable=True
    ).double()
    z = torch.randn(32, 3, generator=gen(1), dtype=torch.float64) * 2
    prior.log_prob(z).sum().backward()
    mu = prior.mu.detach().clone().requires_grad_(True)
    log_sigma = prior.log_sigma.detach().clone().requires_grad_(True)
    ref = D.MixtureSameFamily(
        D.Categorical(probs=prior.w.double()),
        D.Independent(D.Normal(mu, log_sigma.exp()[:, None].expand_as(mu)), 1),
    )
    ref.log_prob(z).sum().backward()
    torch.testing.assert_close(prior.mu.grad, mu.grad)
    torch.testing.assert_close(prior.log_sigma.grad, log_sigma.grad)


def test_learnable_gmm_samples_match_the_fixed_one_for_a_seed():
    fixed = GaussianMixturePrior(3, components=4, stds=(0.2, 0.4, 0.6, 0.8))
    learn = GaussianMixturePrior(3, components=4, stds=(0.2, 0.4, 0.6, 0.8), learnable=True)
    torch.testing.assert_close(
        learn.sample(100, generator=gen(3)).detach(), fixed.sample(100, generator=gen(3))
    )
    check_prior(learn)


def test_adam_moves_learnable_means_towards_a_target():
    torch.manual_seed(0)
    prior = GaussianMixturePrior(2, components=3, learnable=True, std=0.3)
    target = torch.tensor([4.0, -3.0])
    start = prior.mu.detach().clone()
    opt = torch.optim.Adam(prior.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        (prior.sample(128) - target).pow(2).sum(1).mean().backward()
        opt.step()
    before = (start - target).norm(dim=1)
    after = (prior.mu.detach() - target).norm(dim=1)
    assert (after < 0.5 * before).all()
    assert (prior.component_stds.detach() < 0.3).all()  # the loss also shrinks the scales


def test_learnable_gmm_trained_through_a_penalty():
    """In training the prior's samples meet the codes in the latent penalty."""
    prior = GaussianMixturePrior(2, components=2, learnable=True)
    penalty = registry.create("penalty", "mmd-imq")
    penalty.bind(prior)
    z_q = torch.randn(64, 2, generator=gen()) + 5.0
    penalty(z_q, prior.sample(64, generator=gen(1))).backward()
    assert prior.mu.grad is not None and prior.mu.grad.abs().sum() > 0


def test_learnable_gmm_from_cli_text_and_checkpoint_round_trip():
    prior = registry.create("prior", "gmm", dim=3, learnable="true", placement="spread")
    assert prior.learnable and prior.placement == "spread"
    with torch.no_grad():
        prior.mu.add_(1.0)
    again = registry.create("prior", "gmm", dim=3, learnable=True, placement="spread")
    again.load_state_dict(prior.state_dict())
    torch.testing.assert_close(again.mu, prior.mu)


# --------------------------------------------------------------------------------------------
# Spread placement
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "dim"), [(3, 2), (10, 2), (5, 3), (8, 3), (20, 3), (10, 4), (30, 8), (64, 8), (50, 16)]
)
def test_spread_beats_random_placement(k, dim):
    for seed in (0, 1):
        spread = GaussianMixturePrior(dim, components=k, radius=2.0, seed=seed, placement="spread")
        random = GaussianMixturePrior(dim, components=k, radius=2.0, seed=seed)
        assert min_distance(spread.mu) >= min_distance(random.mu) - 1e-6
        torch.testing.assert_close(spread.mu.norm(dim=1), torch.full((k,), 2.0))


@pytest.mark.parametrize("dim", [1, 2, 3, 8])
def test_spread_two_means_are_antipodal(dim):
    mu = spread_means(2, dim, radius=1.5, seed=dim)
    assert min_distance(mu) == pytest.approx(3.0, abs=1e-9)
    torch.testing.assert_close(mu[0], -mu[1])


@pytest.mark.parametrize(("k", "dim"), [(2, 1), (3, 2), (3, 3), (4, 3), (5, 4), (8, 8), (9, 8)])
def test_spread_small_k_is_a_regular_simplex(k, dim):
    r = 2.0
    mu = spread_means(k, dim, radius=r, seed=7)
    d = torch.cdist(mu, mu)
    off = d[~torch.eye(k, dtype=torch.bool)]
    edge = r * math.sqrt(2 * k / (k - 1))
    torch.testing.assert_close(off, torch.full_like(off, edge))
    torch.testing.assert_close(mu.sum(0), torch.zeros(dim, dtype=torch.float64))


@pytest.mark.parametrize("k", [4, 5, 7, 12])
def test_spread_in_2d_is_a_regular_polygon(k):
    mu = spread_means(k, 2, radius=1.0, seed=3)
    assert min_distance(mu) == pytest.approx(2 * math.sin(math.pi / k), abs=1e-9)


@pytest.mark.parametrize(
    ("k", "best"),
    [
        (6, math.sqrt(2)),  # octahedron
        (12, 4 / math.sqrt(10 + 2 * math.sqrt(5))),  # icosahedron, 1.0515
        (8, 1.2156),  # square antiprism (Tammes)
        (24, 0.7442),  # snub cube (Tammes)
    ],
)
def test_spread_in_3d_approaches_the_known_optima(k, best):
    got = min_distance(spread_means(k, 3, radius=1.0, seed=0))
    assert got <= best + 1e-6
    assert got >= 0.98 * best


def test_spread_is_deterministic_for_a_seed():
    a = spread_means(16, 5, radius=1.0, seed=4)
    torch.testing.assert_close(a, spread_means(16, 5, radius=1.0, seed=4), rtol=0, atol=0)
    assert not torch.allclose(a, spread_means(16, 5, radius=1.0, seed=5))


def test_spread_edge_cases_and_errors():
    one = spread_means(1, 4, radius=3.0)
    assert one.shape == (1, 4) and float(one.norm()) == pytest.approx(3.0)
    line = spread_means(5, 1, radius=2.0)
    assert sorted(set(line[:, 0].tolist())) == [-2.0, 2.0]
    with pytest.raises(UsageError, match="k >= 1"):
        spread_means(0, 3)
    with pytest.raises(UsageError, match="dim"):
        spread_means(3, 0)
    with pytest.raises(UsageError, match="explicit means"):
        GaussianMixturePrior(2, components=2, means=(0, 0, 1, 1), placement="spread")
    with pytest.raises(UsageError, match="placement"):
        GaussianMixturePrior(2, placement="grid")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("learnable", "placement"), list(itertools.product([False, True], ["random", "spread"]))
)
@pytest.mark.parametrize("dim", [1, 2, 8])
def test_gmm_option_combinations_conform(learnable, placement, dim):
    check_prior(GaussianMixturePrior(dim, components=5, learnable=learnable, placement=placement))
