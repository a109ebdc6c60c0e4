"""Conformance checks for plugins, for wae-toolkit's own tests and for plugin authors.

Call them from your test suite::

    from wae_toolkit.plugins.testing import check_penalty

    def test_my_penalty():
        check_penalty(MyPenalty())

Each ``check_*`` raises ``AssertionError`` with a sentence saying which part of the contract of
:mod:`wae_toolkit.plugins.interfaces` the plugin breaks. ``device`` lets a GPU user run them there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.plugins.data_checks import check_data_source
from wae_toolkit.plugins.interfaces import Cost, DataSource, LatentPenalty, Network, Prior
from wae_toolkit.plugins.option_checks import check_options, instance_of

__all__ = [
    "check_plugin",
    "check_cost",
    "check_penalty",
    "check_prior",
    "check_network",
    "check_data_source",
    "check_options",
    "IsotropicGaussian",
]


class IsotropicGaussian(Prior):
    """N(0, variance I), written here independently of the prior plugins: the prior the checks
    bind penalties to, and a stand-in for tests of penalties."""

    def __init__(self, dim: int, variance: float = 1.0) -> None:
        super().__init__(dim)
        self._variance = float(variance)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.dim, generator=generator, dtype=self.dtype)
        return (z * math.sqrt(self._variance)).to(self.device)

    def log_prob(self, z: Tensor) -> Tensor:
        v = self._variance
        return -0.5 * (z.pow(2).sum(1) / v + self.dim * math.log(2 * math.pi * v))

    @property
    def variance(self) -> float:
        return self._variance


def _name(obj: Any) -> str:
    return type(obj).__name__


def _finite(t: Tensor, what: str) -> None:
    assert torch.isfinite(t).all(), f"{what} has non-finite values"


def check_plugin(obj: Any, device: str | torch.device = "cpu") -> None:
    """Run the checks for ``obj``'s kind (cost, penalty, prior, network, or a data source of
    kind ``name``) with their defaults. ``obj`` is an instance (``check_plugin(MyPenalty())``)."""
    instance_of(obj, object, "check_plugin")
    if isinstance(obj, DataSource):
        check_data_source(obj)
    elif isinstance(obj, Cost):
        check_cost(obj, device=device)
    elif isinstance(obj, LatentPenalty):
        check_penalty(obj, device=device)
    elif isinstance(obj, Prior):
        check_prior(obj, device=device)
    elif isinstance(obj, Network):
        check_network(obj, device=device)
    else:
        raise AssertionError(
            f"{_name(obj)} is not a plugin: it must subclass Cost, LatentPenalty, Prior, Network "
            "or DataSource from wae_toolkit.plugins.interfaces"
        )


def check_cost(cost: Cost, device: str | torch.device = "cpu") -> None:
    """Check a :class:`~wae_toolkit.plugins.Cost`: shape ``(B,)``, finite, non-negative,
    differentiable in ``x_hat``, dtype and device follow the input, smallest at ``x_hat = x``."""
    instance_of(cost, Cost, "check_cost")
    g = torch.Generator().manual_seed(0)
    for shape in ((5, 2), (4, 1, 8, 8), (3, 3, 6, 5)):
        for dtype in (torch.float32, torch.float64):
            x = torch.rand(shape, generator=g, dtype=dtype).to(device)
            x_hat = torch.rand(shape, generator=g, dtype=dtype).to(device).requires_grad_(True)
            c = cost(x, x_hat)
            assert c.shape == (shape[0],), f"{_name(cost)}: cost of {shape} must be ({shape[0]},)"
            assert c.dtype == dtype, f"{_name(cost)}: cost dtype {c.dtype} != input {dtype}"
            assert c.device.type == torch.device(device).type, f"{_name(cost)}: wrong device"
            _finite(c, f"{_name(cost)} cost")
            assert (c >= 0).all(), f"{_name(cost)}: costs must be non-negative"
            c.sum().backward()
            assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all(), (
                f"{_name(cost)}: no finite gradient reaches x_hat"
            )
            same = cost(x, x.clone())
            assert (same <= c.detach() + 1e-6).all(), (
                f"{_name(cost)}: c(x, x) must not exceed c(x, other)"
            )
    check_options(cost)


def check_prior(prior: Prior, device: str | torch.device = "cpu", n: int = 20000) -> None:
    """Check a :class:`~wae_toolkit.plugins.Prior`: sample and log_prob shapes, device and
    dtype follow ``.to()``, seeded sampling is repeatable, the sample variance matches
    :attr:`variance`, and (for ``dim <= 2``) the density integrates to 1.

    A prior that declares ``has_density = False`` (it lives on a Lebesgue-null set such as a
    sphere, and its ``log_prob`` is with respect to a base measure on that set) is not
    integrated over ``R^D``. Instead ``log_prob`` must be ``-inf`` at samples moved by a Gaussian
    step of standard deviation ``sqrt(variance) / 2``: such points miss a null set almost
    surely. Checks of the support itself belong to the prior's own tests.
    """
    instance_of(prior, Prior, "check_prior")
    prior = prior.to(device)
    d = prior.dim
    z = prior.sample(n, generator=torch.Generator(device=device).manual_seed(0)).detach()
    assert z.shape == (n, d), f"{_name(prior)}.sample({n}) must be ({n}, {d}); got {tuple(z.shape)}"
    assert z.device.type == torch.device(device).type, (
        f"{_name(prior)}: samples on the wrong device"
    )
    _finite(z, f"{_name(prior)} samples")
    z2 = prior.sample(n, generator=torch.Generator(device=device).manual_seed(0))
    assert torch.equal(z, z2), f"{_name(prior)}: the same generator seed must give the same samples"
    lp = prior.log_prob(z[:100])
    assert lp.shape == (100,), f"{_name(prior)}.log_prob must return (B,); got {tuple(lp.shape)}"
    _finite(lp, f"{_name(prior)} log_prob")
    var = float(z.double().var(0).mean())
    assert abs(var - prior.variance) <= 0.1 * prior.variance + 5 * prior.variance / math.sqrt(n), (
        f"{_name(prior)}: sample variance {var:.4g} does not match variance {prior.variance:.4g}"
    )
    p64 = prior.double()
    assert p64.sample(3).dtype == torch.float64, f"{_name(prior)}: samples must follow .double()"
    if not prior.has_density:
        g = torch.Generator(device=device).manual_seed(1)
        step = torch.randn(100, d, generator=g, device=device, dtype=torch.float64)
        off = p64.log_prob(z[:100].double() + 0.5 * math.sqrt(p64.variance) * step)
        assert off.shape == (100,) and bool((off == -math.inf).all()), (
            f"{_name(prior)} has no density (has_density = False), so log_prob must be -inf off "
            "its support; it is finite at randomly moved samples"
        )
    elif d <= 2:
        s = math.sqrt(p64.variance)
        center = z.double().mean(0)
        lim = 8 * s + float(center.abs().max())
        k = 401 if d == 1 else 301
        axis = torch.linspace(-lim, lim, k, dtype=torch.float64, device=device)
        grid = axis[:, None] if d == 1 else torch.cartesian_prod(axis, axis)
        mass = p64.log_prob(grid).detach().exp().sum() * (axis[1] - axis[0]) ** d
        assert abs(float(mass) - 1) < 1e-2, (
            f"{_name(prior)}: density integrates to {float(mass):.4f}"
        )
    prior.float()
    check_options(prior)


def _draw(mean: Tensor, log_var: Tensor, eps: Tensor) -> Tensor:
    """The training loop's reparameterised draw ``mean + exp(log_var / 2) * eps``."""
    return mean + eps * (0.5 * log_var).exp()


