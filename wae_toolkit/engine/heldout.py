"""Held-out evaluation that needs no download: reconstruction cost and latent matching.

``test_mmd`` is the IMQ-kernel MMD^2 (the paper's scales, ``C = 2 D sigma^2`` from the prior,
biased V-statistic so it is never negative) between the codes of held-out data and as many prior
samples. ``prior_mmd`` is the same statistic between two independent prior batches of that size:
the floor a perfect encoder would reach at this sample size. A WAE whose ``test_mmd`` is close to
``prior_mmd`` has matched its codes to the prior. Given the run's penalty, the evaluation adds
``test_penalty`` (that penalty between the same held-out codes and prior samples) and
``test_objective`` (``test_cost + lambda * test_penalty``, the training objective on held-out
data), which pick the best weights and drive early stopping.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wae_toolkit.assembly.model import WAE
from wae_toolkit.numerics.fused_mmd import fused_mmd2
from wae_toolkit.numerics.kernels import PAPER_IMQ_SCALES
from wae_toolkit.plugins.interfaces import Cost, LatentPenalty, Prior

__all__ = ["evaluate", "held_out_penalty", "latent_mmd", "prior_mmd_floor", "PAPER_SCALES"]

PAPER_SCALES = PAPER_IMQ_SCALES
#: At most this many held-out codes enter the MMD (its cost is quadratic).
MAX_MMD_SAMPLES = 2000


def latent_mmd(z_q: Tensor, z_p: Tensor, prior: Prior) -> float:
    """Biased IMQ MMD^2 between ``z_q`` and ``z_p`` with the kernel scale taken from ``prior``.

    Computed in float64, blockwise (:func:`~wae_toolkit.numerics.fused_mmd.fused_mmd2`); on
    Apple's MPS, which has no float64, on the CPU.
    """
    if z_q.device.type == "mps":
        z_q, z_p = z_q.cpu(), z_p.cpu()
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
    penalty: LatentPenalty | None = None,
    lam: float = 0.0,
) -> dict[str, float]:
    """Evaluate ``model`` on held-out data ``test`` (already on the model's device).

    Returns:
        ``test_cost`` (mean per-sample cost of reconstructions) and ``test_mmd``; with
        ``penalty``, also ``test_penalty`` and ``test_objective`` (``test_cost + lam *
        test_penalty``).
    """
    was_training = model.training
    model.eval()
    total, codes, means, log_vars = 0.0, [], [], []
    for i in range(0, len(test), batch_size):
        x = test[i : i + batch_size]
        mean, log_var = model.encode_stats(x)
        total += float(cost(x, model.decode(mean)).sum())
        means.append(mean)
        if log_var is not None:
            log_vars.append(log_var)
            noise = torch.randn(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            mean = mean + noise * (0.5 * log_var).exp()
        codes.append(mean)
    z_q = torch.cat(codes)[:MAX_MMD_SAMPLES]
    z_p = model.prior.sample(len(z_q), generator=generator)
    model.train(was_training)
    res = {"test_cost": total / len(test), "test_mmd": latent_mmd(z_q, z_p, model.prior)}
    if penalty is not None:
        log_var_q = torch.cat(log_vars)[: len(z_q)] if log_vars else None
        res["test_penalty"] = held_out_penalty(
            penalty, z_q, z_p, torch.cat(means)[: len(z_q)], log_var_q
        )
        res["test_objective"] = res["test_cost"] + lam * res["test_penalty"]
    return res


def held_out_penalty(
    penalty: LatentPenalty, z_q: Tensor, z_p: Tensor, mean: Tensor, log_var: Tensor | None
) -> float:
    """The run's penalty between held-out codes and prior samples, leaving the random state of
    training as it was (some penalties draw, e.g. the sliced distance's directions)."""
    devices = [z_q.device] if z_q.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if penalty.needs_encoder_stats:
            value = penalty(z_q, z_p, mean=mean, log_var=log_var)
        else:
            value = penalty(z_q, z_p)
    return float(value)
