"""The energy-distance penalty against independent ground truth.

Ground truth, none of it computed by the code under test: scipy's 1-D energy distance and the
Cramer form ``2 int (F - G)^2``; a brute-force double loop over pairs in plain numpy; the exact
population energy distance between two 1-D Gaussians, compared with the average of many
independent estimates within a tolerance set by their standard error; and the installed
metadata that wae-toolkit's registry reads.
"""

from __future__ import annotations

import importlib.metadata as md
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import torch
from torch import Tensor
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.testing import check_options, check_penalty

from wae_energy.penalty import EnergyDistancePenalty, energy_distance

DIST = "wae-toolkit-energy"
VERSION = "0.1.0"

#: Small enough that the smoothing's bias (at most 2 eps^(beta / 2), 2e-15 at beta = 0.1) is
#: below float64 rounding for every beta used here, so the estimators can be compared with the
#: exact formulas.
EXACT_EPS = 1e-300


def brute_force(x: np.ndarray, y: np.ndarray, beta: float, estimator: str) -> float:
    """The energy estimators by a double loop over pairs of rows (no smoothing)."""
    n, m = len(x), len(y)
    cross = sum(np.linalg.norm(x[i] - y[j]) ** beta for i in range(n) for j in range(m))
    within_x = sum(
        np.linalg.norm(x[i] - x[k]) ** beta for i in range(n) for k in range(n) if i != k
    )
    within_y = sum(
        np.linalg.norm(y[j] - y[k]) ** beta for j in range(m) for k in range(m) if j != k
    )
    if estimator == "unbiased":
        return float(2 * cross / (n * m) - within_x / (n * (n - 1)) - within_y / (m * (m - 1)))
    return float(2 * cross / (n * m) - within_x / n**2 - within_y / m**2)


def value(x: np.ndarray, y: np.ndarray, **options: object) -> float:
    """The penalty on numpy arrays, in float64."""
    penalty = EnergyDistancePenalty(**options)  # type: ignore[arg-type]
    return float(penalty(torch.from_numpy(x), torch.from_numpy(y)))


# --------------------------------------------------------------------------------------------
# The conformance kit and the options


@pytest.mark.parametrize("dim", [1, 2, 8])
@pytest.mark.parametrize(
    "options",
    [{}, {"estimator": "biased"}, {"beta": 0.5}, {"beta": 1.5, "estimator": "biased", "eps": 1e-8}],
)
def test_conformance_kit(options, dim):
    check_penalty(EnergyDistancePenalty(**options), dim=dim)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_conformance_kit_on_cuda():
    for estimator in ("unbiased", "biased"):
        check_penalty(EnergyDistancePenalty(estimator=estimator), dim=8, device="cuda")


def test_options_are_attributes_and_round_trip():
    penalty = EnergyDistancePenalty(beta=1, estimator="biased", eps=1e-10)
    assert (penalty.beta, penalty.estimator, penalty.eps) == (1.0, "biased", 1e-10)
    assert isinstance(penalty.beta, float)
    assert EnergyDistancePenalty.interface_version == "1.0"
    check_options(penalty)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"beta": 2.0}, ["beta", "0 < beta < 2", "2.0"]),
        ({"beta": 0}, ["beta", "got 0"]),
        ({"beta": -1.0}, ["beta"]),
        ({"beta": math.nan}, ["beta", "nan"]),
        ({"beta": True}, ["beta", "True"]),
        ({"beta": "1"}, ["beta", "'1'"]),
        ({"estimator": "paper"}, ["estimator", "'paper'", "unbiased, biased"]),
        ({"eps": 0.0}, ["eps", "positive", "0.0"]),
        ({"eps": math.inf}, ["eps", "inf"]),
    ],
)
def test_bad_options_raise_one_clear_sentence(options, words):
    with pytest.raises(UsageError) as exc:
        EnergyDistancePenalty(**options)
    msg = str(exc.value)
    assert msg.startswith("EnergyDistancePenalty: ") and msg.endswith(".") and "\n" not in msg
    for word in words:
        assert word in msg


