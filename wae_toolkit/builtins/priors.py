"""Priors: the isotropic Gaussian of the paper, a Gaussian mixture, the sphere and the box.

The mixture's ``placement="spread"`` puts its means with
:func:`~wae_toolkit.builtins.spread.spread_means` (also importable from here).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from wae_toolkit.builtins.spread import _positive, _random_directions, spread_means
from wae_toolkit.errors import UsageError
from wae_toolkit.limits import MAX_SEED
from wae_toolkit.plugins.interfaces import Prior

__all__ = [
    "GaussianPrior",
    "GaussianMixturePrior",
    "SpherePrior",
    "UniformBoxPrior",
    "spread_means",
]

_LOG_2PI = math.log(2 * math.pi)


def _check_z(z: Tensor, dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != dim:
        raise UsageError(f"z must be (B, {dim}) for this prior; got {tuple(z.shape)}.")


#: torch.multinomial draws from at most 2^24 categories.
_MAX_COMPONENTS = 2**24


# ---------------------------------------------------------------------------------------------
# Placing points on a sphere.


class GaussianPrior(Prior):
    """Isotropic Gaussian N(0, std^2 I), the prior of the WAE paper.

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        std: standard deviation of every coordinate.
    """

    def __init__(self, dim: int, std: float = 1.0) -> None:
        super().__init__(dim)
        self.std = _positive(std, "The Gaussian prior's std")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return eps * self.std

    def log_prob(self, z: Tensor) -> Tensor:
        _check_z(z, self.dim)
        return -0.5 * (
            (z / self.std).pow(2).sum(1) + self.dim * (_LOG_2PI + 2 * math.log(self.std))
        )

    @property
    def variance(self) -> float:
        return self.std**2

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}"


class GaussianMixturePrior(Prior):
    """Mixture of K isotropic Gaussians: sum_k w_k N(mu_k, s_k^2 I).

    By default the K means lie on a sphere of radius ``radius`` in random directions drawn from
    ``seed`` (``placement="random"``), or as far apart as possible on that sphere
    (``placement="spread"``, see :func:`spread_means`); every component has standard deviation
    ``std`` and the weights are equal.

    With ``learnable=True`` the means ``mu`` ``(K, D)`` and the per-component log standard
    deviations ``log_sigma`` ``(K,)`` are ``nn.Parameter`` s, trained with the model; the
    weights stay fixed. Sampling is reparameterised, ``z = mu[k] + exp(log_sigma[k]) eps`` with
    ``k ~ w`` and ``eps ~ N(0, I)``, so gradients of a penalty on the samples reach both.
    Otherwise they are buffers ``mu`` and ``sigma`` (standard deviations).

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        components: number of components K.
        radius: distance of the default means from the origin.
        std: standard deviation shared by all components (unless ``stds`` is given).
        means: the K * dim means, row after row (``means=0,0,3,3`` for K=2 in 2-D).
        stds: one standard deviation per component.
        weights: one positive weight per component (normalised to sum to 1).
        seed: seed of the default means' directions.
        learnable: train the means and per-component scales with the model.
        placement: default means in random directions, or spread to maximise their smallest
            pairwise distance (exact for components <= dim + 1: a regular simplex).
    """

    mu: Tensor
    sigma: Tensor
    log_sigma: Tensor
    w: Tensor

    def __init__(
        self,
        dim: int,
        components: int = 10,
        radius: float = 2.0,
        std: float = 0.5,
        means: tuple[float, ...] | None = None,
        stds: tuple[float, ...] | None = None,
        weights: tuple[float, ...] | None = None,
        seed: int = 0,
        learnable: bool = False,
        placement: Literal["random", "spread"] = "random",
    ) -> None:
        super().__init__(dim)
        if not 1 <= components <= _MAX_COMPONENTS:
            raise UsageError(
                f"The mixture needs components between 1 and {_MAX_COMPONENTS:,}; got {components}."
            )
        if not math.isfinite(radius):
            raise UsageError(f"radius must be a finite number; got {radius!r}.")
        if placement not in ("random", "spread"):
            raise UsageError(f"placement must be 'random' or 'spread'; got {placement!r}.")
        if not 0 <= seed <= MAX_SEED:
            raise UsageError(f"seed must be an integer from 0 to 2^63 - 1; got {seed}.")
        k = int(components)
        self.components, self.radius, self.std, self.seed = k, float(radius), float(std), seed
        self.learnable, self.placement = bool(learnable), placement
        if means is None:
            if placement == "spread":
                mu = spread_means(k, dim, self.radius, seed)
            else:
                mu = self.radius * _random_directions(k, dim, seed)
        else:
            if placement == "spread":
                raise UsageError(
                    "placement='spread' places the default means; it cannot be combined with "
                    "explicit means. Drop one of the two options."
                )
            if len(means) != k * dim:
                raise UsageError(
                    f"means must hold components * dim = {k} * {dim} = {k * dim} numbers; "
                    f"got {len(means)}."
                )
            mu = torch.tensor(means, dtype=torch.float64).reshape(k, dim)
        if stds is None:
            s = torch.full((k,), _positive(std, "std"), dtype=torch.float64)
        else:
            if len(stds) != k or not all(math.isfinite(v) and v > 0 for v in stds):
                raise UsageError(
                    f"stds must be {k} positive numbers, one per component; got {stds}."
                )
            s = torch.tensor(stds, dtype=torch.float64)
        if weights is None:
            w = torch.full((k,), 1.0 / k, dtype=torch.float64)
        else:
            if len(weights) != k or min(weights) <= 0:
                raise UsageError(
                    f"weights must be {k} positive numbers, one per component; got {weights}."
                )
            w = torch.tensor(weights, dtype=torch.float64)
            w = w / w.sum()
        self.means: tuple[float, ...] | None = None if means is None else tuple(means)
        self.stds: tuple[float, ...] | None = None if stds is None else tuple(stds)
        self.weights: tuple[float, ...] | None = None if weights is None else tuple(weights)
        if self.learnable:
            self.mu = nn.Parameter(mu.float())
            self.log_sigma = nn.Parameter(s.log().float())
        else:
            self.register_buffer("mu", mu.float())
            self.register_buffer("sigma", s.float())
        self.register_buffer("w", w.float())

    @property
    def component_stds(self) -> Tensor:
        """The K standard deviations ``(K,)``; differentiable when ``learnable``."""
        return self.log_sigma.exp() if self.learnable else self.sigma

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        idx = torch.multinomial(self.w, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return (self.mu[idx] + self.component_stds[idx, None] * eps).to(self.dtype)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_z(z, self.dim)
        sigma = self.component_stds
        d2 = (z[:, None, :] - self.mu[None]).pow(2).sum(-1)  # (B, K)
        log_norm = -0.5 * self.dim * (_LOG_2PI + 2 * sigma.log())
        comp = log_norm[None] - 0.5 * d2 / sigma.pow(2)[None]
        return torch.logsumexp(comp + self.w.log()[None], dim=1)

    @property
    def variance(self) -> float:
        w, mu = self.w.double(), self.mu.detach().double()
        mean = (w[:, None] * mu).sum(0)
        spread = (w * (mu - mean).pow(2).sum(1)).sum() / self.dim
        return float((w * self.component_stds.detach().double().pow(2)).sum() + spread)

    def extra_repr(self) -> str:
        learnable = ", learnable=True" if self.learnable else ""
        return f"dim={self.dim}, components={self.components}{learnable}"


class SpherePrior(Prior):
    """Uniform distribution on the sphere of radius ``radius`` in R^D.

    Samples are normalised Gaussians, ``z = r e / ||e||`` with ``e ~ N(0, I_D)``; by symmetry
    every coordinate has mean 0 and variance ``r^2 / D``, so :attr:`variance` is ``r^2 / D``.

    The sphere has Lebesgue measure zero in ``R^D``, so the prior has no density there
    (``has_density = False``). :meth:`log_prob` is the log-density with respect to the surface
    measure of the sphere, the uniform value

        ``log p(z) = -log |S_r| = -log(2 pi^(D/2) r^(D-1) / Gamma(D/2))``

    for ``z`` on the sphere, taken as ``| ||z|| - r | <= tol r`` with
    ``tol = max(1e-4, 10 eps)`` (``eps`` of ``z``'s dtype), and ``-inf`` elsewhere. In ``D = 1``
    the sphere is the two points ``-r`` and ``r``, the surface measure counts points, and
    ``log p = -log 2``.

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        radius: radius r of the sphere.
    """

    has_density = False

    def __init__(self, dim: int, radius: float = 1.0) -> None:
        super().__init__(dim)
        self.radius = _positive(radius, "The sphere prior's radius")

    @property
    def log_surface_area(self) -> float:
        """``log |S_r|``, the log of the surface area ``2 pi^(D/2) r^(D-1) / Gamma(D/2)``."""
        d = self.dim
        return (
            math.log(2.0)
            + 0.5 * d * math.log(math.pi)
            + (d - 1) * math.log(self.radius)
            - math.lgamma(0.5 * d)
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.radius * eps / eps.norm(dim=1, keepdim=True).clamp_min(1e-30)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_z(z, self.dim)
        tol = max(1e-4, 10 * torch.finfo(z.dtype).eps)
        on = (z.norm(dim=1) - self.radius).abs() <= tol * self.radius
        inside = torch.full_like(on, -self.log_surface_area, dtype=z.dtype)
        return torch.where(on, inside, torch.full_like(inside, -math.inf))

    @property
    def variance(self) -> float:
        return self.radius**2 / self.dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}, radius={self.radius}"


class UniformBoxPrior(Prior):
    """Uniform distribution on the box [-h, h]^D, h = ``half_width``.

    Coordinates are independent and uniform on ``[-h, h]``: the density is
    ``p(z) = (2h)^(-D)`` inside the closed box and 0 outside, so :meth:`log_prob` is
    ``-D log(2h)`` or ``-inf``, and every coordinate has variance ``h^2 / 3``. The default
    ``h = 1`` is the usual ``U(-1, 1)`` latent; ``half_width=1.7320508`` (``sqrt(3)``) gives
    variance 1, the scale of ``N(0, I)``.

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        half_width: half the side of the box, h.
    """

    def __init__(self, dim: int, half_width: float = 1.0) -> None:
        super().__init__(dim)
        self.half_width = _positive(half_width, "The uniform prior's half_width")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * self.half_width

    def log_prob(self, z: Tensor) -> Tensor:
        _check_z(z, self.dim)
        inside = (z.abs() <= self.half_width).all(dim=1)
        value = -self.dim * math.log(2 * self.half_width)
        out = torch.full(inside.shape, value, dtype=z.dtype, device=z.device)
        return out.masked_fill(~inside, -math.inf)

    @property
    def variance(self) -> float:
        return self.half_width**2 / 3

    def extra_repr(self) -> str:
        return f"dim={self.dim}, half_width={self.half_width}"
