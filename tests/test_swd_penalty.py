"""The swd penalty and the exact 1-D OT under it, against POT (an independent implementation).

POT's ``ot.wasserstein_1d`` and ``ot.emd2`` give ``W_p^p`` between 1-D empirical measures, and
``ot.sliced_wasserstein_distance`` gives ``SW_p = (mean_l W_p^p)^(1/p)`` over given projections.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wae_toolkit.builtins.swd import SlicedWassersteinPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.ot1d import random_directions, sliced_wasserstein, wasserstein_1d
from wae_toolkit.plugins import registry


def _emd2_1d(u: np.ndarray, v: np.ndarray, p: int) -> float:
    """W_p^p by the network-simplex LP on the full |x - y|^p cost matrix (no sorting)."""
    a = np.full(len(u), 1 / len(u))
    b = np.full(len(v), 1 / len(v))
    return float(ot.emd2(a, b, np.abs(u[:, None] - v[None, :]) ** p))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12),
    m=st.integers(1, 12),
    p=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31 - 1),
)
def test_wasserstein_1d_matches_the_lp(n, m, p, seed):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=n), 2 * rng.normal(size=m) + 0.5
    got = float(wasserstein_1d(torch.from_numpy(u), torch.from_numpy(v), p))
    assert got == pytest.approx(_emd2_1d(u, v, p), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize(("n", "m"), [(7, 7), (5, 8), (64, 72), (100, 3)])
def test_wasserstein_1d_matches_pot_per_column(n, m, p):
    rng = np.random.default_rng(n * m + p)
    u, v = rng.normal(size=(n, 6)), rng.exponential(size=(m, 6))
    got = wasserstein_1d(torch.from_numpy(u), torch.from_numpy(v), p).numpy()
    np.testing.assert_allclose(got, ot.wasserstein_1d(u, v, p=p), rtol=1e-9, atol=1e-12)
    assert got.shape == (6,)


def test_wasserstein_1d_small_hand_example():
    # {0, 1} against {0, 0, 3}: quantiles on (0, 1/3], (1/3, 1/2], (1/2, 2/3], (2/3, 1]
    # are (0, 0), (0, 0), (1, 0), (1, 3): W1 = 1/6 + 2/3 = 5/6, W2^2 = 1/6 + 4/3 = 3/2.
    u, v = torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0, 0.0])
    assert float(wasserstein_1d(u, v, 1)) == pytest.approx(5 / 6)
    assert float(wasserstein_1d(u, v, 2)) == pytest.approx(3 / 2)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize(("b", "n"), [(50, 50), (40, 61), (64, 72)])
def test_swd_matches_pot_with_the_same_projections(b, n, p):
    rng = np.random.default_rng(b + n + p)
    d = 5
    z_q = rng.normal(size=(b, d)) * 0.7 + 0.3
    z_p = rng.normal(size=(n, d))
    theta = rng.normal(size=(d, 30))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    want = ot.sliced_wasserstein_distance(z_q, z_p, projections=theta, p=p) ** p  # POT: SW_p
    pen = SlicedWassersteinPenalty(p=p)
    got = pen(torch.from_numpy(z_q), torch.from_numpy(z_p), directions=torch.from_numpy(theta))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(float(want), rel=1e-9)
    # The same through the core function, in float32.
    got32 = sliced_wasserstein(
        torch.from_numpy(z_q).float(), torch.from_numpy(z_p).float(), torch.from_numpy(theta), p
    )
    assert got32.dtype == torch.float32
    assert float(got32) == pytest.approx(float(want), rel=1e-4)


def test_random_directions_are_unit_and_seeded():
    torch.manual_seed(5)
    a = random_directions(7, 40)
    torch.manual_seed(5)
    b = random_directions(7, 40)
    assert a.shape == (7, 40) and torch.equal(a, b)
    torch.testing.assert_close(torch.linalg.vector_norm(a, dim=0), torch.ones(40))
    # Uniform on the sphere: E theta theta^T = I / D (mean of 20000 directions, within 5 s.e.).
    many = random_directions(4, 20000, dtype=torch.float64)
    cov = many @ many.T / 20000
    assert float((cov - torch.eye(4, dtype=torch.float64) / 4).abs().max()) < 0.01


def test_penalty_draws_its_projections_from_the_global_seed():
    pen = registry.create("penalty", "swd", projections=25)
    z_q, z_p = torch.randn(30, 3) + 1, torch.randn(40, 3)
    torch.manual_seed(0)
    first = pen(z_q, z_p)
    torch.manual_seed(0)
    assert torch.equal(pen(z_q, z_p), first)
    torch.manual_seed(0)
    theta = random_directions(3, 25)
    assert torch.equal(pen(z_q, z_p, directions=theta), first)


def test_zero_on_identical_and_positive_otherwise():
    pen = SlicedWassersteinPenalty()
    z = torch.randn(64, 4)
    assert float(pen(z, z)) == 0.0
    assert float(pen(z, z[torch.randperm(64)])) == 0.0  # the order of the points does not matter
    assert float(pen(z, torch.randn(64, 4))) > 0.0


@pytest.mark.parametrize("p", [1, 2])
def test_grows_with_a_shift(p):
    torch.manual_seed(0)
    d = 8
    z_p = torch.randn(512, d)
    base = torch.randn(512, d)
    theta = random_directions(d, 200, dtype=torch.float64).float()
    pen = SlicedWassersteinPenalty(p=p)
    values = [float(pen(base + s, z_p, directions=theta)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[-1] > 10 * values[0]
    # A translation by m (here along every axis) moves each projection by <theta, m>: for p = 2
    # SW_2^2 ~ mean <theta, m>^2 = |m|^2 / D = s^2, up to the sampling noise of the batches.
    if p == 2:
        assert values[-1] == pytest.approx(4.0, rel=0.15)


def test_gradient_reaches_codes_only():
    z_q = torch.randn(20, 3, requires_grad=True)
    z_p = torch.randn(25, 3)
    SlicedWassersteinPenalty()(z_q + 1, z_p).backward()
    assert z_q.grad is not None and torch.isfinite(z_q.grad).all() and z_q.grad.abs().sum() > 0
    # Descending it moves the codes towards the prior.
    pen, z = SlicedWassersteinPenalty(projections=20), (torch.randn(64, 2) + 3).requires_grad_()
    opt = torch.optim.SGD([z], lr=1.0)
    target = torch.randn(64, 2)
    start = float(pen(z.detach(), target))
    for _ in range(100):
        opt.zero_grad()
        pen(z, target).backward()
        opt.step()
    assert float(pen(z.detach(), target)) < 0.05 * start


def test_bad_inputs_and_options():
    pen = SlicedWassersteinPenalty()
    with pytest.raises(UsageError, match=r"z_q \(6, 3\) and z_p \(6, 2\)"):
        pen(torch.randn(6, 3), torch.randn(6, 2))
    with pytest.raises(UsageError, match=r"directions must be \(D, L\) with D = 3"):
        pen(torch.randn(6, 3), torch.randn(6, 3), directions=torch.randn(2, 5))
    with pytest.raises(UsageError, match="p must be a number >= 1"):
        wasserstein_1d(torch.randn(3), torch.randn(4), 0.5)
    for options in ({"projections": 0}, {"p": 3}, {"projections": True}):
        with pytest.raises(UsageError):
            SlicedWassersteinPenalty(**options)
