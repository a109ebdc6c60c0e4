"""The Fréchet distance between Gaussians fitted to two feature sets (the math behind FID).

For features ``f1`` ``(n, K)`` and ``f2`` ``(m, K)`` with means ``mu1, mu2`` and covariances
``S1, S2`` (unbiased, divided by ``n - 1``), the squared 2-Wasserstein distance between
``N(mu1, S1)`` and ``N(mu2, S2)`` is

    FD = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2})

``S1 S2`` is not symmetric, but it is similar to the symmetric PSD matrix
``A = S1^{1/2} S2 S1^{1/2}``, so ``Tr((S1 S2)^{1/2}) = sum_k sqrt(lambda_k(A))``. We take
``S1^{1/2}`` and the eigenvalues of ``A`` from symmetric eigen-decompositions in float64, clamping
the tiny negative eigenvalues that rounding leaves, so singular covariances (fewer samples than
features) need no ``eps`` on the diagonal and the result never has an imaginary part. The unit is
the square of the feature unit. FD is 0 only for equal Gaussians; finite samples of one
distribution score above 0 (a bias that shrinks like ``1/n``), so read it against a floor
computed from two real samples of the same size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wae_toolkit.errors import UsageError

__all__ = ["gaussian_stats", "sqrtm_psd", "trace_sqrt_product", "frechet_from_stats", "frechet"]

ArrayLike = Tensor | np.ndarray


def _as_float64(a: ArrayLike) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().to("cpu", torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


def gaussian_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(K,)`` and unbiased covariance ``(K, K)`` of ``features`` ``(n, K)``, n >= 2."""
    f = _as_float64(features)
    if f.ndim != 2 or len(f) < 2:
        raise UsageError(
            f"Gaussian statistics need features of shape (n, K) with n >= 2; got {f.shape}."
        )
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def sqrtm_psd(s: ArrayLike) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix, by eigen-decomposition.

    ``S = V diag(w) V^T`` -> ``S^{1/2} = V diag(sqrt(max(w, 0))) V^T`` (symmetrised first).
    """
    a = _as_float64(s)
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # type: ignore[no-any-return]


def trace_sqrt_product(s1: ArrayLike, s2: ArrayLike) -> float:
    """``Tr((S1 S2)^{1/2})`` for symmetric PSD ``S1, S2`` via ``S1^{1/2} S2 S1^{1/2}``."""
    r = sqrtm_psd(s1)
    a = r @ _as_float64(s2) @ r
    eig = np.linalg.eigvalsh((a + a.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_from_stats(mu1: ArrayLike, s1: ArrayLike, mu2: ArrayLike, s2: ArrayLike) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})``, clamped at 0 against rounding.

    Args:
        mu1, mu2: means ``(K,)``; s1, s2: covariances ``(K, K)``.
    """
    m1, m2 = _as_float64(mu1), _as_float64(mu2)
    c1, c2 = np.atleast_2d(_as_float64(s1)), np.atleast_2d(_as_float64(s2))
    k = m1.shape[0]
    if m1.shape != (k,) or m2.shape != (k,) or c1.shape != (k, k) or c2.shape != (k, k):
        raise UsageError(
            "The Fréchet distance needs means (K,) and covariances (K, K) of one K; got "
            f"{m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}."
        )
    diff = m1 - m2
    value = diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * trace_sqrt_product(c1, c2)
    return max(float(value), 0.0)


def frechet(features1: ArrayLike, features2: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to ``features1`` ``(n, K)`` and
    ``features2`` ``(m, K)``."""
    return frechet_from_stats(*gaussian_stats(features1), *gaussian_stats(features2))
