"""WGAN latent penalties: a critic estimates the Wasserstein-1 distance between codes and prior.

Both penalties use the Kantorovich-Rubinstein duality

    W1(Q_Z, P_Z) = sup over 1-Lipschitz f of  E_{z_p ~ P_Z} f(z_p) - E_{z_q ~ Q_Z} f(z_q)

with an MLP critic ``f``. They differ only in how ``f`` is kept Lipschitz: ``wgan-clip`` clips
every weight (Arjovsky, Chintala, Bottou, "Wasserstein GAN", 2017), ``wgan-gp`` penalises the
gradient norm on interpolates (Gulrajani et al., "Improved Training of Wasserstein GANs", 2017).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from wae_toolkit.builtins._critic import MLPCriticPenalty, check_positive

__all__ = ["WGANClipPenalty", "WGANGPPenalty"]


class _WGANPenalty(MLPCriticPenalty):
    """Shared WGAN machinery: the critic's objective, its logs and the encoder's loss.

    Each critic update minimises ``-(E f(z_p) - E f(z_q)) + regulariser`` (the regulariser is
    :meth:`regulariser`, zero by default). ``forward`` returns the critic's estimate
    ``E f(z_p) - E f(z_q)`` computed with detached critic weights: the encoder descends it, which
    moves the codes towards where the critic scores prior samples high.
    """

    network_name = "critic"
    critic: nn.Sequential | None
    #: ``E f(z) - E f(z)`` is exactly 0.
    zero_on_identical = True

    def regulariser(self, net: nn.Sequential, z_q: Tensor, z_p: Tensor) -> Tensor | None:
        """A term added to the critic's loss; ``None`` (the default) for none."""
        return None

    def critic_step(self, z_q: Tensor, z_p: Tensor) -> dict[str, Tensor]:
        """Run ``critic_steps`` updates of the critic on detached codes.

        Each update maximises ``E f(z_p) - E f(z_q)`` (minus the regulariser); the critic's
        gradients are zeroed before each backward pass.

        Args:
            z_q: codes, ``(B, D)`` (detached here in any case).
            z_p: prior samples, ``(N, D)`` (detached here in any case).

        Returns:
            ``{"critic_loss": ..., "w1_estimate": ...}`` of the last update, measured before that
            update, as detached scalars left on the device: the loss minimised (``-w1_estimate``
            plus the regulariser) and the critic's estimate ``E f(z_p) - E f(z_q)`` on the batch.
        """

        def loss_fn(net: nn.Sequential, q: Tensor, p: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            w1 = net(p).mean() - net(q).mean()
            loss = -w1
            extra = self.regulariser(net, q, p)
            if extra is not None:
                loss = loss + extra
            return loss, {"critic_loss": loss, "w1_estimate": w1}

        return self.train_network(z_q, z_p, loss_fn)

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        """The critic's estimate ``E f(z_p) - E f(z_q)`` on the two batches.

        The critic's weights are detached, so gradients reach ``z_q`` only.

        Args:
            z_q: codes, ``(B, D)``.
            z_p: prior samples, ``(N, D)``.

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``z_q``.
        """
        self._ensure(z_q, z_p)
        f_p = self.outputs(z_p, trainable=False)
        f_q = self.outputs(z_q, trainable=False)
        return (f_p.mean() - f_q.mean()).to(z_q.dtype)


class WGANClipPenalty(_WGANPenalty):
    """WGAN critic with weight clipping: a latent critic estimates ``K * W1(Q_Z, P_Z)``.

    A critic ``f`` (an MLP: ``layers`` hidden layers of ``hidden`` units with ReLU, one linear
    output, no sigmoid) is trained by :meth:`critic_step` with RMSProp, ``critic_steps`` updates
    per training step, to maximise ``E f(z_p) - E f(z_q)``; after it is built and after every
    update, every parameter (weights and biases) is clipped to ``[-clip, clip]``. Clipping makes
    ``f`` K-Lipschitz for some ``K`` that depends on the architecture and on ``clip`` but is
    unknown, so the value is an estimate of ``K * W1`` at best (the critic's best is ``sup`` over
    the clipped MLPs, a subset of the K-Lipschitz functions, hence at most ``K * W1``). ``K``
    grows with the width and depth (each saturated layer can multiply slopes by up to
    ``clip * hidden``): with the defaults, codes shifted by 1 along every axis (``W1 = sqrt(D)``)
    scored about 2.5 in ``D = 8`` and 24 in ``D = 64`` after 100 critic steps (batches of 100),
    matched codes about 0.003; a small critic (64 x 2) scores about 1e-3 ``W1``. Retune
    ``lambda`` when you change ``hidden``, ``layers`` or ``clip``. Clipping also limits which
    functions the critic can learn (a first-layer unit with saturated weight and bias bends at
    ``|z| = 1``): in 1-D, the trained critic's estimate divided by its largest slope reached only
    0.6-0.7 of ``W1``.

    ``forward`` returns ``E f(z_p) - E f(z_q)`` with detached critic weights.

    Args:
        hidden: units per hidden layer of the critic.
        layers: number of fully connected hidden layers (ReLU) before the output.
        lr: RMSProp learning rate of the critic (the WGAN paper: 5e-5).
        clip: every critic parameter is clipped to ``[-clip, clip]`` (the WGAN paper: 0.01).
        critic_steps: critic updates per training step (the WGAN paper: 5).
    """

    def __init__(
        self,
        hidden: int = 512,
        layers: int = 4,
        lr: float = 5e-5,
        clip: float = 0.01,
        critic_steps: int = 5,
    ) -> None:
        super().__init__(hidden, layers, lr, critic_steps)
        check_positive(type(self).__name__, "clip", clip)
        self.clip = float(clip)

    def make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """RMSProp with ``lr`` (PyTorch's other defaults, as in the WGAN reference code)."""
        return torch.optim.RMSprop(params, lr=self.lr)

    @torch.no_grad()
    def constrain(self) -> None:
        """Clip every critic parameter to ``[-clip, clip]``."""
        if self.critic is not None:
            for param in self.critic.parameters():
                param.clamp_(-self.clip, self.clip)


class WGANGPPenalty(_WGANPenalty):
    """WGAN critic with a gradient penalty (WGAN-GP): a latent critic estimates ``W1(Q_Z, P_Z)``.

    The critic ``f`` (the same MLP as ``wgan-clip``'s, without clipping) is trained by
    :meth:`critic_step` with Adam, ``critic_steps`` updates per training step, to minimise

        -(E f(z_p) - E f(z_q)) + gp_weight * E_{z~} (||grad f(z~)|| - 1)^2,
        z~ = e z_q + (1 - e) z_p,   e ~ U(0, 1) per pair,

    on random interpolates between the first ``min(B, N)`` codes and prior samples (both batches
    are i.i.d., so this pairs them at random). The penalty is soft: the critic's estimate
    overshoots ``W1`` by a bias that shrinks like ``1 / gp_weight`` (for 1-D ``N(0, 1)`` against
    ``N(3, 1)``, ``W1 = 3``, the best critic's estimate is about 3.46 with ``gp_weight = 10``).

    ``forward`` returns ``E f(z_p) - E f(z_q)`` with detached critic weights.

    Args:
        hidden: units per hidden layer of the critic.
        layers: number of fully connected hidden layers (ReLU) before the output.
        lr: Adam learning rate of the critic (Gulrajani et al.: 1e-4).
        beta1: Adam beta1 of the critic (Gulrajani et al.: 0.5).
        beta2: Adam beta2 of the critic (Gulrajani et al.: 0.9).
        gp_weight: weight of the gradient penalty (Gulrajani et al.: 10).
        critic_steps: critic updates per training step (Gulrajani et al.: 5).
    """

    def __init__(
        self,
        hidden: int = 512,
        layers: int = 4,
        lr: float = 1e-4,
        beta1: float = 0.5,
        beta2: float = 0.9,
        gp_weight: float = 10.0,
        critic_steps: int = 5,
    ) -> None:
        super().__init__(hidden, layers, lr, critic_steps, betas=(beta1, beta2))
        check_positive(type(self).__name__, "gp_weight", gp_weight)
        self.gp_weight = float(gp_weight)

    def regulariser(self, net: nn.Sequential, z_q: Tensor, z_p: Tensor) -> Tensor:
        """``gp_weight * mean (||grad f(z~)|| - 1)^2`` on random interpolates ``z~``.

        Args:
            net: the critic.
            z_q: codes, ``(B, D)``.
            z_p: prior samples, ``(N, D)``.

        Returns:
            A scalar, differentiable with respect to the critic's parameters.
        """
        n = min(len(z_q), len(z_p))
        e = torch.rand(n, 1, dtype=z_q.dtype, device=z_q.device)
        z = (e * z_q[:n] + (1 - e) * z_p[:n]).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(z).sum(), z, create_graph=True)
        return self.gp_weight * (torch.linalg.vector_norm(grad, dim=1) - 1).pow(2).mean()
