"""MMD kernels, estimators and the mmd-imq / mmd-rbf penalties against independent ground truth.

Ground truths: brute-force double loops in plain Python, hand-computed fractions, the closed form
of the Gaussian-kernel MMD between isotropic Gaussians, finite-difference gradients, and the
expectation of the estimators over many repetitions.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wae_toolkit.builtins.mmd import IMQMMDPenalty, RBFMMDPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.kernels import imq_kernel, mmd2, rbf_kernel, squared_distances
from wae_toolkit.plugins.interfaces import LatentPenalty
from wae_toolkit.plugins.testing import IsotropicGaussian

PAPER_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


# ---------------------------------------------------------------------------------------------
# Brute force in plain Python (no torch arithmetic): the definitions, term by term.


def _sqdist(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def _imq(a, b, c, scales):
    return sum(c * s / (c * s + _sqdist(a, b)) for s in scales)


def _rbf(a, b, c, scales):
    return sum(math.exp(-_sqdist(a, b) / (c * s)) for s in scales)


def brute_mmd2(q, p, k, estimator):
    """The three estimators written as the textbook double sums."""
    n, m = len(q), len(p)
    if estimator == "biased":
        kqq = sum(k(q[i], q[j]) for i in range(n) for j in range(n)) / n**2
        kpp = sum(k(p[i], p[j]) for i in range(m) for j in range(m)) / m**2
        kqp = sum(k(q[i], p[j]) for i in range(n) for j in range(m)) / (n * m)
        return kqq + kpp - 2 * kqp
    kqq = sum(k(q[i], q[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kpp = sum(k(p[i], p[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    if estimator == "unbiased" and n == m:
        kqp = sum(k(q[i], p[j]) for i in range(n) for j in range(m) if i != j) / (n * (n - 1))
    else:
        kqp = sum(k(q[i], p[j]) for i in range(n) for j in range(m)) / (n * m)
    return kqq + kpp - 2 * kqp


@pytest.mark.parametrize("estimator", ["paper", "unbiased", "biased"])
@pytest.mark.parametrize("kind", ["imq", "rbf"])
@pytest.mark.parametrize(("n", "m", "d"), [(6, 6, 3), (5, 8, 2), (7, 4, 5)])
def test_mmd2_matches_brute_force(estimator, kind, n, m, d):
    g = torch.Generator().manual_seed(n * 100 + m * 10 + d)
    q = torch.randn(n, d, generator=g, dtype=torch.float64)
    p = 1.3 * torch.randn(m, d, generator=g, dtype=torch.float64) + 0.4
    c, scales = 2.0 * d, (0.5, 1.0, 3.0)
    kernel = imq_kernel if kind == "imq" else rbf_kernel
    brute_k = _imq if kind == "imq" else _rbf
    got = mmd2(q, p, partial(kernel, c=c, scales=scales), estimator)
    want = brute_mmd2(q.tolist(), p.tolist(), partial(brute_k, c=c, scales=scales), estimator)
    assert got.dtype == torch.float64
    # Both sides are float64 sums of a few dozen terms of size <= 3: agreement to 1e-12.
    assert float(got) == pytest.approx(want, rel=1e-10, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 9),
    m=st.integers(2, 9),
    d=st.integers(1, 6),
    estimator=st.sampled_from(["paper", "unbiased", "biased"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_mmd2_matches_brute_force_any_shape(n, m, d, estimator, seed):
    g = torch.Generator().manual_seed(seed)
    q = 2 * torch.randn(n, d, generator=g, dtype=torch.float64)
    p = torch.randn(m, d, generator=g, dtype=torch.float64)
    got = mmd2(q, p, partial(imq_kernel, c=2.0 * d, scales=PAPER_SCALES), estimator)
    k = partial(_imq, c=2.0 * d, scales=PAPER_SCALES)
    assert float(got) == pytest.approx(brute_mmd2(q.tolist(), p.tolist(), k, estimator), abs=1e-11)


def test_squared_distances_matches_brute_force_and_is_nonnegative():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=g, dtype=torch.float64)
    b = torch.randn(4, 5, generator=g, dtype=torch.float64)
    d2 = squared_distances(a, b)
    want = [[_sqdist(x, y) for y in b.tolist()] for x in a.tolist()]
    torch.testing.assert_close(d2, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    # Rounding could make the identity slightly negative for equal points: clamped at 0.
    x = 1e3 + torch.randn(50, 3, generator=g)
    assert (squared_distances(x, x) >= 0).all()


# ---------------------------------------------------------------------------------------------
# Hand-computed IMQ values (METHOD.md's kernel), exact fractions.


def test_imq_multiscale_by_hand():
    # z_q = {(0,0), (1,0)}, z_p = {(0,1), (2,2)}, C = 2, scales (0.5, 2): C s in {1, 4}, so
    # k(d2) = 1/(1+d2) + 4/(4+d2). Squared distances: q0q1 = 1, p0p1 = 5; cross q0p0 = 1,
    # q0p1 = 8, q1p0 = 2, q1p1 = 5.
    def k(d2):
        return Fraction(1, 1 + d2) + Fraction(4, 4 + d2)

    kqq, kpp = k(1), k(5)
    cross_all = (k(1) + k(8) + k(2) + k(5)) / 4
    cross_offdiag = (k(8) + k(2)) / 2  # pairs (q0, p1) and (q1, p0)
    paper = kqq + kpp - 2 * cross_all
    unbiased = kqq + kpp - 2 * cross_offdiag
    biased = (2 * k(0) + 2 * k(1)) / 4 + (2 * k(0) + 2 * k(5)) / 4 - 2 * cross_all
    assert (paper, unbiased, biased) == (Fraction(7, 30), Fraction(7, 15), Fraction(23, 18))

    z_q = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    z_p = torch.tensor([[0.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    for estimator, want in (("paper", paper), ("unbiased", unbiased), ("biased", biased)):
        penalty = IMQMMDPenalty(scales=(0.5, 2.0), bandwidth=2.0, estimator=estimator)
        got = penalty(z_q, z_p)
        assert float(got) == pytest.approx(float(want), rel=1e-12)
        kernel = partial(imq_kernel, c=2.0, scales=(0.5, 2.0))
        assert float(mmd2(z_q, z_p, kernel, estimator)) == pytest.approx(float(want), rel=1e-12)
    # Unbound and without a bandwidth, C = 2 * D * 1 = 4 (D = 2): k(d2) = 2/(2+d2) + 8/(8+d2).
    k4 = lambda d2: Fraction(2, 2 + d2) + Fraction(8, 8 + d2)  # noqa: E731
    want4 = k4(1) + k4(5) - 2 * (k4(1) + k4(8) + k4(2) + k4(5)) / 4
    got4 = IMQMMDPenalty(scales=(0.5, 2.0))(z_q, z_p)
    assert float(got4) == pytest.approx(float(want4), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Closed form: Gaussian-kernel MMD^2 between isotropic Gaussians.


def _rbf_expectation(mu_sq, v, c, d):
    """E exp(-|u|^2 / C) for u ~ N(mu, v I_d): (1 + 2v/C)^(-d/2) exp(-|mu|^2 / (C + 2v))."""
    return (1 + 2 * v / c) ** (-d / 2) * math.exp(-mu_sq / (c + 2 * v))


def closed_form_rbf_mmd2(m1, s1, m2, s2, c, scales):
    d = len(m1)
    mu_sq = sum((a - b) ** 2 for a, b in zip(m1, m2, strict=True))
    total = 0.0
    for s in scales:
        cs = c * s
        total += _rbf_expectation(0.0, 2 * s1**2, cs, d)  # z - z' ~ N(0, 2 s1^2 I)
        total += _rbf_expectation(0.0, 2 * s2**2, cs, d)
        total -= 2 * _rbf_expectation(mu_sq, s1**2 + s2**2, cs, d)  # z - y
    return total


@pytest.mark.parametrize(
    ("m1", "s1", "scales"),
    [
        ((0.0, 0.0, 0.0), 1.0, (1.0,)),  # identical distributions: MMD^2 = 0
        ((0.0, 0.0, 0.0), 0.5, (1.0,)),  # shrunk codes
        ((0.0, 0.0, 0.0), 2.0, (1.0,)),  # over-dispersed codes
        ((0.7, 0.7, 0.0), 0.6, (1.0,)),  # shifted and shrunk
        ((1.0, 0.0, 0.0), 0.5, (0.5, 2.0)),  # shifted and shrunk, two kernel scales
    ],
)
def test_rbf_mmd2_matches_gaussian_closed_form(m1, s1, scales):
    d, c, n, reps = 3, 6.0, 1000, 16
    truth = closed_form_rbf_mmd2(m1, s1, (0.0,) * d, 1.0, c, scales)
    g = torch.Generator().manual_seed(7)
    kernel = partial(rbf_kernel, c=c, scales=scales)
    vals: dict[str, list[float]] = {"paper": [], "unbiased": []}
    for _ in range(reps):
        z_q = torch.tensor(m1, dtype=torch.float64) + s1 * torch.randn(
            n, d, generator=g, dtype=torch.float64
        )
        z_p = torch.randn(n, d, generator=g, dtype=torch.float64)
        for estimator, out in vals.items():
            out.append(float(mmd2(z_q, z_p, kernel, estimator)))
    for values in vals.values():
        est = torch.tensor(values, dtype=torch.float64)
        # Both estimators are unbiased, so the mean of `reps` independent values is within a few
        # standard errors of the truth: 5 standard errors (estimated from the repetitions, a
        # t-test with 15 degrees of freedom) fail by chance with probability < 1e-3. The floor
        # 2e-4 covers the null case, whose spread shrinks like 1/n instead of 1/sqrt(n).
        tol = max(5 * float(est.std() / math.sqrt(reps)), 2e-4)
        assert float(est.mean()) == pytest.approx(truth, abs=tol)
        # The tolerance is tight enough to reject a kernel twice too wide or too narrow.
        if truth > 0:
            for wrong_c in (2 * c, c / 2):
                wrong = closed_form_rbf_mmd2(m1, s1, (0.0,) * d, 1.0, wrong_c, scales)
                assert abs(wrong - truth) > 1.5 * tol


# ---------------------------------------------------------------------------------------------
# Estimator expectations for identical distributions.


def test_unbiased_estimators_average_to_zero_and_biased_is_positive():
    d, n, reps = 4, 40, 400
    g = torch.Generator().manual_seed(11)
    kernel = partial(imq_kernel, c=2.0 * d, scales=PAPER_SCALES)
    vals: dict[str, list[float]] = {"paper": [], "unbiased": [], "biased": []}
    for _ in range(reps):
        z_q = torch.randn(n, d, generator=g, dtype=torch.float64)
        z_p = torch.randn(n, d, generator=g, dtype=torch.float64)
        for est, out in vals.items():
            out.append(float(mmd2(z_q, z_p, kernel, est)))
    for est in ("paper", "unbiased"):
        v = torch.tensor(vals[est])
        se = float(v.std() / math.sqrt(reps))
        # Expectation exactly 0: the mean lies within 4 standard errors (fails w.p. < 1e-4).
        assert abs(float(v.mean())) < 4 * se
        # Single values are negative about half the time: the documented, expected behaviour.
        assert 0.25 < float((v < 0).double().mean()) < 0.75
    b = torch.tensor(vals["biased"])
    assert (b >= 0).all()
    assert float(b.mean()) > 20 * float(b.std() / math.sqrt(reps))


def test_zero_on_identical_matches_the_estimator():
    z = torch.randn(32, 5, generator=torch.Generator().manual_seed(3))
    for cls in (IMQMMDPenalty, RBFMMDPenalty):
        for est in ("unbiased", "biased"):
            pen = cls(estimator=est)
            assert pen.zero_on_identical
            assert float(pen(z, z.clone())) == 0.0
        pen = cls(estimator="paper")
        assert not pen.zero_on_identical
        # The paper's cross term keeps the i = j pairs (k(0) is the largest value): negative.
        assert float(pen(z, z.clone())) < 0


# ---------------------------------------------------------------------------------------------
# Plugins: the kernel constant comes from the prior.


@pytest.mark.parametrize(
    ("cls", "kernel", "default_scales"),
    [(IMQMMDPenalty, imq_kernel, PAPER_SCALES), (RBFMMDPenalty, rbf_kernel, (1.0,))],
)
def test_penalty_uses_constant_from_prior(cls, kernel, default_scales):
    dim, var = 5, 2.5
    g = torch.Generator().manual_seed(5)
    z_q = 0.7 * torch.randn(30, dim, generator=g) + 0.3
    z_p = math.sqrt(var) * torch.randn(40, dim, generator=g)
    pen = cls()
    assert pen.scales == default_scales and pen.bandwidth is None and pen.estimator == "paper"
    # Before bind: D from the codes, sigma^2 = 1.
    before = partial(kernel, c=2.0 * dim, scales=default_scales)
    torch.testing.assert_close(pen(z_q, z_p), mmd2(z_q, z_p, before, "paper"))
    pen.bind(IsotropicGaussian(dim, var))
    assert pen.constant() == pytest.approx(2 * dim * var)
    after = partial(kernel, c=2.0 * dim * var, scales=default_scales)
    torch.testing.assert_close(pen(z_q, z_p), mmd2(z_q, z_p, after, "paper"))
    assert abs(float(mmd2(z_q, z_p, after, "paper") - mmd2(z_q, z_p, before, "paper"))) > 1e-4
    # An explicit bandwidth wins over the prior.
    fixed = cls(bandwidth=3.0, scales=(0.5, 1.0), estimator="unbiased")
    fixed.bind(IsotropicGaussian(dim, var))
    want = mmd2(z_q, z_p, partial(kernel, c=3.0, scales=(0.5, 1.0)), "unbiased")
    torch.testing.assert_close(fixed(z_q, z_p), want)


def test_penalty_is_a_latent_penalty_with_documented_options():
    from wae_toolkit.plugins.options import plugin_options

    for cls in (IMQMMDPenalty, RBFMMDPenalty):
        assert issubclass(cls, LatentPenalty) and not cls.adversarial
        specs = {s.name: s for s in plugin_options(cls)}
        assert list(specs) == ["scales", "bandwidth", "estimator", "block", "compiled"]
        assert all(s.help for s in specs.values()), "every option needs an Args: line"


def test_gradients_reach_z_q_and_match_finite_differences():
    g = torch.Generator().manual_seed(2)
    z_p = torch.randn(6, 3, generator=g, dtype=torch.float64)
    for est in ("paper", "unbiased", "biased"):
        for kernel in (imq_kernel, rbf_kernel):
            k = partial(kernel, c=6.0, scales=(0.5, 2.0))
            z_q = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
            assert torch.autograd.gradcheck(lambda z, k=k, e=est: mmd2(z, z_p, k, e), (z_q,))
    z_q = torch.randn(16, 4, generator=g, requires_grad=True)
    IMQMMDPenalty()(z_q, torch.randn(16, 4, generator=g)).backward()
    assert z_q.grad is not None and torch.isfinite(z_q.grad).all() and z_q.grad.abs().sum() > 0


def test_dtype_follows_z_q():
    g = torch.Generator().manual_seed(4)
    z_p = torch.randn(8, 3, generator=g)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        z_q = torch.randn(8, 3, generator=g).to(dtype)
        assert IMQMMDPenalty()(z_q, z_p).dtype == dtype


# ---------------------------------------------------------------------------------------------
# Errors name the tensors and their shapes.


def test_bad_shapes_raise_usage_error_with_shapes():
    pen = IMQMMDPenalty()
    with pytest.raises(UsageError, match=r"z_q \(64, 8\) and z_p \(64, 4\)"):
        pen(torch.randn(64, 8), torch.randn(64, 4))
    with pytest.raises(UsageError, match=r"z_q \(64,\) and z_p \(64, 4\)"):
        pen(torch.randn(64), torch.randn(64, 4))
    with pytest.raises(UsageError, match=r"at least 2 .* z_q \(1, 4\)"):
        pen(torch.randn(1, 4), torch.randn(64, 4))
    with pytest.raises(UsageError, match=r"a \(3, 2\) and b \(3, 5\)"):
        squared_distances(torch.randn(3, 2), torch.randn(3, 5))
    with pytest.raises(UsageError, match="Unknown MMD estimator 'v'"):
        mmd2(torch.randn(4, 2), torch.randn(4, 2), partial(imq_kernel, c=1.0), "v")
    bound = RBFMMDPenalty()
    bound.bind(IsotropicGaussian(8))
    with pytest.raises(UsageError, match=r"dimension 8, but z_q has shape \(10, 4\)"):
        bound(torch.randn(10, 4), torch.randn(10, 4))
    # The biased estimator works with a single sample.
    assert torch.isfinite(IMQMMDPenalty(estimator="biased")(torch.randn(1, 4), torch.randn(1, 4)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"estimator": "median"}, "unknown estimator 'median'"),
        ({"scales": ()}, "non-empty list of positive numbers"),
        ({"scales": (1.0, -2.0)}, "non-empty list of positive numbers"),
        ({"bandwidth": 0.0}, "bandwidth must be a positive number"),
    ],
)
def test_bad_options_raise_usage_error(options, message):
    with pytest.raises(UsageError, match=message):
        IMQMMDPenalty(**options)


def test_kernel_values():
    d2 = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    # IMQ: 1 at d2 = 0 per scale; C s / (C s + d2).
    torch.testing.assert_close(
        imq_kernel(d2, 2.0, (1.0, 3.0)),
        torch.tensor([2.0, 2 / 3 + 6 / 7, 2 / 6 + 6 / 10], dtype=torch.float64),
    )
    torch.testing.assert_close(
        rbf_kernel(d2, 2.0, (1.0,)), torch.exp(-d2 / 2.0), rtol=1e-15, atol=0.0
    )
    with pytest.raises(UsageError, match="positive finite"):
        imq_kernel(d2, 0.0)


def test_multi_scale_kernels_have_exact_first_derivatives():
    d2 = (torch.rand(6, 5, dtype=torch.float64) * 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: imq_kernel(x, 1.5, PAPER_SCALES), (d2,))
    assert torch.autograd.gradcheck(lambda x: rbf_kernel(x, 1.5, (0.5, 1.0, 4.0)), (d2,))
    x = d2.detach()
    expected = sum(1.5 * s / (1.5 * s + x) for s in PAPER_SCALES)
    torch.testing.assert_close(imq_kernel(x, 1.5, PAPER_SCALES), expected)
