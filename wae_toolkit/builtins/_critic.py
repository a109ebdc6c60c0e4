"""Shared machinery of the adversarial latent penalties (``gan-js``, ``wgan-clip``, ``wgan-gp``).

Each of them trains an MLP ``f: R^D -> R`` on detached codes and prior samples with its own
optimizer, and gives the encoder a loss computed with detached copies of the MLP's weights.
:class:`MLPCriticPenalty` holds everything they have in common: option checks, the lazily built
network, the lazily created optimizer that follows ``.to()``, the update loop of
:meth:`~wae_toolkit.plugins.interfaces.LatentPenalty.critic_step`, and the state-dict hook that
builds the network before a saved one is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.kernels import check_codes
from wae_toolkit.plugins.interfaces import LatentPenalty, Prior, stop_requested
from wae_toolkit.plugins.options import resolved_options

__all__ = ["MLPCriticPenalty", "check_beta", "check_positive", "follow_parameters"]

#: ``(net, z_q, z_p) -> (loss, logs)``: one update's loss and the scalars to log.
LossFn = Callable[[nn.Sequential, Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]]


def _check_int(who: str, key: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{who}: {key} must be an integer >= {low}; got {value!r}.")


def check_positive(who: str, key: str, value: object) -> None:
    """Raise ``UsageError`` unless ``value`` is a positive finite number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise UsageError(f"{who}: {key} must be a positive number; got {value!r}.")


def check_beta(who: str, key: str, value: object) -> None:
    """Raise ``UsageError`` unless ``value`` is an Adam beta in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise UsageError(f"{who}: {key} must be in [0, 1); got {value!r}.")


def follow_parameters(opt: torch.optim.Optimizer) -> None:
    """Move optimizer state to its parameters' dtype and device (after ``penalty.to(...)``)."""
    for param, state in opt.state.items():
        for key, value in state.items():
            if key == "step" or not isinstance(value, Tensor):
                continue
            if value.dtype != param.dtype or value.device != param.device:
                state[key] = value.to(device=param.device, dtype=param.dtype)


