"""Reconstruction costs: squared L2 (the paper's), L1 and binary cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.interfaces import Cost


def _check(x: Tensor, x_hat: Tensor) -> None:
    if x.shape != x_hat.shape:
        raise UsageError(
            f"x and x_hat must have the same shape; got x {tuple(x.shape)} and "
            f"x_hat {tuple(x_hat.shape)}."
        )
    if x.dim() < 1:
        raise UsageError("x must have a batch axis, (B, ...); got a scalar.")


def _check_scale(scale: float) -> float:
    if not scale > 0:
        raise UsageError(f"The cost's scale must be > 0; got {scale}.")
    return float(scale)


class _SummedCost(Cost):
    """``scale * sum_i f(x_i - x_hat_i)`` per sample, for an elementwise ``f``."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = _check_scale(scale)

    def _elementwise(self, diff: Tensor) -> Tensor:
        raise NotImplementedError

    def cost(self, x: Tensor, x_hat: Tensor) -> Tensor:
        _check(x, x_hat)
        return self.scale * self._elementwise(x - x_hat).flatten(1).sum(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale})"


class SquaredL2Cost(_SummedCost):
    """Squared Euclidean cost, scale * ||x - x_hat||^2 summed over each sample.

    The WAE paper uses ``scale=0.05`` on 28x28 and 64x64 images. With ``scale=1`` this is the sum
    of squared errors per sample.

    Args:
        scale: positive factor in front of the sum.
    """

    def _elementwise(self, diff: Tensor) -> Tensor:
        return diff.pow(2)


class L1Cost(_SummedCost):
    """L1 cost, scale * ||x - x_hat||_1 summed over each sample.

    Args:
        scale: positive factor in front of the sum.
    """

    def _elementwise(self, diff: Tensor) -> Tensor:
        return diff.abs()


class BinaryCrossEntropyCost(Cost):
    """Binary cross-entropy for data in [0, 1], summed over each sample.

    ``-sum(x log x_hat + (1 - x) log(1 - x_hat))``; ``x_hat`` is clamped to ``[eps, 1 - eps]`` so
    the cost stays finite. Use it with a decoder that ends in a sigmoid (the toolkit picks one for
    [0, 1] data). The minimum over ``x_hat`` is the entropy of ``x``, which is 0 only for binary
    data.

    Args:
        scale: positive factor in front of the sum.
        eps: clamping margin for ``x_hat``.
    """

    data_range = (0.0, 1.0)

    def __init__(self, scale: float = 1.0, eps: float = 1e-6) -> None:
        self.scale = _check_scale(scale)
        if not 0 < eps < 0.5:
            raise UsageError(f"eps must be in (0, 0.5); got {eps}.")
        self.eps = float(eps)

    def cost(self, x: Tensor, x_hat: Tensor) -> Tensor:
        _check(x, x_hat)
        p = x_hat.clamp(self.eps, 1.0 - self.eps)
        bce = F.binary_cross_entropy(p, x.to(p.dtype), reduction="none")
        return self.scale * bce.flatten(1).sum(1)

    def __repr__(self) -> str:
        return f"BinaryCrossEntropyCost(scale={self.scale})"


__all__ = ["SquaredL2Cost", "L1Cost", "BinaryCrossEntropyCost"]
