"""Conformance checks for plugins, for wae-toolkit's own tests and for plugin authors.

Call them from your test suite::

    from wae_toolkit.testing import check_penalty

    def test_my_penalty():
        check_penalty(MyPenalty())

Each ``check_*`` raises ``AssertionError`` with a sentence saying which part of the contract of
:mod:`wae_toolkit.interfaces` the plugin breaks. ``device`` lets a GPU user run them there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.interfaces import Cost, LatentPenalty, Network, Prior
from wae_toolkit.options import plugin_options, resolved_options

__all__ = ["check_cost", "check_penalty", "check_prior", "check_network", "check_options"]


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


def check_options(obj: Any) -> None:
    """The plugin's options can be read back and rebuild an identical plugin.

    Every constructor argument has a default (a prior's ``dim`` excepted) and a type annotation,
    and building the class again from :func:`~wae_toolkit.options.resolved_options` gives the same
    options: this is what a run configuration saves and reloads.
    """
    cls = type(obj)
    for spec in plugin_options(cls):
        if isinstance(obj, Prior) and spec.name == "dim":
            continue
        assert not spec.required, f"{cls.__name__}: option '{spec.name}' needs a default"
        assert spec.type_name != "any", (
            f"{cls.__name__}: option '{spec.name}' needs a type annotation"
        )
    opts = resolved_options(obj)
    if isinstance(obj, Prior):
        opts["dim"] = obj.dim
    from wae_toolkit.options import bind_options

    rebuilt = cls(**bind_options(cls, opts, "plugin", cls.__name__))
    assert resolved_options(rebuilt) == resolved_options(obj), (
        f"{cls.__name__}: rebuilding from the saved options changed them: "
        f"{resolved_options(obj)} -> {resolved_options(rebuilt)}"
    )


def check_cost(cost: Cost, device: str | torch.device = "cpu") -> None:
    """Check a :class:`~wae_toolkit.interfaces.Cost`: shape ``(B,)``, finite, non-negative,
    differentiable in ``x_hat``, dtype and device follow the input, smallest at ``x_hat = x``."""
    assert isinstance(cost, Cost), f"{_name(cost)} must subclass wae_toolkit.interfaces.Cost"
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
    """Check a :class:`~wae_toolkit.interfaces.Prior`: sample and log_prob shapes, device and
    dtype follow ``.to()``, seeded sampling is repeatable, the sample variance matches
    :attr:`variance`, and (for ``dim <= 2``) the density integrates to 1."""
    assert isinstance(prior, Prior), f"{_name(prior)} must subclass wae_toolkit.interfaces.Prior"
    prior = prior.to(device)
    d = prior.dim
    z = prior.sample(n, generator=torch.Generator(device=device).manual_seed(0))
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
    if d <= 2:
        s = math.sqrt(p64.variance)
        center = z.double().mean(0)
        lim = 8 * s + float(center.abs().max())
        k = 401 if d == 1 else 301
        axis = torch.linspace(-lim, lim, k, dtype=torch.float64, device=device)
        grid = axis[:, None] if d == 1 else torch.cartesian_prod(axis, axis)
        mass = p64.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** d
        assert abs(float(mass) - 1) < 1e-2, (
            f"{_name(prior)}: density integrates to {float(mass):.4f}"
        )
    prior.float()
    check_options(prior)


def check_penalty(
    penalty: LatentPenalty, dim: int = 4, device: str | torch.device = "cpu", batch: int = 64
) -> None:
    """Check a :class:`~wae_toolkit.interfaces.LatentPenalty`: a finite scalar, gradients reach
    ``z_q``, dtype and device follow the input, different batch sizes of ``z_q`` and ``z_p`` work,
    seeded calls repeat, adversarial hooks behave, and non-adversarial penalties score a shifted
    code distribution above a matched one."""
    assert isinstance(penalty, LatentPenalty), (
        f"{_name(penalty)} must subclass wae_toolkit.interfaces.LatentPenalty"
    )
    prior = IsotropicGaussian(dim).to(device)
    penalty.bind(prior)
    penalty.to(device)
    name = _name(penalty)
    for dtype in (torch.float32, torch.float64):
        penalty.to(dtype)
        g = torch.Generator().manual_seed(1)
        z_q = (torch.randn(batch, dim, generator=g, dtype=dtype) + 0.5).to(device)
        z_q.requires_grad_(True)
        z_p = torch.randn(batch + 8, dim, generator=g, dtype=dtype).to(device)
        if penalty.adversarial:
            logs = penalty.critic_step(z_q.detach(), z_p)
            assert isinstance(logs, dict), f"{name}.critic_step must return a dict"
            for k, v in logs.items():
                assert isinstance(v, Tensor) and v.dim() == 0, f"{name}: log '{k}' is not a scalar"
                _finite(v, f"{name} critic log '{k}'")
        torch.manual_seed(0)
        value = penalty(z_q, z_p)
        assert isinstance(value, Tensor) and value.dim() == 0, f"{name} must return a scalar"
        assert value.dtype == dtype, f"{name}: value dtype {value.dtype} != input {dtype}"
        assert value.device.type == torch.device(device).type, f"{name}: value on the wrong device"
        _finite(value, f"{name} value")
        value.backward()
        assert z_q.grad is not None and torch.isfinite(z_q.grad).all(), (
            f"{name}: no finite gradient reaches z_q"
        )
        assert z_q.grad.abs().sum() > 0, f"{name}: the gradient with respect to z_q is zero"
        torch.manual_seed(0)
        again = penalty(z_q.detach(), z_p)
        torch.testing.assert_close(
            again, value.detach(), msg=f"{name}: not repeatable under a seed"
        )
    penalty.float()
    if penalty.zero_on_identical:
        z = torch.randn(batch, dim, generator=torch.Generator().manual_seed(2)).to(device)
        same = float(penalty(z, z))
        assert abs(same) < 1e-4, f"{name}: penalty(z, z) must be 0 (zero_on_identical); got {same}"
    if not penalty.adversarial:
        g = torch.Generator().manual_seed(3)
        z_p = torch.randn(256, dim, generator=g).to(device)
        matched = float(penalty(torch.randn(256, dim, generator=g).to(device), z_p))
        shifted = float(penalty(torch.randn(256, dim, generator=g).to(device) + 2.0, z_p))
        assert shifted > matched, (
            f"{name}: a code distribution shifted by 2 scores {shifted:.4g}, not above a matched "
            f"one ({matched:.4g})"
        )
    check_options(penalty)


def check_network(
    network: Network,
    data_shape: tuple[int, ...] = (1, 28, 28),
    latent_dim: int = 8,
    device: str | torch.device = "cpu",
) -> None:
    """Check a :class:`~wae_toolkit.interfaces.Network`: both encoder kinds give the documented
    outputs, the decoder restores ``data_shape`` within its output activation's range, and
    gradients flow from the decoder output to the encoder's parameters."""
    assert isinstance(network, Network), (
        f"{_name(network)} must subclass wae_toolkit.interfaces.Network"
    )
    name = _name(network)
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
