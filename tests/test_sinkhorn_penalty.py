"""The sinkhorn penalty against exact optimal transport (POT's network simplex) and closed forms.

Why the tolerance ``eps * log(max(n, m))``: geomloss's entropic OT between uniform measures is
``OT_eps(a, b) = min_pi <pi, c> + eps KL(pi | a x b)``. KL >= 0 gives ``OT_eps >= OT``; the optimal
OT plan has entries ``<= min(1/n, 1/m)``, so its ``KL(pi | a x b) <= log max(n, m)`` and
``OT_eps(a, b) <= OT + eps log max(n, m)``. Likewise ``0 <= OT_eps(a, a) <= eps log n``. Hence
the debiased ``S_eps = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2`` lies within
``eps log max(n, m)`` of the exact OT cost. geomloss's annealed solver adds its own convergence
error, which shrinks as ``scaling -> 1``; with ``scaling = 0.995`` (p = 2) it stays below that
bound on these problems (measured: at most 1.3e-4 against a bound of 3.9e-4).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import ot
import pytest
import torch
from geomloss import SamplesLoss

from wae_toolkit.builtins.sinkhorn import DEFAULT_BLUR_SCALE, SinkhornPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.testing import IsotropicGaussian


def _clouds(n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, -0.5], dtype=torch.float64)
    y = 0.8 * torch.randn(m, 2, generator=g, dtype=torch.float64) + shift
    return x, y


def _exact_ot(x: torch.Tensor, y: torch.Tensor, p: int) -> float:
    """Exact OT in geomloss's units: cost |x - y|^2 / 2 (p = 2) or |x - y| (p = 1)."""
    a = np.full(len(x), 1 / len(x))
    b = np.full(len(y), 1 / len(y))
    if p == 2:
        cost = ot.dist(x.numpy(), y.numpy(), metric="sqeuclidean") / 2
    else:
        cost = ot.dist(x.numpy(), y.numpy(), metric="euclidean")
    return float(ot.emd2(a, b, cost))


@pytest.mark.parametrize(("n", "m", "seed"), [(40, 50, 0), (30, 60, 1), (60, 60, 2)])
def test_p2_approaches_exact_ot(n, m, seed):
    x, y = _clouds(n, m, seed)
    blur = 0.01
    got = float(SinkhornPenalty(blur=blur, p=2, scaling=0.995)(x, y))
    exact = _exact_ot(x, y, 2)
    tol = blur**2 * math.log(max(n, m))  # entropic bias bound, see the module docstring
    assert got == pytest.approx(exact, abs=tol)
    assert tol < 1e-3 * exact  # the check is tight relative to the value itself


@pytest.mark.parametrize(("n", "m", "seed"), [(40, 50, 0), (30, 60, 1)])
def test_p1_approaches_exact_w1(n, m, seed):
    x, y = _clouds(n, m, seed)
    blur = 1e-3  # p = 1: eps = blur
    got = float(SinkhornPenalty(blur=blur, p=1, scaling=0.99)(x, y))
    exact = _exact_ot(x, y, 1)
    assert got == pytest.approx(exact, abs=blur * math.log(max(n, m)))


def test_translation_gives_half_squared_shift_and_grows_with_it():
    # Between a cloud and its translate by m, the exact W2^2 is |m|^2 (the translation is the
    # optimal map), so in geomloss's units (|x - y|^2 / 2) the value is |m|^2 / 2.
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    pen = SinkhornPenalty(blur=0.01, scaling=0.995)
    values = []
    for size in (0.25, 0.5, 1.0, 2.0):
        shift = torch.tensor([size, -size / 2], dtype=torch.float64)
        v = float(pen(x + shift, x))
        assert v == pytest.approx(float(shift.pow(2).sum()) / 2, abs=1e-4 * math.log(50))
        values.append(v)
    assert values == sorted(values) and values[0] > 0
    # The same holds in higher dimension with the default (large) blur: the ranking by shift
    # size survives even where the value is far from the exact OT.
    z_p = torch.randn(200, 16, generator=g)
    pen = SinkhornPenalty()
    pen.bind(IsotropicGaussian(16))
    ranked = [float(pen(torch.randn(200, 16, generator=g) + s, z_p)) for s in (0.0, 0.3, 1.0)]
    assert ranked == sorted(ranked)


def test_zero_on_identical_inputs():
    g = torch.Generator().manual_seed(5)
    for dtype in (torch.float64, torch.float32):
        x = torch.randn(64, 3, generator=g).to(dtype)
        for blur in (0.05, None):
            value = float(SinkhornPenalty(blur=blur)(x, x.clone()))
            # The three OT_eps terms are identical problems, so debiasing cancels them up to
            # rounding; 1e-6 is far below the value of any real discrepancy here (> 1e-2).
            assert abs(value) < 1e-6
    assert not SinkhornPenalty.zero_on_identical  # only approximately zero


