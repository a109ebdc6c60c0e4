"""The KL latent penalty: the VAE baseline, with a Gaussian encoder."""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor

from wae_toolkit.errors import UsageError, setting
from wae_toolkit.plugins.interfaces import LatentPenalty, Prior, prior_moments

__all__ = ["KLPenalty"]

_ESTIMATORS = ("closed-form", "sample")
_LOG_2PI = math.log(2 * math.pi)


class KLPenalty(LatentPenalty):
    """Per-sample KL divergence ``KL(Q(Z|x) || P_Z)``, averaged over the batch (the VAE baseline).

    With a Gaussian encoder ``Q(Z|x) = N(mu(x), diag exp(lv(x)))`` (``--encoder gaussian``) and
    the loop's reparameterised draw ``z_q = mu + exp(lv / 2) eps``, the two estimators are

    * ``closed-form``: against ``N(0, s2 I)`` with ``s2`` the prior's per-coordinate variance,

          KL = 0.5 sum_d (exp(lv_d) / s2 + mu_d^2 / s2 - 1 - lv_d + log s2),

      exact for the ``gaussian`` prior (``s2 = std^2``; ``s2 = 1`` before :meth:`bind`); for any
      other prior it is the KL to the isotropic Gaussian of the same variance, not to the prior;
    * ``sample``: the one-sample Monte Carlo estimate ``log q(z_q | x) - log p_Z(z_q)``, with the
      bound prior's ``log_prob``: unbiased for any prior (a mixture, say), noisier.

    Unlike the WAE penalties it pulls *every* ``Q(Z|x)`` towards the prior, not only their
    aggregate ``Q_Z``. With the cost ``bce`` (summed over pixels) and ``lambda = 1`` the objective
    is the negative ELBO of a Bernoulli VAE; with ``l2`` and ``scale = 1 / (2 s^2)`` that of a
    Gaussian decoder of variance ``s^2``.

    The penalty needs the encoder's mean and log-variance (``needs_encoder_stats``), which the
    training loop passes as ``penalty(z_q, z_p, mean=mean, log_var=log_var)``, and no prior
    samples: ``z_p`` is ignored.

    Args:
        estimator: ``closed-form`` (exact, against ``N(0, s2 I)``) or ``sample`` (one-sample Monte
            Carlo with the prior's ``log_prob``, for any prior).
    """

    needs_encoder_stats = True
    needs_prior_samples = False

    def __init__(self, estimator: Literal["closed-form", "sample"] = "closed-form") -> None:
        super().__init__()
        if estimator not in _ESTIMATORS:
            raise UsageError(
                f"{type(self).__name__}: unknown estimator {estimator!r}; "
                f"allowed: {', '.join(_ESTIMATORS)}."
            )
        self.estimator = estimator
        # A plain list, so the prior is not registered as a submodule of the penalty (it is not
        # the penalty's to move, save or train).
        self._prior: list[Prior] = []
        self._prior_variance = 1.0

    def bind(self, prior: Prior) -> None:
        """Keep ``prior`` (for ``sample``) and its variance ``s2`` (for ``closed-form``)."""
        _, self._prior_variance = prior_moments(prior, type(self).__name__)
        self._prior[:] = [prior]

    def forward(
        self,
        z_q: Tensor,
        z_p: Tensor | None = None,
        *,
        mean: Tensor | None = None,
        log_var: Tensor | None = None,
    ) -> Tensor:
        """Batch mean of the per-sample ``KL(N(mean, diag exp(log_var)) || P_Z)``.

        Args:
            z_q: codes drawn from ``N(mean, diag exp(log_var))``, ``(B, D)`` (used by ``sample``).
            z_p: prior samples; ignored.
            mean: the encoder's means, ``(B, D)``.
            log_var: the encoder's log-variances, ``(B, D)``.

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``mean`` and
            ``log_var`` (and ``z_q`` for ``sample``).

        Raises:
            UsageError: without ``mean`` and ``log_var`` (a deterministic encoder), or with
                shapes that do not match ``z_q``'s.
        """
        name = type(self).__name__
        if mean is None or log_var is None:
            raise UsageError(
                f"The kl penalty ({name}) needs the encoder's mean and log-variance: train with "
                f"{setting('encoder', 'gaussian')} and call it as "
                "penalty(z_q, z_p, mean=mean, log_var=log_var)."
            )
        if not all(isinstance(t, Tensor) for t in (z_q, mean, log_var)) or not (
            z_q.ndim == 2 and mean.shape == z_q.shape and log_var.shape == z_q.shape
        ):
            shapes = [
                tuple(t.shape) if isinstance(t, Tensor) else type(t) for t in (z_q, mean, log_var)
            ]
            raise UsageError(
                f"{name}: z_q, mean and log_var must all be (B, D); got z_q {shapes[0]}, "
                f"mean {shapes[1]} and log_var {shapes[2]}."
            )
        if self.estimator == "closed-form":
            s2 = self._prior_variance
            kl = 0.5 * (log_var.exp() / s2 + mean.pow(2) / s2 - 1.0 - log_var + math.log(s2)).sum(1)
        else:
            if not self._prior:
                raise UsageError(
                    f"{name} with estimator='sample' needs the prior's log_prob: call "
                    "bind(prior) first (the training loop does this before training)."
                )
            prior = self._prior[0]
            log_q = -0.5 * ((z_q - mean).pow(2) * (-log_var).exp() + log_var + _LOG_2PI).sum(1)
            log_p = prior.log_prob(z_q.to(prior.dtype)).to(log_q.dtype)
            kl = log_q - log_p
        return kl.mean().to(z_q.dtype)

    def extra_repr(self) -> str:
        return f"estimator={self.estimator!r}"
