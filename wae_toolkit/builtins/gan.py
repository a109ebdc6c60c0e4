"""The WAE-GAN latent penalty: a discriminator in latent space estimates the JS divergence."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wae_toolkit.builtins._critic import MLPCriticPenalty
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.interfaces import Prior

__all__ = ["JSGANPenalty"]


class JSGANPenalty(MLPCriticPenalty):
    """Adversarial Jensen-Shannon penalty (WAE-GAN): a latent discriminator tells codes from prior.

    A discriminator ``D: R^D -> R`` (an MLP returning one logit, ``sigmoid(D(z))`` being the
    probability that ``z`` is a prior sample) is trained by :meth:`critic_step` to minimise

        L_D = E_{z_p} softplus(-D(z_p)) + E_{z_q} softplus(D(z_q))
            = -E log sigmoid(D(z_p)) - E log(1 - sigmoid(D(z_q))),

    i.e. to ascend ``log D(z_p) + log(1 - D(z_q))``; at its optimum
    ``L_D = log 4 - 2 JS(Q_Z, P_Z)``. The encoder's loss returned by ``forward`` is the
    non-saturating ``E_{z_q} softplus(-D(z_q)) = -E log sigmoid(D(z_q))``. Everything is computed
    on logits with ``softplus``, so a saturated discriminator gives large but finite losses, never
    NaN or inf.

    The discriminator has ``layers`` fully connected hidden layers of ``hidden`` units with ReLU
    and a final linear layer to one logit (the paper: 4 x 512 on MNIST, 4 x 1024 on CelebA). It is
    built for the prior's dimension in :meth:`bind` (or for the codes' dimension on first use) and
    has its own Adam optimizer, created on the first :meth:`critic_step`, after the penalty was
    moved to its device. The model's optimizer never sees these parameters, and ``forward`` uses
    detached copies of them, so the model's backward pass leaves the discriminator untouched.

    Args:
        hidden: units per hidden layer of the discriminator.
        layers: number of fully connected hidden layers (ReLU) before the output logit.
        lr: Adam learning rate of the discriminator (the paper: 5e-4 on MNIST, 1e-3 on CelebA).
        beta1: Adam beta1 of the discriminator.
        beta2: Adam beta2 of the discriminator.
        critic_steps: discriminator updates per training step.
        prior_logit: add the prior's ``log p_Z(z)`` to the logit, so the discriminator only learns
            the ``-log q_Z(z)`` part of the optimal logit (the reference code's CelebA trick; AVB).
    """

    network_name = "discriminator"
    discriminator: nn.Sequential | None

    def __init__(
        self,
        hidden: int = 512,
        layers: int = 4,
        lr: float = 5e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        critic_steps: int = 1,
        prior_logit: bool = False,
    ) -> None:
        super().__init__(hidden, layers, lr, critic_steps, betas=(beta1, beta2))
        self.prior_logit = bool(prior_logit)

    def bind(self, prior: Prior) -> None:
        """Build the discriminator; with ``prior_logit``, check that ``log p_Z`` is finite
        everywhere (probed at points far outside the prior's bulk), since it enters the logit."""
        if self.prior_logit:
            with torch.no_grad():
                far = prior.sample(16) * 10.0 + 1.0
                finite = bool(torch.isfinite(prior.log_prob(far)).all())
            if not finite:
                raise UsageError(
                    f"prior_logit=True adds log p_Z(z) to the logit, but the prior "
                    f"{type(prior).__name__} has log p_Z = -inf outside its support, which would "
                    "make the logits infinite; use prior_logit=false, or a prior with a density "
                    "on all of R^D (gaussian, gmm)."
                )
        super().bind(prior)

    # -- logits and losses -----------------------------------------------------------------------

    def _log_prior(self, z: Tensor) -> Tensor:
        if not self._prior:
            raise UsageError(
                f"{type(self).__name__} with prior_logit=True needs the prior: call "
                "bind(prior) first (the training loop does this before training)."
            )
        prior = self._prior[0]
        return prior.log_prob(z.to(prior.dtype)).to(z.dtype)

    def logits(self, z: Tensor, *, trainable: bool = True) -> Tensor:
        """Discriminator logits ``D(z)`` ``(B,)`` (plus ``log p_Z(z)`` when ``prior_logit``).

        Args:
            z: codes or prior samples, ``(B, D)``.
            trainable: when False, the discriminator's parameters are detached: gradients reach
                ``z`` but not the discriminator.

        Returns:
            ``(B,)`` logits in the discriminator's dtype.
        """
        out = self.outputs(z, trainable=trainable)
        if self.prior_logit:
            out = out + self._log_prior(z.to(out.dtype)).to(out.dtype)
        return out

    def critic_step(self, z_q: Tensor, z_p: Tensor) -> dict[str, Tensor]:
        """Run ``critic_steps`` Adam updates of the discriminator on detached codes.

        Each update minimises ``mean softplus(-D(z_p)) + mean softplus(D(z_q))``; the
        discriminator's gradients are zeroed before each backward pass.

        Args:
            z_q: codes, ``(B, D)`` (detached here in any case).
            z_p: prior samples, ``(N, D)`` (detached here in any case).

        Returns:
            ``{"critic_loss": ...}``: the discriminator loss of the last update, measured before
            that update, a detached scalar left on the device.
        """
        net = self._ensure(z_q, z_p)
        dtype = next(net.parameters()).dtype
        # log p_Z adds no gradient to the discriminator: compute it once, outside the graph.
        lp_q: Tensor | float = 0.0
        lp_p: Tensor | float = 0.0
        if self.prior_logit:
            with torch.no_grad():
                lp_q = self._log_prior(z_q.detach().to(dtype))
                lp_p = self._log_prior(z_p.detach().to(dtype))

        def loss_fn(net: nn.Sequential, q: Tensor, p: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            logit_p = net(p).squeeze(-1) + lp_p
            logit_q = net(q).squeeze(-1) + lp_q
            loss = F.softplus(-logit_p).mean() + F.softplus(logit_q).mean()
            return loss, {"critic_loss": loss}

        return self.train_network(z_q, z_p, loss_fn)

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        """Non-saturating encoder loss ``mean softplus(-D(z_q)) = -mean log sigmoid(D(z_q))``.

        ``z_p`` is only checked for shape (the discriminator already learnt the prior).

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``z_q``.
        """
        self._ensure(z_q, z_p)
        return F.softplus(-self.logits(z_q, trainable=False)).mean().to(z_q.dtype)