def check_penalty(
    penalty: LatentPenalty, dim: int = 4, device: str | torch.device = "cpu", batch: int = 64
) -> None:
    """Check a :class:`~wae_toolkit.plugins.LatentPenalty`: a finite scalar, gradients reach
    ``z_q``, dtype and device follow the input, different batch sizes of ``z_q`` and ``z_p`` work,
    seeded calls repeat, adversarial hooks behave, and non-adversarial penalties score a shifted
    code distribution above a matched one.

    A penalty with ``needs_encoder_stats`` is called as the training loop calls it,
    ``penalty(z_q, z_p, mean=mean, log_var=log_var)``, with ``z_q`` drawn from
    ``N(mean, diag exp(log_var))``; its gradient is checked on ``mean``, through ``z_q`` and
    directly. A penalty with ``needs_prior_samples = False`` must give the same value for another
    ``z_p``. An adversarial penalty's ``critic_step`` logs must be finite detached scalars on the
    input's device.
    """
    instance_of(penalty, LatentPenalty, "check_penalty")
    prior = IsotropicGaussian(dim).to(device)
    penalty.bind(prior)
    penalty.to(device)
    name = _name(penalty)
    stats = bool(penalty.needs_encoder_stats)
    dev_type = torch.device(device).type

    def call(z_q: Tensor, z_p: Tensor, mean: Tensor | None, log_var: Tensor | None) -> Tensor:
        if stats:
            return penalty(z_q, z_p, mean=mean, log_var=log_var)
        return penalty(z_q, z_p)

    for dtype in (torch.float32, torch.float64):
        penalty.to(dtype)
        g = torch.Generator().manual_seed(1)
        z_q = (torch.randn(batch, dim, generator=g, dtype=dtype) + 0.5).to(device)
        z_q.requires_grad_(True)
        z_p = torch.randn(batch + 8, dim, generator=g, dtype=dtype).to(device)
        mean: Tensor | None = None
        log_var: Tensor | None = None
        leaf, leaf_name = z_q, "z_q"
        if stats:
            mean = z_q  # the leaf whose gradient is checked
            log_var = (0.5 * torch.randn(batch, dim, generator=g, dtype=dtype)).to(device)
            eps = torch.randn(batch, dim, generator=g, dtype=dtype).to(device)
            z_q = _draw(mean, log_var, eps)
            leaf, leaf_name = mean, "mean"
        if penalty.adversarial:
            logs = penalty.critic_step(z_q.detach(), z_p)
            assert isinstance(logs, dict), f"{name}.critic_step must return a dict"
            for k, v in logs.items():
                assert isinstance(v, Tensor) and v.dim() == 0, f"{name}: log '{k}' is not a scalar"
                _finite(v, f"{name} critic log '{k}'")
                assert not v.requires_grad, f"{name}: critic log '{k}' must be detached"
                assert v.device.type == dev_type, f"{name}: critic log '{k}' on the wrong device"
        torch.manual_seed(0)
        value = call(z_q, z_p, mean, log_var)
        assert isinstance(value, Tensor) and value.dim() == 0, f"{name} must return a scalar"
        assert value.dtype == dtype, f"{name}: value dtype {value.dtype} != input {dtype}"
        assert value.device.type == dev_type, f"{name}: value on the wrong device"
        _finite(value, f"{name} value")
        assert value.requires_grad, f"{name}: the value is not differentiable in {leaf_name}"
        value.backward()
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), (
            f"{name}: no finite gradient reaches {leaf_name}"
        )
        assert leaf.grad.abs().sum() > 0, (
            f"{name}: the gradient with respect to {leaf_name} is zero"
        )
        z_q = z_q.detach()
        if mean is not None:
            mean = mean.detach()
        torch.manual_seed(0)
        again = call(z_q, z_p, mean, log_var)
        torch.testing.assert_close(
            again, value.detach(), msg=f"{name}: not repeatable under a seed"
        )
        if not penalty.needs_prior_samples:
            other = torch.randn(batch, dim, generator=g, dtype=dtype).to(device) + 3.0
            torch.manual_seed(0)
            torch.testing.assert_close(
                call(z_q, other, mean, log_var),
                value.detach(),
                msg=f"{name}: needs_prior_samples is False, but the value depends on z_p",
            )
    penalty.float()
    if penalty.zero_on_identical:
        z = torch.randn(batch, dim, generator=torch.Generator().manual_seed(2)).to(device)
        zero = torch.zeros_like(z) if stats else None
        same = float(call(z, z, z if stats else None, zero))
        assert abs(same) < 1e-4, f"{name}: penalty(z, z) must be 0 (zero_on_identical); got {same}"
    if not penalty.adversarial:
        g = torch.Generator().manual_seed(3)
        z_p = torch.randn(256, dim, generator=g).to(device)
        z_m = torch.randn(256, dim, generator=g).to(device)
        z_s = torch.randn(256, dim, generator=g).to(device) + 2.0
        # With encoder statistics: Q(Z|x) = N(0, I) for every x (so Q_Z = P_Z), against N(2, I).
        zeros = torch.zeros_like(z_m)
        matched = float(call(z_m, z_p, zeros if stats else None, zeros if stats else None))
        shifted = float(call(z_s, z_p, zeros + 2.0 if stats else None, zeros if stats else None))
        assert shifted > matched, (
            f"{name}: a code distribution shifted by 2 scores {shifted:.4g}, not above a matched "
            f"one ({matched:.4g})"
        )
    check_options(penalty)