class MLPCriticPenalty(LatentPenalty):
    """Base of the penalties that train an MLP on codes against prior samples.

    The network has ``layers`` fully connected hidden layers of ``hidden`` units with ReLU and a
    final linear layer to one output. It is built for the prior's dimension in :meth:`bind` (or
    for the codes' dimension on first use) and registered under the name ``network_name`` (which
    is therefore its prefix in state dicts). Its optimizer, made by :meth:`make_optimizer`, is
    created on the first :meth:`critic_step`, after the penalty was moved to its device, and its
    state follows later ``.to()`` calls. The model's optimizer never sees these parameters, and
    :meth:`outputs` with ``trainable=False`` uses detached copies of them, so the model's backward
    pass leaves the network untouched.

    Subclasses set ``network_name``, implement :meth:`critic_step` (with :meth:`train_network`)
    and ``forward``, pass ``betas`` for the default Adam optimizer or override
    :meth:`make_optimizer`, and may override :meth:`constrain`, which runs after the network is
    built and after every update.
    """

    adversarial = True
    #: The attribute (and state-dict prefix) under which the network is registered.
    network_name: ClassVar[str] = "critic"

    def __init__(
        self,
        hidden: int,
        layers: int,
        lr: float,
        critic_steps: int,
        betas: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        _check_int(who, "hidden", hidden, 1)
        _check_int(who, "layers", layers, 0)
        _check_int(who, "critic_steps", critic_steps, 1)
        check_positive(who, "lr", lr)
        self.hidden = hidden
        self.layers = layers
        self.lr = float(lr)
        self.critic_steps = critic_steps
        if betas is not None:
            check_beta(who, "beta1", betas[0])
            check_beta(who, "beta2", betas[1])
            self.beta1 = float(betas[0])
            self.beta2 = float(betas[1])
        setattr(self, self.network_name, None)
        self._optimizer: torch.optim.Optimizer | None = None
        # A plain list, so the prior is not registered as a submodule of the penalty (it is not
        # the penalty's to move, save or train).
        self._prior: list[Prior] = []
        self.register_load_state_dict_pre_hook(_build_before_load)

    # -- construction ---------------------------------------------------------------------------

    def make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """The network's optimizer over ``params``: Adam with ``lr`` and ``(beta1, beta2)``.

        Subclasses built without ``betas`` override it.
        """
        return torch.optim.Adam(params, lr=self.lr, betas=(self.beta1, self.beta2))

    def constrain(self) -> None:  # noqa: B027 - optional hook
        """Project the network's parameters onto an allowed set; the default does nothing."""

    @property
    def network(self) -> nn.Sequential | None:
        """The MLP (``None`` before it is built), also reachable as ``self.<network_name>``."""
        net = getattr(self, self.network_name)
        assert net is None or isinstance(net, nn.Sequential)
        return net

    def _build(self, dim: int, device: torch.device, dtype: torch.dtype) -> nn.Sequential:
        mods: list[nn.Module] = []
        width = dim
        for _ in range(self.layers):
            mods += [nn.Linear(width, self.hidden, device=device, dtype=dtype), nn.ReLU()]
            width = self.hidden
        mods.append(nn.Linear(width, 1, device=device, dtype=dtype))
        net = nn.Sequential(*mods)
        setattr(self, self.network_name, net)
        self._optimizer = None
        self.constrain()
        return net

    def bind(self, prior: Prior) -> None:
        """Build the network for ``prior.dim`` (kept if already built for that dimension)."""
        self._prior[:] = [prior]
        if self.network is None or self.in_features != prior.dim:
            self._build(int(prior.dim), prior.device, prior.dtype)

    @property
    def in_features(self) -> int | None:
        """The latent dimension the network was built for; ``None`` before it is built."""
        net = self.network
        if net is None:
            return None
        first = net[0]
        assert isinstance(first, nn.Linear)
        return first.in_features

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The network's optimizer (``None`` before the first :meth:`critic_step`).

        Checkpointing code can save and restore its ``state_dict()`` to resume training exactly.
        """
        return self._optimizer

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``{"critic": optimizer}`` once the network is built (the optimizer created if needed)."""
        net = self.network
        if net is None:
            return {}
        if self._optimizer is None:
            self._optimizer = self.make_optimizer(net.parameters())
        return {"critic": self._optimizer}

    def _ensure(self, z_q: Tensor, z_p: Tensor) -> nn.Sequential:
        check_codes(z_q, z_p)
        net = self.network
        if net is None:
            return self._build(z_q.shape[1], z_q.device, z_q.dtype)
        if self.in_features != z_q.shape[1]:
            raise UsageError(
                f"{type(self).__name__}: the {self.network_name} takes codes of dimension "
                f"{self.in_features}, but z_q has shape {tuple(z_q.shape)}."
            )
        device = next(net.parameters()).device
        if device != z_q.device:
            raise UsageError(
                f"{type(self).__name__}: the {self.network_name} is on {device} but z_q is on "
                f"{z_q.device}; move the penalty with penalty.to(device)."
            )
        return net

    # -- evaluation and training ----------------------------------------------------------------

    def outputs(self, z: Tensor, *, trainable: bool = True) -> Tensor:
        """The network's outputs ``f(z)``, ``(B, D) -> (B,)``, in the network's dtype.

        Args:
            z: codes or prior samples, ``(B, D)``.
            trainable: when False, the network's parameters are detached: gradients reach ``z``
                but not the network.
        """
        net = self._ensure(z, z)
        x = z.to(next(net.parameters()).dtype)
        if trainable:
            out = net(x)
        else:
            params = {k: v.detach() for k, v in net.named_parameters()}
            out = torch.func.functional_call(net, params, (x,))
        return out.squeeze(-1)

    def train_network(self, z_q: Tensor, z_p: Tensor, loss_fn: LossFn) -> dict[str, Tensor]:
        """Run ``critic_steps`` updates of the network, each minimising ``loss_fn``.

        Before each update the network's gradients are zeroed; after it, :meth:`constrain` runs.
        When the run is asked to stop (:func:`~wae_toolkit.plugins.interfaces.stop_requested`), the
        updates end after the current one, so a signal is honoured within one critic update.

        Args:
            z_q: codes, ``(B, D)`` (detached and cast to the network's dtype here).
            z_p: prior samples, ``(N, D)`` (likewise).
            loss_fn: ``(net, z_q, z_p) -> (loss, logs)``.

        Returns:
            the logs of the last update, measured before that update, as detached scalars left on
            the device.
        """
        net = self._ensure(z_q, z_p)
        if self._optimizer is None:
            self._optimizer = self.make_optimizer(net.parameters())
        opt = self._optimizer
        follow_parameters(opt)
        dtype = next(net.parameters()).dtype
        z_q, z_p = z_q.detach().to(dtype), z_p.detach().to(dtype)
        logs: dict[str, Tensor] = {}
        with torch.enable_grad():
            for _ in range(self.critic_steps):
                opt.zero_grad(set_to_none=True)
                loss, logs = loss_fn(net, z_q, z_p)
                loss.backward()
                opt.step()
                self.constrain()
                if stop_requested():
                    break
        return {k: v.detach() for k, v in logs.items()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in resolved_options(self).items())


def _build_before_load(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """Load-state-dict pre-hook: build a not-yet-built network from the saved shapes."""
    assert isinstance(module, MLPCriticPenalty)
    key = f"{prefix}{module.network_name}.0.weight"
    if module.network is None and key in state_dict:
        weight = state_dict[key]  # the first Linear: (out_features, latent dimension)
        module._build(int(weight.shape[1]), weight.device, weight.dtype)