def test_shape_errors_name_both_tensors_and_their_shapes():
    penalty = EnergyDistancePenalty()
    with pytest.raises(UsageError, match=r"z_q \(5, 3\) and z_p \(6, 4\)"):
        penalty(torch.zeros(5, 3), torch.zeros(6, 4))
    with pytest.raises(UsageError, match=r"z_q \(5,\) and z_p \(6, 4\)"):
        penalty(torch.zeros(5), torch.zeros(6, 4))
    with pytest.raises(UsageError, match=r"at least 2 sample.*z_q \(1, 4\) and z_p \(6, 4\)"):
        penalty(torch.zeros(1, 4), torch.zeros(6, 4))
    # One sample on each side is enough for the V-statistic: it is then 2 ||z - y||^beta.
    one = EnergyDistancePenalty(estimator="biased", eps=EXACT_EPS)
    got = one(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]))
    assert float(got) == pytest.approx(10.0, rel=1e-6)


def test_results_follow_z_q_dtype_and_half_inputs_are_summed_in_float32():
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    assert EnergyDistancePenalty()(z.double(), z.double() + 1).dtype == torch.float64
    half = EnergyDistancePenalty()(z.half(), (z + 1).half())
    assert half.dtype == torch.float16
    assert float(half) == pytest.approx(float(EnergyDistancePenalty()(z, z + 1)), rel=1e-2)


# --------------------------------------------------------------------------------------------
# Exact values


@pytest.mark.parametrize(("n", "m"), [(7, 5), (20, 20), (33, 12)])
def test_1d_biased_equals_scipy_energy_distance_squared(n, m):
    """scipy returns ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` for the empirical distributions.

    That is the square root of the V-statistic itself, so the factor is 1: the V-statistic is
    ``scipy.stats.energy_distance(x, y) ** 2``, not twice it.
    """
    rng = np.random.default_rng(n * 100 + m)
    x = rng.normal(0.0, 1.0, n)
    y = rng.normal(0.7, 1.5, m)
    expected = scipy.stats.energy_distance(x, y) ** 2
    got = value(x[:, None], y[:, None], estimator="biased", eps=EXACT_EPS)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)
    assert got != pytest.approx(2 * expected, rel=0.1)
    # With the default eps the documented offset, -sqrt(eps) (1/n + 1/m), is what changes, up to
    # terms eps / (2 d) from the closest pairs (d > 1e-4 here, so below 1e-8).
    smoothed = value(x[:, None], y[:, None], estimator="biased")
    assert smoothed == pytest.approx(expected - 1e-6 * (1 / n + 1 / m), rel=0, abs=1e-8)
    assert smoothed != pytest.approx(expected, rel=0, abs=1e-7)


def test_1d_biased_equals_the_cramer_form():
    """For beta = 1 in 1-D the V-statistic is ``2 int (F_n(t) - G_m(t))^2 dt``."""
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-1, 2, 11), rng.exponential(1.0, 9)
    grid = np.sort(np.concatenate([x, y]))
    f = np.searchsorted(np.sort(x), grid[:-1], side="right") / len(x)
    g = np.searchsorted(np.sort(y), grid[:-1], side="right") / len(y)
    cramer = 2 * np.sum((f - g) ** 2 * np.diff(grid))
    got = value(x[:, None], y[:, None], estimator="biased", eps=EXACT_EPS)
    assert got == pytest.approx(cramer, rel=1e-12)


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize(
    ("n", "m", "dim", "beta"),
    [(2, 2, 1, 1.0), (5, 7, 3, 1.0), (9, 4, 2, 0.5), (6, 6, 5, 1.5), (8, 3, 4, 0.1)],
)
def test_matches_a_brute_force_double_loop(estimator, n, m, dim, beta):
    rng = np.random.default_rng(n + 10 * m + 100 * dim)
    x = rng.normal(0.0, 1.0, (n, dim))
    y = rng.normal(0.3, 1.2, (m, dim)) + 5.0  # far from the origin: centring matters in float32
    expected = brute_force(x, y, beta, estimator)
    got = value(x, y, beta=beta, estimator=estimator, eps=EXACT_EPS)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)
    # In float32 with the default eps: the V-statistic's documented constant offset, and float32
    # rounding of the matmul identity (the inputs are centred first, so ||y|| ~ 5 does no harm).
    f32 = EnergyDistancePenalty(beta=beta, estimator=estimator)(
        torch.from_numpy(x).float(), torch.from_numpy(y).float()
    )
    offset = 1e-12 ** (beta / 2) * (1 / n + 1 / m) if estimator == "biased" else 0.0
    assert float(f32) == pytest.approx(expected - offset, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5])