#: The sample shapes :func:`check_network` tries when it is given none.
NETWORK_SHAPES = ((1, 28, 28), (2, 64), (8,))


def _takes(network: Network, shape: tuple[int, ...]) -> bool:
    try:
        network.check_shape(shape)
    except Exception:
        return False
    return True


def check_network(
    network: Network,
    data_shape: tuple[int, ...] | None = None,
    latent_dim: int = 8,
    device: str | torch.device = "cpu",
) -> None:
    """Check a :class:`~wae_toolkit.plugins.Network`: both encoder kinds give the documented
    outputs, the decoder restores ``data_shape`` within its output activation's range, and
    gradients flow from the decoder output to the encoder's parameters. Without ``data_shape``:
    the first of :data:`NETWORK_SHAPES` (an image, a signal, a vector) the network takes."""
    instance_of(network, Network, "check_network")
    name = _name(network)
    if data_shape is None:
        data_shape = next((s for s in NETWORK_SHAPES if _takes(network, s)), NETWORK_SHAPES[0])
    network.check_shape(tuple(data_shape))
    x = torch.rand(3, *data_shape, generator=torch.Generator().manual_seed(0)).to(device)
    for gaussian in (False, True):
        enc = network.build_encoder(tuple(data_shape), latent_dim, gaussian=gaussian).to(device)
        out = enc(x)
        if gaussian:
            assert isinstance(out, tuple) and len(out) == 2, (
                f"{name}: a Gaussian encoder returns (mean, log_var)"
            )
            for t in out:
                assert t.shape == (3, latent_dim), (
                    f"{name}: encoder output must be (B, {latent_dim})"
                )
            z = out[0]
        else:
            assert isinstance(out, Tensor) and out.shape == (3, latent_dim), (
                f"{name}: a deterministic encoder returns codes (B, {latent_dim})"
            )
            z = out
        for output, (lo, hi) in (
            ("sigmoid", (0, 1)),
            ("tanh", (-1, 1)),
            ("linear", (-math.inf, math.inf)),
        ):
            dec = network.build_decoder(tuple(data_shape), latent_dim, output=output).to(device)
            x_hat = dec(z)
            assert x_hat.shape == x.shape, (
                f"{name}: decoder gives {tuple(x_hat.shape)}, not {tuple(x.shape)}"
            )
            assert (x_hat >= lo).all() and (x_hat <= hi).all(), (
                f"{name}: '{output}' output out of range"
            )
            _finite(x_hat, f"{name} decoder output")
        x_hat.pow(2).mean().backward()
        grads = [p.grad for p in enc.parameters() if p.requires_grad]
        assert any(gr is not None and gr.abs().sum() > 0 for gr in grads), (
            f"{name}: gradients do not reach the encoder"
        )
    check_options(network)