def test_default_blur_follows_sqrt_dim_times_sigma():
    assert DEFAULT_BLUR_SCALE == SinkhornPenalty().blur_scale == 0.7
    g = torch.Generator().manual_seed(6)
    for dim, var in ((4, 1.0), (16, 4.0), (64, 0.25)):
        pen = SinkhornPenalty()
        # Before bind: sigma = 1 and D from the codes.
        assert pen.effective_blur(dim) == pytest.approx(0.7 * math.sqrt(dim))
        pen.bind(IsotropicGaussian(dim, var))
        want_blur = 0.7 * math.sqrt(dim) * math.sqrt(var)
        assert pen.effective_blur() == pytest.approx(want_blur)
        z_q = math.sqrt(var) * torch.randn(40, dim, generator=g) + 0.2
        z_p = math.sqrt(var) * torch.randn(50, dim, generator=g)
        ref = SamplesLoss("sinkhorn", p=2, blur=want_blur, scaling=0.9, debias=True)
        torch.testing.assert_close(pen(z_q, z_p), ref(z_q, z_p))
    fixed = SinkhornPenalty(blur=0.3, blur_scale=5.0)
    fixed.bind(IsotropicGaussian(16, 4.0))
    assert fixed.effective_blur() == 0.3


def test_default_blur_avoids_the_small_blur_collapse_bias():
    # Documented in the class docstring: with a small blur in 32-D, batches of 256 of codes
    # shrunk by half score below matched codes (the penalty would reward collapse); with the
    # default blur they score above, and a shift by 1 along every axis scores far above.
    g = torch.Generator().manual_seed(7)
    dim, n = 32, 256
    small = SinkhornPenalty(blur_scale=0.01)
    default = SinkhornPenalty()
    for pen in (small, default):
        pen.bind(IsotropicGaussian(dim))
    for _ in range(2):
        z_p = torch.randn(n, dim, generator=g)
        x = torch.randn(n, dim, generator=g)
        assert float(small(0.5 * x, z_p)) < float(small(x, z_p))
        matched = float(default(x, z_p))
        assert matched < float(default(0.5 * x, z_p))
        assert float(default(x + 1.0, z_p)) > 15 * matched


def test_gradients_dtype_and_shapes():
    g = torch.Generator().manual_seed(8)
    pen = SinkhornPenalty()
    pen.bind(IsotropicGaussian(3))
    z_q = torch.randn(20, 3, generator=g, requires_grad=True)
    value = pen(z_q, torch.randn(25, 3, generator=g))
    assert value.dim() == 0 and value.dtype == torch.float32
    value.backward()
    assert z_q.grad is not None and torch.isfinite(z_q.grad).all() and z_q.grad.abs().sum() > 0
    z64 = torch.randn(10, 3, generator=g, dtype=torch.float64)
    assert pen(z64, torch.randn(10, 3, generator=g)).dtype == torch.float64
    with pytest.raises(UsageError, match=r"z_q \(20, 3\) and z_p \(20, 2\)"):
        pen(torch.randn(20, 3), torch.randn(20, 2))
    with pytest.raises(UsageError, match=r"dimension 3, but z_q has shape \(20, 2\)"):
        pen(torch.randn(20, 2), torch.randn(20, 2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"p": 3}, "p must be 1 or 2"),
        ({"blur": -1.0}, "blur must be a positive number"),
        ({"blur_scale": 0.0}, "blur_scale must be a positive number"),
        ({"scaling": 1.0}, r"scaling must be in \(0, 1\)"),
        ({"backend": "gpu"}, "unknown backend 'gpu'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        SinkhornPenalty(**options)


@pytest.mark.skipif(importlib.util.find_spec("pykeops") is not None, reason="pykeops installed")
def test_keops_backends_need_pykeops():
    with pytest.raises(UsageError, match="needs the pykeops package"):
        SinkhornPenalty(backend="online")


def test_auto_backend_is_tensorized_up_to_its_limit_and_same_value():
    """`auto` picks tensorized within max_tensorized pairs; forcing it gives the same number."""
    g = torch.Generator().manual_seed(3)
    z_q, z_p = torch.randn(40, 2, generator=g), torch.randn(30, 2, generator=g)
    auto = SinkhornPenalty(max_tensorized=40 * 30)
    assert auto.backend_for(40, 30) == "tensorized"
    assert float(auto(z_q, z_p)) == float(SinkhornPenalty(backend="tensorized")(z_q, z_p))


@pytest.mark.skipif(importlib.util.find_spec("pykeops") is not None, reason="pykeops installed")
def test_auto_backend_beyond_its_limit_says_what_to_do_without_pykeops():
    pen = SinkhornPenalty(max_tensorized=100)
    with pytest.raises(UsageError) as err:
        pen(torch.randn(11, 2), torch.randn(10, 2))
    msg = str(err.value)
    assert "110 pairs, more than the 100" in msg and "pip install pykeops" in msg
    assert "smaller batch" in msg and "\n" not in msg


@pytest.mark.skipif(importlib.util.find_spec("pykeops") is None, reason="pykeops not installed")
def test_auto_backend_beyond_its_limit_uses_keops():
    assert SinkhornPenalty(max_tensorized=100).backend_for(11, 10) == "online"


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_max_tensorized(bad):
    with pytest.raises(UsageError, match="max_tensorized must be"):
        SinkhornPenalty(max_tensorized=bad)
