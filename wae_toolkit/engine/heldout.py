"""Held-out evaluation that needs no download: reconstruction cost and latent matching.

``test_mmd`` is the IMQ-kernel MMD^2 (the paper's scales, ``C = 2 D sigma^2`` from the prior,
biased V-statistic so it is never negative) between the codes of held-out data and as many prior
samples. ``prior_mmd`` is the same statistic between two independent prior batches of that size:
the floor a perfect encoder would reach at this sample size. A WAE whose ``test_mmd`` is close to
``prior_mmd`` has matched its codes to the prior.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wae_toolkit.assembly.model import WAE
from wae_toolkit.numerics.fused_mmd import fused_mmd2
from wae_toolkit.numerics.kernels import PAPER_IMQ_SCALES
from wae_toolkit.plugins.interfaces import Cost, Prior

__all__ = ["evaluate", "latent_mmd", "prior_mmd_floor", "PAPER_SCALES"]

PAPER_SCALES = PAPER_IMQ_SCALES
#: At most this many held-out codes enter the MMD (its cost is quadratic).
MAX_MMD_SAMPLES = 2000


def latent_mmd(z_q: Tensor, z_p: Tensor, prior: Prior) -> float:
    """Biased IMQ MMD^2 between ``z_q`` and ``z_p`` with the kernel scale taken from ``prior``.

    Computed in float64, blockwise (:func:`~wae_toolkit.numerics.fused_mmd.fused_mmd2`).
    """
    c = 2.0 * prior.dim * prior.variance
    constants = tuple(c * s for s in PAPER_SCALES)
    return float(
        fused_mmd2(z_q.detach().double(), z_p.detach().double(), "imq", constants, "biased")
    )


@torch.no_grad()
def prior_mmd_floor(prior: Prior, n: int, generator: torch.Generator, repeats: int = 5) -> float:
    """Mean :func:`latent_mmd` between pairs of independent prior batches of ``n`` samples."""
    vals = [
        latent_mmd(
            prior.sample(n, generator=generator), prior.sample(n, generator=generator), prior
        )
        for _ in range(repeats)
    ]
    return sum(vals) / len(vals)


@torch.no_grad()
def evaluate(
    model: WAE,
    cost: Cost,
    test: Tensor,
    generator: torch.Generator,
    batch_size: int = 500,
) -> dict[str, float]:
    """Evaluate ``model`` on held-out data ``test`` (already on the model's device).

    Returns:
        ``test_cost`` (mean per-sample cost of reconstructions) and ``test_mmd``.
    """
    was_training = model.training
    model.eval()
    total, codes = 0.0, []
    for i in range(0, len(test), batch_size):
        x = test[i : i + batch_size]
        mean, log_var = model.encode_stats(x)
        total += float(cost(x, model.decode(mean)).sum())
        if log_var is not None:
            noise = torch.randn(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            mean = mean + noise * (0.5 * log_var).exp()
        codes.append(mean)
    z_q = torch.cat(codes)[:MAX_MMD_SAMPLES]
    z_p = model.prior.sample(len(z_q), generator=generator)
    model.train(was_training)
    return {"test_cost": total / len(test), "test_mmd": latent_mmd(z_q, z_p, model.prior)}