def test_default_eps_bias_is_as_documented(beta):
    """The smoothing shifts every well-separated pair by ``eps^(beta/2)``: it cancels in the
    U-statistic and leaves ``-eps^(beta/2) (1/n + 1/m)`` in the V-statistic."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(6, 3))
    shift = 1e-12 ** (beta / 2)
    unbiased = value(x, y, beta=beta)
    assert unbiased == pytest.approx(brute_force(x, y, beta, "unbiased"), rel=0, abs=1e-9)
    biased = value(x, y, beta=beta, estimator="biased")
    expected = brute_force(x, y, beta, "biased") - shift * (1 / 10 + 1 / 6)
    assert biased == pytest.approx(expected, rel=0, abs=1e-9)
    assert abs(biased - brute_force(x, y, beta, "biased")) <= 2 * shift


def test_energy_distance_function_is_the_penalty():
    g = torch.Generator().manual_seed(4)
    z_q, z_p = torch.randn(12, 3, generator=g), torch.randn(9, 3, generator=g)
    for options in ({}, {"beta": 0.7, "estimator": "biased"}):
        torch.testing.assert_close(
            energy_distance(z_q, z_p, **options), EnergyDistancePenalty(**options)(z_q, z_p)
        )
    with pytest.raises(UsageError, match="energy_distance: beta"):
        energy_distance(z_q, z_p, beta=3.0)


def test_identical_batches_and_zero_on_identical_are_truthful():
    z = np.random.default_rng(5).normal(size=(16, 4))
    biased = EnergyDistancePenalty(estimator="biased")
    unbiased = EnergyDistancePenalty()
    assert biased.zero_on_identical and not unbiased.zero_on_identical
    # Not exactly 0: the matmul identity leaves rounding noise of ~1e-16 ||z||^2 in the squared
    # distances of the cross term's pairs i = j, i.e. ~1e-8 in their distances.
    assert value(z, z, estimator="biased") == pytest.approx(0.0, abs=1e-7)
    # The U-statistic's cross term keeps its 16 zero pairs i = j, so penalty(z, z) is
    # 2 S / n^2 - 2 S / (n (n-1)) = -2 S / (n^2 (n-1)) with S the sum over pairs i != j.
    s = sum(np.linalg.norm(z[i] - z[k]) for i in range(16) for k in range(16) if i != k)
    assert value(z, z, eps=EXACT_EPS) == pytest.approx(-2 * s / (16**2 * 15), rel=1e-7)


# --------------------------------------------------------------------------------------------
# Statistical behaviour


def gaussian_abs_mean(mu: float, s: float) -> float:
    """``E|W|`` for ``W ~ N(mu, s^2)`` (the folded normal's mean)."""
    phi = 0.5 * (1.0 + math.erf(-mu / s / math.sqrt(2.0)))  # Phi(-mu / s)
    return s * math.sqrt(2.0 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * phi)


@pytest.mark.parametrize(
    ("m1", "s1", "m2", "s2"),
    [(0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 0.5, 1.0), (0.0, 1.0, 0.0, 2.0), (1.0, 0.5, -0.5, 1.5)],
)
def test_mean_of_estimates_matches_the_gaussian_closed_form(m1, s1, m2, s2):
    """Population energy distance between N(m1, s1^2) and N(m2, s2^2), beta = 1.

    ``X - Y ~ N(m1 - m2, s1^2 + s2^2)`` and ``X - X' ~ N(0, 2 s1^2)``, so with the folded normal
    mean ``E|W|`` the distance is ``2 E|X - Y| - 2 s1 / sqrt(pi) - 2 s2 / sqrt(pi)``.

    The U-statistic is unbiased and the ``R`` estimates are independent, so their mean is within
    a few standard errors ``sd / sqrt(R)`` of the truth: 5 standard errors leave a correct
    implementation a false-failure chance below 1e-6 (normal approximation over R = 1500 means).
    The V-statistic's mean must match ``E + E|X - X'| / n + E|Y - Y'| / m`` in the same way; its
    bias ``E|X - X'| / n + E|Y - Y'| / m`` is larger than the tolerance, which shows that the
    tolerance is tight enough to catch an ``O(1/n)`` error (a wrong divisor, say).
    """
    n, m, reps = 24, 40, 1500
    e_xy = gaussian_abs_mean(m1 - m2, math.sqrt(s1**2 + s2**2))
    e_xx, e_yy = 2 * s1 / math.sqrt(math.pi), 2 * s2 / math.sqrt(math.pi)
    truth = 2 * e_xy - e_xx - e_yy
    g = torch.Generator().manual_seed(11)
    unbiased, biased = EnergyDistancePenalty(), EnergyDistancePenalty(estimator="biased")
    u_values, v_values = [], []
    for _ in range(reps):
        x = m1 + s1 * torch.randn(n, 1, generator=g, dtype=torch.float64)
        y = m2 + s2 * torch.randn(m, 1, generator=g, dtype=torch.float64)
        u_values.append(float(unbiased(x, y)))
        v_values.append(float(biased(x, y)))
    u, v = np.array(u_values), np.array(v_values)
    se_u, se_v = u.std(ddof=1) / math.sqrt(reps), v.std(ddof=1) / math.sqrt(reps)
    assert abs(u.mean() - truth) < 5 * se_u, (u.mean(), truth, se_u)
    v_bias = e_xx / n + e_yy / m
    assert abs(v.mean() - (truth + v_bias)) < 5 * se_v, (v.mean(), truth + v_bias, se_v)
    assert 5 * se_u < v_bias and 5 * se_v < v_bias  # the test can tell an O(1/n) error apart
    if truth == 0.0:
        assert (u < 0).mean() > 0.3  # unbiased at 0: a good share of batches come out negative
        assert (v > 0).all()


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_a_growing_shift_increases_the_value(estimator):
    g = torch.Generator().manual_seed(6)
    z, y = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g)
    direction = torch.tensor([1.0, -1.0, 0.5, 0.0])
    penalty = EnergyDistancePenalty(estimator=estimator)
    values = [float(penalty(z + t * direction, y)) for t in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values


def test_invariances_translation_rotation_and_scaling():
    """Distances are unchanged by a rigid motion and multiplied by c under scaling by c."""
    g = torch.Generator().manual_seed(8)
    z, y = (
        torch.randn(20, 3, generator=g, dtype=torch.float64),
        torch.randn(30, 3, generator=g, dtype=torch.float64),
    )
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    offset = torch.tensor([3.0, -2.0, 10.0], dtype=torch.float64)
    for beta in (0.5, 1.0, 1.5):
        penalty = EnergyDistancePenalty(beta=beta, eps=EXACT_EPS)
        base = penalty(z, y)
        torch.testing.assert_close(penalty(z @ rotation + offset, y @ rotation + offset), base)
        torch.testing.assert_close(penalty(2.5 * z, 2.5 * y), 2.5**beta * base)


# --------------------------------------------------------------------------------------------
# Gradients where points coincide


def smoothed_brute_force(q: Tensor, p: Tensor, beta: float, estimator: str, eps: float) -> Tensor:
    """The documented smoothed estimator from explicit differences, ``O(n m D)`` memory."""

    def power(a: Tensor, b: Tensor) -> Tensor:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return (d2 + eps) ** (beta / 2) - eps ** (beta / 2)

    n, m = len(q), len(p)
    wq, wp = power(q, q).sum(), power(p, p).sum()  # diagonals are exactly 0 here
    if estimator == "unbiased":
        return 2 * power(q, p).mean() - wq / (n * (n - 1)) - wp / (m * (m - 1))
    return 2 * power(q, p).mean() - wq / n**2 - wp / m**2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("beta", [0.3, 1.0, 1.5])
def test_gradients_are_finite_with_exact_duplicates(beta, estimator, dtype):
    g = torch.Generator().manual_seed(9)
    z_p = torch.randn(16, 3, generator=g, dtype=torch.float64)
    fresh = torch.randn(4, 3, generator=g, dtype=torch.float64)
    # Rows 0-7 repeat prior samples exactly, rows 8-11 repeat rows 0-3 within z_q itself.
    z_q = torch.cat([z_p[:8], z_p[:4], fresh]).to(dtype).requires_grad_(True)
    penalty = EnergyDistancePenalty(beta=beta, estimator=estimator)
    out = penalty(z_q, z_p.to(dtype))
    out.backward()
    assert torch.isfinite(out) and z_q.grad is not None
    assert torch.isfinite(z_q.grad).all()
    if dtype == torch.float64:
        # The same gradient as the explicit-difference formula, in which every duplicated pair
        # contributes exactly 0 (its slope is capped by eps and multiplied by a - b = 0).
        leaf = z_q.detach().clone().requires_grad_(True)
        smoothed_brute_force(leaf, z_p, beta, estimator, penalty.eps).backward()
        assert leaf.grad is not None
        torch.testing.assert_close(z_q.grad, leaf.grad, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Discovery through the installed metadata


def _installed_version() -> str | None:
    try:
        return md.version(DIST)
    except md.PackageNotFoundError:
        return None


needs_install = pytest.mark.skipif(
    _installed_version() is None,
    reason=(
        f"{DIST} is not installed, so there is no entry point to discover; from the repository "
        "root run: pip install -c constraints.txt -e plugins/wae-toolkit-energy"
    ),
)


@needs_install
def test_discovered_through_installed_metadata():
    from wae_toolkit.plugins import registry

    info = registry.get_plugin_info("penalty", "energy")
    assert info.distribution == DIST and info.version == VERSION == _installed_version()
    assert info.target == "wae_energy.penalty:EnergyDistancePenalty" and not info.builtin
    assert info.description == (
        "Energy distance between the codes and the prior samples (Szekely & Rizzo), 0 < beta < 2."
    )
    assert registry.get_plugin_class("penalty", "energy") is EnergyDistancePenalty
    penalty = registry.create("penalty", "energy", beta="0.5", estimator="biased", eps="1e-10")
    assert (penalty.beta, penalty.estimator, penalty.eps) == (0.5, "biased", 1e-10)


@needs_install
def test_listing_does_not_import_the_plugin():
    code = (
        "import sys; from wae_toolkit.plugins.registry import list_plugins; "
        "names = [i.name for i in list_plugins('penalty')]; assert 'energy' in names, names; "
        "assert 'wae_energy' not in sys.modules and 'wae_energy.penalty' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_install
def test_cli_shows_the_options(capsys):
    from wae_toolkit.cli.app import main

    try:
        main(["plugins", "show", "energy"])
    except SystemExit as exc:  # typer may exit 0 explicitly
        assert exc.code in (0, None)
    out = capsys.readouterr().out
    assert DIST in out and VERSION in out
    for word in ("beta", "estimator", "eps", "'unbiased'", "1e-12", "U-statistic"):
        assert word in out
