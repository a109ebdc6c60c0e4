"""Encoder pre-training: match the first two moments of the codes to the prior's.

The WAE reference code starts by training the encoder alone so that the mean and covariance of
Q_Z match those of P_Z; the main loop then starts from codes already spread like the prior, which
helps the adversarial penalties most. The loss on a batch of codes ``z_q`` ``(B, D)`` is

    ||mean(z_q) - mu_P||^2 + ||Cov(z_q) - Sigma_P||_F^2

with ``mu_P``, ``Sigma_P`` estimated once from a large prior sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.assembly.model import WAE, adam

__all__ = ["moment_loss", "pretrain_encoder", "EncoderPretraining", "PRIOR_MOMENT_SAMPLES"]

#: Prior samples used to estimate the prior's mean and covariance.
PRIOR_MOMENT_SAMPLES = 20_000


def _cov(z: Tensor, mean: Tensor) -> Tensor:
    c = z - mean
    return c.T @ c / max(len(z) - 1, 1)


def moment_loss(z_q: Tensor, mu_p: Tensor, cov_p: Tensor) -> Tensor:
    """``||mean(z_q) - mu_p||^2 + ||Cov(z_q) - cov_p||_F^2`` for codes ``(B, D)``."""
    mean = z_q.mean(0)
    return (mean - mu_p).pow(2).sum() + (_cov(z_q, mean) - cov_p).pow(2).sum()


class EncoderPretraining:
    """Encoder pre-training as a resumable object: ``run`` takes steps until done or stopped.

    Its state is the encoder's weights (in the model), the optimizer :attr:`opt`, the prior's
    moments :attr:`mu_p` and :attr:`cov_p` (estimated once, from the global random generator),
    the number of steps :attr:`done` and the losses of the current logging chunk
    :attr:`pending`; :meth:`state` and :meth:`restore` turn the non-module part into checkpoint
    values.
    """

    def __init__(
        self,
        model: WAE,
        train_x: Tensor,
        steps: int,
        batch_size: int,
        lr: float,
        betas: tuple[float, float],
    ) -> None:
        self.model, self.train_x, self.steps = model, train_x, steps
        self.batch = min(batch_size, len(train_x))
        with torch.no_grad():
            z_p = model.prior.sample(PRIOR_MOMENT_SAMPLES)
            self.mu_p = z_p.mean(0)
            self.cov_p = _cov(z_p, self.mu_p)
        self.opt = adam([p for p in model.encoder.parameters() if p.requires_grad], lr, betas)
        self.done = 0
        self.pending: list[Tensor] = []

    @property
    def finished(self) -> bool:
        return self.done >= self.steps

    def state(self) -> dict[str, Any]:
        pending = torch.stack(self.pending) if self.pending else torch.zeros(0)
        return {"done": self.done, "mu_p": self.mu_p, "cov_p": self.cov_p, "pending": pending}

    def restore(self, state: dict[str, Any]) -> None:
        device = self.mu_p.device
        self.done = int(state["done"])
        self.mu_p = state["mu_p"].to(device)
        self.cov_p = state["cov_p"].to(device)
        self.pending = list(state["pending"].to(device).unbind(0))

    def run(
        self,
        log: Callable[[int, float], None],
        every: int,
        should_stop: Callable[[bool], bool],
    ) -> bool:
        """Take steps until all are done (returns True) or ``should_stop(at_log)`` is true after
        a step (returns False). ``log(step, mean loss)`` gets the mean of every ``every`` steps
        (and of the last, shorter chunk)."""
        self.model.train()
        n = len(self.train_x)
        device = self.train_x.device
        while self.done < self.steps:
            idx = torch.randint(0, n, (self.batch,), device=device)
            loss = moment_loss(self.model.encode(self.train_x[idx]), self.mu_p, self.cov_p)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.done += 1
            self.pending.append(loss.detach())
            at_log = len(self.pending) == every or self.finished
            if at_log:
                log(self.done, float(torch.stack(self.pending).mean()))
                self.pending = []
            if not self.finished and should_stop(at_log):
                return False
        return True


def pretrain_encoder(
    model: WAE,
    train_x: Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    betas: tuple[float, float],
) -> Tensor:
    """Run ``steps`` Adam steps on the encoder alone; returns the losses ``(steps,)``."""
    losses: list[float] = []
    pre = EncoderPretraining(model, train_x, steps, batch_size, lr, betas)
    pre.run(lambda step, loss: losses.append(loss), 1, lambda at_log: False)
    return torch.tensor(losses, device=train_x.device)
