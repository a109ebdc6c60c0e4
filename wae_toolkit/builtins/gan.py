"""The WAE-GAN latent penalty: a discriminator in latent space estimates the JS divergence."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wae_toolkit.errors import UsageError
from wae_toolkit.interfaces import LatentPenalty, Prior
from wae_toolkit.kernels import check_codes

__all__ = ["JSGANPenalty"]


class JSGANPenalty(LatentPenalty):
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

    adversarial = True

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
        super().__init__()
        name = type(self).__name__
        for key, value, low in (("hidden", hidden, 1), ("layers", layers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UsageError(f"{name}: {key} must be an integer >= {low}; got {value!r}.")
        if isinstance(critic_steps, bool) or not isinstance(critic_steps, int) or critic_steps < 1:
            raise UsageError(f"{name}: critic_steps must be an integer >= 1; got {critic_steps!r}.")
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise UsageError(f"{name}: lr must be a positive number; got {lr!r}.")
        for key, beta in (("beta1", beta1), ("beta2", beta2)):
            if not (isinstance(beta, int | float) and 0.0 <= beta < 1.0):
                raise UsageError(f"{name}: {key} must be in [0, 1); got {beta!r}.")
        self.hidden = hidden
        self.layers = layers
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.critic_steps = critic_steps
        self.prior_logit = bool(prior_logit)
        self.discriminator: nn.Sequential | None = None
        self._optimizer: torch.optim.Adam | None = None
        # A plain list, so the prior is not registered as a submodule of the penalty (it is not
        # the penalty's to move, save or train).
        self._prior: list[Prior] = []
        self.register_load_state_dict_pre_hook(_build_before_load)

    # -- construction ---------------------------------------------------------------------------

    def _build(self, dim: int, device: torch.device, dtype: torch.dtype) -> nn.Sequential:
        mods: list[nn.Module] = []
        width = dim
        for _ in range(self.layers):
            mods += [nn.Linear(width, self.hidden, device=device, dtype=dtype), nn.ReLU()]
            width = self.hidden
        mods.append(nn.Linear(width, 1, device=device, dtype=dtype))
        self.discriminator = nn.Sequential(*mods)
        self._optimizer = None
        return self.discriminator

    def bind(self, prior: Prior) -> None:
        """Build the discriminator for ``prior.dim`` (kept if already built for that dimension)."""
        self._prior[:] = [prior]
        if self.discriminator is None or self.in_features != prior.dim:
            self._build(int(prior.dim), prior.device, prior.dtype)

    @property
    def in_features(self) -> int | None:
        """The latent dimension the discriminator was built for; ``None`` before it is built."""
        if self.discriminator is None:
            return None
        first = self.discriminator[0]
        assert isinstance(first, nn.Linear)
        return first.in_features

    @property
    def optimizer(self) -> torch.optim.Adam | None:
        """The discriminator's Adam optimizer (``None`` before the first :meth:`critic_step`).

        Checkpointing code can save and restore its ``state_dict()`` to resume training exactly.
        """
        return self._optimizer

    def _ensure(self, z_q: Tensor, z_p: Tensor) -> nn.Sequential:
        check_codes(z_q, z_p)
        if self.discriminator is None:
            return self._build(z_q.shape[1], z_q.device, z_q.dtype)
        if self.in_features != z_q.shape[1]:
            raise UsageError(
                f"{type(self).__name__}: the discriminator takes codes of dimension "
                f"{self.in_features}, but z_q has shape {tuple(z_q.shape)}."
            )
        device = next(self.discriminator.parameters()).device
        if device != z_q.device:
            raise UsageError(
                f"{type(self).__name__}: the discriminator is on {device} but z_q is on "
                f"{z_q.device}; move the penalty with penalty.to(device)."
            )
        return self.discriminator

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
        net = self._ensure(z, z)
        w = next(net.parameters())
        x = z.to(w.dtype)
        if trainable:
            out = net(x)
        else:
            params = {k: v.detach() for k, v in net.named_parameters()}
            out = torch.func.functional_call(net, params, (x,))
        out = out.squeeze(-1)
        if self.prior_logit:
            out = out + self._log_prior(x).to(out.dtype)
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
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(
                net.parameters(), lr=self.lr, betas=(self.beta1, self.beta2)
            )
        opt = self._optimizer
        _follow_parameters(opt)
        dtype = next(net.parameters()).dtype
        z_q, z_p = z_q.detach().to(dtype), z_p.detach().to(dtype)
        # log p_Z adds no gradient to the discriminator: compute it once, outside the graph.
        lp_q: Tensor | float = 0.0
        lp_p: Tensor | float = 0.0
        if self.prior_logit:
            with torch.no_grad():
                lp_q = self._log_prior(z_q).to(dtype)
                lp_p = self._log_prior(z_p).to(dtype)
        with torch.enable_grad():
            loss = z_q.new_zeros(())
            for _ in range(self.critic_steps):
                opt.zero_grad(set_to_none=True)
                logit_p = net(z_p).squeeze(-1) + lp_p
                logit_q = net(z_q).squeeze(-1) + lp_q
                loss = F.softplus(-logit_p).mean() + F.softplus(logit_q).mean()
                loss.backward()
                opt.step()
        return {"critic_loss": loss.detach()}

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        """Non-saturating encoder loss ``mean softplus(-D(z_q)) = -mean log sigmoid(D(z_q))``.

        ``z_p`` is only checked for shape (the discriminator already learnt the prior).

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``z_q``.
        """
        self._ensure(z_q, z_p)
        return F.softplus(-self.logits(z_q, trainable=False)).mean().to(z_q.dtype)

    def extra_repr(self) -> str:
        return (
            f"hidden={self.hidden}, layers={self.layers}, lr={self.lr:g}, "
            f"betas=({self.beta1:g}, {self.beta2:g}), critic_steps={self.critic_steps}, "
            f"prior_logit={self.prior_logit}"
        )


def _build_before_load(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """Load-state-dict pre-hook: build a not-yet-built discriminator from the saved shapes."""
    assert isinstance(module, JSGANPenalty)
    key = f"{prefix}discriminator.0.weight"
    if module.discriminator is None and key in state_dict:
        weight = state_dict[key]  # the first Linear: (out_features, latent dimension)
        module._build(int(weight.shape[1]), weight.device, weight.dtype)


def _follow_parameters(opt: torch.optim.Optimizer) -> None:
    """Move optimizer state to its parameters' dtype and device (after ``penalty.to(...)``)."""
    for param, state in opt.state.items():
        for key, value in state.items():
            if key == "step" or not isinstance(value, Tensor):
                continue
            if value.dtype != param.dtype or value.device != param.device:
                state[key] = value.to(device=param.device, dtype=param.dtype)
