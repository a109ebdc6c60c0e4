"""MMD latent penalties (WAE-MMD): inverse multiquadratic and Gaussian kernels.

Both penalties are thin wrappers around :func:`wae_toolkit.numerics.fused_mmd.fused_mmd2`, which
computes the estimate and its gradient in one blockwise pass (the same numbers as
:func:`wae_toolkit.numerics.kernels.mmd2`, in memory ``O(block^2)``); the kernel constant defaults
to ``C = 2 D sigma^2``, the expected squared distance between two prior samples, so a prior of
another dimension or scale needs no retuning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.fused_mmd import DEFAULT_BLOCK, fused_mmd2
from wae_toolkit.numerics.kernels import ESTIMATORS, PAPER_IMQ_SCALES
from wae_toolkit.plugins.interfaces import LatentPenalty, Prior, prior_moments

__all__ = ["IMQMMDPenalty", "RBFMMDPenalty"]


class _MMDPenalty(LatentPenalty):
    """Shared machinery: option checks, the kernel constant, and the call to ``fused_mmd2``."""

    _kernel_name: str

    def _setup(
        self,
        scales: Sequence[float] | float,
        bandwidth: float | None,
        estimator: str,
        block: int,
        compiled: bool,
    ) -> None:
        if isinstance(scales, int | float):
            scales = (scales,)
        try:
            scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise UsageError(
                f"{type(self).__name__}: scales must be positive numbers; got {scales!r}."
            ) from None
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            raise UsageError(
                f"{type(self).__name__}: scales must be a non-empty list of positive numbers; "
                f"got {scales!r}."
            )
        if bandwidth is not None:
            if isinstance(bandwidth, bool) or not isinstance(bandwidth, int | float):
                raise UsageError(
                    f"{type(self).__name__}: bandwidth must be a positive number or None; "
                    f"got {bandwidth!r}."
                )
            bandwidth = float(bandwidth)
            if not (math.isfinite(bandwidth) and bandwidth > 0):
                raise UsageError(
                    f"{type(self).__name__}: bandwidth must be a positive number or None; "
                    f"got {bandwidth!r}."
                )
        if estimator not in ESTIMATORS:
            raise UsageError(
                f"{type(self).__name__}: unknown estimator {estimator!r}; "
                f"allowed: {', '.join(ESTIMATORS)}."
            )
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise UsageError(
                f"{type(self).__name__}: block must be a positive integer; got {block!r}."
            )
        self.scales: tuple[float, ...] = scales
        self.block = block
        self.bandwidth: float | None = bandwidth
        self.estimator: str = estimator
        self.compiled = bool(compiled)
        # penalty(z, z) is exactly 0 for the U-statistic (equal batch sizes) and the V-statistic,
        # not for "paper", whose cross term keeps its i = j pairs.
        self.zero_on_identical = estimator in ("unbiased", "biased")
        self._prior_dim: int | None = None
        self._prior_variance: float | None = None

    def bind(self, prior: Prior) -> None:
        """Take ``D`` and ``sigma^2`` from ``prior`` for the default ``C = 2 D sigma^2``."""
        self._prior_dim, self._prior_variance = prior_moments(prior, type(self).__name__)

    def constant(self, dim: int | None = None) -> float:
        """The base kernel constant ``C`` (before the scales multiply it).

        ``bandwidth`` when it is set; otherwise ``2 D sigma^2`` with the bound prior's ``D`` and
        ``sigma^2``, or, before :meth:`bind`, ``D = dim`` and ``sigma^2 = 1``.
        """
        if self.bandwidth is not None:
            return self.bandwidth
        if self._prior_dim is not None and self._prior_variance is not None:
            return 2.0 * self._prior_dim * self._prior_variance
        if dim is None:
            raise UsageError(
                f"{type(self).__name__}: the kernel constant needs the latent dimension; "
                "call bind(prior) or pass dim."
            )
        return 2.0 * dim

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        """MMD^2 estimate between codes ``z_q`` ``(B, D)`` and prior samples ``z_p`` ``(N, D)``.

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``z_q``.
        """
        if (
            self._prior_dim is not None
            and isinstance(z_q, Tensor)
            and z_q.ndim == 2
            and z_q.shape[1] != self._prior_dim
        ):
            raise UsageError(
                f"{type(self).__name__} was bound to a prior of dimension {self._prior_dim}, "
                f"but z_q has shape {tuple(z_q.shape)}."
            )
        dim = z_q.shape[-1] if isinstance(z_q, Tensor) and z_q.ndim >= 1 else None
        c = self.constant(dim)
        constants = tuple(c * s for s in self.scales)
        return fused_mmd2(
            z_q, z_p, self._kernel_name, constants, self.estimator, self.block, self.compiled
        )

    def extra_repr(self) -> str:
        bw = "2*D*sigma^2" if self.bandwidth is None else f"{self.bandwidth:g}"
        scales = ", ".join(f"{s:g}" for s in self.scales)
        return f"kernel={self._kernel_name}, scales=({scales}), bandwidth={bw}, " + (
            f"estimator={self.estimator!r}"
        )


class IMQMMDPenalty(_MMDPenalty):
    """MMD with the multi-scale inverse multiquadratic kernel (WAE-MMD, the paper's choice).

    ``D_Z = MMD^2(Q_Z, P_Z) = E k(z, z') + E k(y, y') - 2 E k(z, y)`` with ``z, z' ~ Q_Z`` (codes)
    and ``y, y' ~ P_Z`` (prior samples), and the kernel

        k(a, b) = sum_s  C s / (C s + ||a - b||^2),    C = 2 D sigma^2 by default,

    where ``D`` is the latent dimension and ``sigma^2`` the prior's per-coordinate variance: ``C``
    is the expected squared distance between two prior samples. The heavy tails of the IMQ kernel
    keep gradients alive for codes far from the prior. With 7 scales the kernel is at most 7, so
    the penalty's size grows with the number of scales; retune ``lambda`` when you change them
    (the paper: lambda = 10 on MNIST, 100 on CelebA).

    The ``"paper"`` and ``"unbiased"`` estimators have expectation ``MMD^2``, which is 0 when the
    codes match the prior: a single batch scatters around that value, and about half of the
    batches come out negative (standard deviation about 0.01 for batches of 100 in D = 8 with
    the default scales). Negative values mean "indistinguishable from the prior at this batch
    size", not a bug. ``"biased"`` is always ``>= 0`` but overestimates by ``O(1/B)`` (about 0.07
    for batches of 100).

    Args:
        scales: multipliers ``s`` of ``C``; the kernel sums one IMQ term per scale. Default: the
            paper's 0.1, 0.2, 0.5, 1, 2, 5, 10.
        bandwidth: the base constant ``C`` in squared code units; ``None`` (default) uses
            ``2 * D * sigma^2`` from the prior (``sigma^2 = 1`` before the prior is bound).
        estimator: ``paper`` (the WAE reference code: unbiased within-sample terms, all pairs in
            the cross term), ``unbiased`` (U-statistic) or ``biased`` (V-statistic, always >= 0).
        block: rows and columns of the blocks the kernel sums are computed in; memory is
            about ``4 block^2`` numbers whatever the batch size (batches with ``2 B <= block`` use
            one stacked matrix). The default 512 keeps blocks in a CPU's cache.
        compiled: fuse each block's kernel terms with ``torch.compile``: after a compilation of
            10-20 s at the first call, 1.4-1.6x faster (docs/performance.md); worth it for long
            runs.
    """

    _kernel_name = "imq"

    def __init__(
        self,
        scales: tuple[float, ...] = PAPER_IMQ_SCALES,
        bandwidth: float | None = None,
        estimator: Literal["paper", "unbiased", "biased"] = "paper",
        block: int = DEFAULT_BLOCK,
        compiled: bool = False,
    ) -> None:
        super().__init__()
        self._setup(scales, bandwidth, estimator, block, compiled)


class RBFMMDPenalty(_MMDPenalty):
    """MMD with a (multi-scale) Gaussian RBF kernel.

    ``D_Z = MMD^2(Q_Z, P_Z)`` as for ``mmd-imq``, with the kernel

        k(a, b) = sum_s exp(-||a - b||^2 / (C s)),    C = 2 D sigma^2 by default.

    With the default single scale 1, two typical prior samples (``||a - b||^2 ~ C``) have kernel
    value ``exp(-1)``. The Gaussian kernel's light tails give almost no gradient to codes much
    farther than ``sqrt(C s)`` from every prior sample, which is why the WAE paper prefers IMQ. The
    paper's reference code sets the RBF width by the median heuristic,
    ``exp(-||a - b||^2 / (2 (med_p + med_q)))`` with ``med`` the median squared distance within
    each batch; when the codes match the prior that is ``C = 8 D sigma^2``, i.e. ``scales=4``.

    The ``"paper"`` and ``"unbiased"`` estimators are unbiased for ``MMD^2`` (0 when the codes
    match the prior), so single batches are often slightly negative; ``"biased"`` is ``>= 0``.

    Args:
        scales: multipliers ``s`` of ``C``; the kernel sums one Gaussian per scale. Default: 1.
        bandwidth: the base constant ``C`` in squared code units; ``None`` (default) uses
            ``2 * D * sigma^2`` from the prior (``sigma^2 = 1`` before the prior is bound).
        estimator: ``paper`` (the WAE reference code: unbiased within-sample terms, all pairs in
            the cross term), ``unbiased`` (U-statistic) or ``biased`` (V-statistic, always >= 0).
        block: rows and columns of the blocks the kernel sums are computed in; memory is
            about ``4 block^2`` numbers whatever the batch size (batches with ``2 B <= block`` use
            one stacked matrix). The default 512 keeps blocks in a CPU's cache.
        compiled: fuse each block's kernel terms with ``torch.compile``: after a compilation of
            10-20 s at the first call, 1.4-1.6x faster (docs/performance.md); worth it for long
            runs.
    """

    _kernel_name = "rbf"

    def __init__(
        self,
        scales: tuple[float, ...] = (1.0,),
        bandwidth: float | None = None,
        estimator: Literal["paper", "unbiased", "biased"] = "paper",
        block: int = DEFAULT_BLOCK,
        compiled: bool = False,
    ) -> None:
        super().__init__()
        self._setup(scales, bandwidth, estimator, block, compiled)
