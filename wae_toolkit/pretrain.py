"""Encoder pre-training: match the first two moments of the codes to the prior's.

The WAE reference code starts by training the encoder alone so that the mean and covariance of
Q_Z match those of P_Z; the main loop then starts from codes already spread like the prior, which
helps the adversarial penalties most. The loss on a batch of codes ``z_q`` ``(B, D)`` is

    ||mean(z_q) - mu_P||^2 + ||Cov(z_q) - Sigma_P||_F^2

with ``mu_P``, ``Sigma_P`` estimated once from a large prior sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wae_toolkit.model import WAE, adam

__all__ = ["moment_loss", "pretrain_encoder", "PRIOR_MOMENT_SAMPLES"]

#: Prior samples used to estimate the prior's mean and covariance.
PRIOR_MOMENT_SAMPLES = 20_000


def _cov(z: Tensor, mean: Tensor) -> Tensor:
    c = z - mean
    return c.T @ c / max(len(z) - 1, 1)


def moment_loss(z_q: Tensor, mu_p: Tensor, cov_p: Tensor) -> Tensor:
    """``||mean(z_q) - mu_p||^2 + ||Cov(z_q) - cov_p||_F^2`` for codes ``(B, D)``."""
    mean = z_q.mean(0)
    return (mean - mu_p).pow(2).sum() + (_cov(z_q, mean) - cov_p).pow(2).sum()


def pretrain_encoder(
    model: WAE,
    train_x: Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    betas: tuple[float, float],
) -> Tensor:
    """Run ``steps`` Adam steps on the encoder alone; returns the losses ``(steps,)`` on device."""
    with torch.no_grad():
        z_p = model.prior.sample(PRIOR_MOMENT_SAMPLES)
        mu_p = z_p.mean(0)
        cov_p = _cov(z_p, mu_p)
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    opt = adam(params, lr, betas)
    losses = torch.empty(steps, device=train_x.device)
    model.train()
    n = len(train_x)
    for step in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), device=train_x.device)
        loss = moment_loss(model.encode(train_x[idx]), mu_p, cov_p)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
    return losses
