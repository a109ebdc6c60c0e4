"""Priors: the isotropic Gaussian of the paper and a Gaussian mixture."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from wae_toolkit.errors import UsageError
from wae_toolkit.interfaces import Prior

_LOG_2PI = math.log(2 * math.pi)


def _check_z(z: Tensor, dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != dim:
        raise UsageError(f"z must be (B, {dim}) for this prior; got {tuple(z.shape)}.")


class GaussianPrior(Prior):
    """Isotropic Gaussian N(0, std^2 I), the prior of the WAE paper.

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        std: standard deviation of every coordinate.
    """

    def __init__(self, dim: int, std: float = 1.0) -> None:
        super().__init__(dim)
        if not std > 0:
            raise UsageError(f"The Gaussian prior's std must be > 0; got {std}.")
        self.std = float(std)

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
    ``seed``, every component has standard deviation ``std`` and the weights are equal.

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        components: number of components K.
        radius: distance of the default means from the origin.
        std: standard deviation shared by all components (unless ``stds`` is given).
        means: the K * dim means, row after row (``means=0,0,3,3`` for K=2 in 2-D).
        stds: one standard deviation per component.
        weights: one positive weight per component (normalised to sum to 1).
        seed: seed of the default means' directions.
    """

    mu: Tensor
    sigma: Tensor
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
    ) -> None:
        super().__init__(dim)
        if components < 1:
            raise UsageError(f"The mixture needs components >= 1; got {components}.")
        k = int(components)
        self.components, self.radius, self.std, self.seed = k, float(radius), float(std), seed
        if means is None:
            g = torch.Generator().manual_seed(seed)
            directions = torch.randn(k, dim, generator=g, dtype=torch.float64)
            mu = radius * directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            if len(means) != k * dim:
                raise UsageError(
                    f"means must hold components * dim = {k} * {dim} = {k * dim} numbers; "
                    f"got {len(means)}."
                )
            mu = torch.tensor(means, dtype=torch.float64).reshape(k, dim)
        if stds is None:
            if not std > 0:
                raise UsageError(f"std must be > 0; got {std}.")
            s = torch.full((k,), float(std), dtype=torch.float64)
        else:
            if len(stds) != k or min(stds) <= 0:
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
        self.register_buffer("mu", mu.float())
        self.register_buffer("sigma", s.float())
        self.register_buffer("w", w.float())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        idx = torch.multinomial(self.w, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return (self.mu[idx] + self.sigma[idx, None] * eps).to(self.dtype)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_z(z, self.dim)
        d2 = (z[:, None, :] - self.mu[None]).pow(2).sum(-1)  # (B, K)
        log_norm = -0.5 * self.dim * (_LOG_2PI + 2 * self.sigma.log())
        comp = log_norm[None] - 0.5 * d2 / self.sigma.pow(2)[None]
        return torch.logsumexp(comp + self.w.log()[None], dim=1)

    @property
    def variance(self) -> float:
        w = self.w.double()
        mean = (w[:, None] * self.mu.double()).sum(0)
        spread = (w * (self.mu.double() - mean).pow(2).sum(1)).sum() / self.dim
        return float((w * self.sigma.double().pow(2)).sum() + spread)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, components={self.components}"
