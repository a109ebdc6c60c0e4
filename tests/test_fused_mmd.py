"""The blockwise MMD (value and gradient in one pass) against brute force and finite differences.

The penalties ``mmd-imq`` and ``mmd-rbf`` train through :func:`fused_mmd2`; its value is checked
against the textbook double sums in plain Python, its gradients against finite differences
(``gradcheck``) and against autograd through the reference :func:`mmd2`, for every estimator,
both kernel families, equal and unequal batch sizes, and blocks that do and do not divide them.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from tests.test_kernels_mmd import PAPER_SCALES, _imq, _rbf, brute_mmd2
from wae_toolkit.builtins.mmd import IMQMMDPenalty, RBFMMDPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.fused_mmd import fused_mmd2
from wae_toolkit.numerics.kernels import imq_kernel, mmd2, rbf_kernel

ESTIMATORS = ("paper", "unbiased", "biased")
KERNELS = {"imq": (_imq, imq_kernel), "rbf": (_rbf, rbf_kernel)}


def _samples(n, m, d, seed, grad_p=False):
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(n, d, generator=g, dtype=torch.float64) * 1.3 + 0.4).requires_grad_()
    p = torch.randn(m, d, generator=g, dtype=torch.float64).requires_grad_(grad_p)
    return q, p


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", ["imq", "rbf"])
@pytest.mark.parametrize(
    ("n", "m", "block"),
    [(9, 9, 512), (9, 9, 4), (11, 7, 3), (7, 11, 1), (12, 12, 6), (5, 13, 100)],
)
def test_value_matches_brute_force(estimator, kind, n, m, block):
    q, p = _samples(n, m, 3, seed=n * 31 + m + block)
    c, scales = 4.5, (0.3, 1.0, 7.0)
    got = fused_mmd2(q, p, kind, tuple(c * s for s in scales), estimator, block)
    brute_k = partial(KERNELS[kind][0], c=c, scales=scales)
    want = brute_mmd2(q.tolist(), p.tolist(), brute_k, estimator)
    assert float(got.detach()) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", ["imq", "rbf"])
@pytest.mark.parametrize(("n", "m", "block"), [(6, 6, 512), (6, 6, 4), (7, 5, 2), (5, 8, 3)])
def test_gradients_match_finite_differences(estimator, kind, n, m, block):
    """Both inputs (a learnable prior's samples carry gradients too)."""
    q, p = _samples(n, m, 3, seed=100 + n + m + block, grad_p=True)
    constants = (2.0, 6.0)
    assert torch.autograd.gradcheck(
        lambda a, b: fused_mmd2(a, b, kind, constants, estimator, block), (q, p)
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", ["imq", "rbf"])
def test_gradients_equal_autograd_through_the_reference(estimator, kind):
    q, p = _samples(70, 70, 8, seed=7, grad_p=True)
    c = 16.0
    ref = mmd2(q, p, partial(KERNELS[kind][1], c=c, scales=PAPER_SCALES), estimator)
    ref_grads = torch.autograd.grad(ref, (q, p))
    for block in (512, 32, 17):
        got = fused_mmd2(q, p, kind, tuple(c * s for s in PAPER_SCALES), estimator, block)
        grads = torch.autograd.grad(got, (q, p))
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-14)


def test_float32_codes_give_a_float32_result_close_to_float64():
    q, p = _samples(300, 300, 8, seed=3)
    want = fused_mmd2(q, p, "imq", (1.6, 16.0), "paper", 128)
    got = fused_mmd2(q.detach().float(), p.detach().float(), "imq", (1.6, 16.0), "paper", 128)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(want), abs=1e-6)


def test_no_gradient_is_computed_for_inputs_that_do_not_need_one():
    q, p = _samples(20, 20, 2, seed=4)
    value = fused_mmd2(q.detach(), p, "imq", (1.0,), "paper", 8)
    assert not value.requires_grad


def test_second_derivatives_are_refused_not_zero():
    """The gradient carries no graph: differentiating it again is an error, never a silent 0."""
    q, p = _samples(8, 8, 2, seed=5)
    (g,) = torch.autograd.grad(fused_mmd2(q, p, "imq", (2.0,)), q, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad|once_differentiable"):
        torch.autograd.grad(g.sum(), q)


def test_compiled_blocks_match_the_eager_ones():
    """`compiled=True` fuses each block's kernel terms with torch.compile; same numbers."""
    g = torch.Generator().manual_seed(0)
    z_p = torch.randn(64, 4, generator=g)
    for block in (512, 48):  # the stacked path and the blocked path
        values, grads = [], []
        for compiled in (False, True):
            z_q = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) + 0.3
            z_q.requires_grad_()
            value = IMQMMDPenalty(block=block, compiled=compiled)(z_q, z_p)
            value.backward()
            values.append(value.detach())
            grads.append(z_q.grad)
        torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [IMQMMDPenalty, RBFMMDPenalty])
def test_penalties_give_the_same_value_for_every_block(cls):
    g = torch.Generator().manual_seed(9)
    z_q, z_p = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g)
    values = [float(cls(block=b)(z_q, z_p)) for b in (512, 64, 33)]
    assert values == pytest.approx([values[0]] * 3, abs=2e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_bad_block_sizes_are_refused_in_one_sentence(bad):
    with pytest.raises(UsageError, match="block must be a positive integer"):
        IMQMMDPenalty(block=bad)
    with pytest.raises(UsageError, match="block size must be a positive integer"):
        fused_mmd2(torch.randn(4, 2), torch.randn(4, 2), "imq", (1.0,), "paper", bad)


def test_unknown_kind_and_estimator_are_refused():
    z = torch.randn(4, 2)
    with pytest.raises(UsageError, match="Unknown kernel kind 'laplace'; allowed: imq, rbf"):
        fused_mmd2(z, z, "laplace", (1.0,))
    with pytest.raises(UsageError, match="Unknown MMD estimator"):
        fused_mmd2(z, z, "imq", (1.0,), "u-stat")
    with pytest.raises(UsageError, match="at least 2 sample"):
        fused_mmd2(z[:1], z, "imq", (1.0,))
