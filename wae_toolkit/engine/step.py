"""One training step: the encoder, the critic's update, the objective, the backward pass and the
optimizer's step, for every combination of cost, penalty, prior and network.

For a batch ``x`` of B samples:

1. ``z_q = E(x)`` (a draw from Q(Z|x) for a Gaussian encoder), ``z_p ~ P_Z`` (B samples);
2. adversarial penalties update their critic: ``penalty.critic_step(z_q.detach(), z_p)``;
3. ``loss = mean_i c(x_i, G(z_q_i)) + lambda * penalty(z_q, z_p)``; one optimizer step on the
   encoder, the decoder and any prior parameters.

Losses stay on the device; the loop reads them back every ``log_every`` steps only.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from wae_toolkit.assembly.components import Components
from wae_toolkit.assembly.model import WAE
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.distributed import DistContext, all_reduce_mean, gather
from wae_toolkit.engine.distributed import average_gradients as _average_gradients
from wae_toolkit.engine.faults import BadSteps
from wae_toolkit.engine.first_step import watch_plugins

__all__ = ["StepFunctions", "TrainStep", "mean_logs"]

#: The autocast type of each reduced precision.
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: The ``torch.compile`` modes that replay CUDA graphs on CUDA.
_CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


def mean_logs(acc: dict[str, list[torch.Tensor]], ctx: DistContext) -> dict[str, float]:
    """Average the logged scalars (over the ranks too) with one device-to-host transfer."""
    keys = [k for k, v in acc.items() if v]
    if not keys:
        return {}
    means = torch.stack([torch.stack(acc[k]).float().mean() for k in keys])
    if ctx.is_distributed:
        means = all_reduce_mean({"m": means})["m"]
    return dict(zip(keys, means.tolist(), strict=True))


class StepFunctions:
    """The two halves of a training step, compiled and/or under autocast as configured.

    ``encode(x_in) -> (mean, log_var, z_q)`` runs the encoder (adversarial penalties update their
    critic on ``z_q`` between the halves); ``objective(x, z_q, log_var, pen)`` returns the loss
    terms ``loss``, ``cost``, ``penalty`` (and ``logvar_l1``), where ``pen`` holds the penalty's
    inputs ``(z_q, z_p, mean, log_var)``: this process's own, or in multi-process training those
    gathered from every rank. Under ``precision="bf16"`` (or ``"fp16"``) only the networks run
    in that type: codes and reconstructions are cast to float32 before the cost and the penalty,
    so both are computed in float32. With ``compile`` both halves go through ``torch.compile``
    in ``compile_mode``; ``reduce-overhead`` replays them as CUDA graphs on CUDA, which removes
    the launch overhead that dominates small models.
    """

    def __init__(
        self,
        comps: Components,
        config: RunConfig,
        device: torch.device,
        model: WAE | None = None,
    ) -> None:
        self.model = comps.model if model is None else model  # a DDP view in multi-process runs
        self.cost, self.penalty = comps.cost, comps.penalty
        self.lam, self.logvar_l1 = config.lam, config.logvar_l1
        dtype = _AUTOCAST.get(config.precision)
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=dtype))
            if dtype is not None
            else contextlib.nullcontext
        )
        mode = None if config.compile_mode == "default" else config.compile_mode
        self.encode = torch.compile(self._encode, mode=mode) if config.compile else self._encode
        self.objective = (
            torch.compile(self._objective, mode=mode) if config.compile else self._objective
        )
        #: Whether the compiled halves replay CUDA graphs: each step then begins with
        #: ``torch.compiler.cudagraph_mark_step_begin()``, and what outlives it is copied out
        #: of the graphs' memory, which the next replay overwrites.
        self.cudagraphs = bool(
            config.compile and config.compile_mode in _CUDAGRAPH_MODES and device.type == "cuda"
        )

    def _encode(self, x_in: torch.Tensor) -> tuple[Any, Any, torch.Tensor]:
        with self.autocast():
            mean, log_var = self.model.encode_stats(x_in)
        mean = mean.float()
        log_var = None if log_var is None else log_var.float()
        return mean, log_var, self.model.draw(mean, log_var)

    def _objective(
        self,
        x: torch.Tensor,
        z_q: torch.Tensor,
        log_var: torch.Tensor | None,
        pen_inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    ) -> dict[str, torch.Tensor]:
        with self.autocast():
            x_hat = self.model.decode(z_q)
        rec = self.cost(x, x_hat.float()).mean()
        z_all, zp_all, mean_all, log_var_all = pen_inputs
        if self.penalty.needs_encoder_stats:
            pen = self.penalty(z_all, zp_all, mean=mean_all, log_var=log_var_all)
        else:
            pen = self.penalty(z_all, zp_all)
        terms = {"loss": rec + self.lam * pen, "cost": rec, "penalty": pen}
        if self.logvar_l1 and log_var is not None:
            reg = log_var.abs().sum(1).mean()
            terms["loss"] = terms["loss"] + self.logvar_l1 * reg
            terms["logvar_l1"] = reg
        return terms


class TrainStep:
    """One optimisation step on a batch: ``step(x, number) -> {name: 0-d tensor}`` with the loss
    terms (and the critic's, for adversarial penalties), detached, on the device. With
    ``clip_grad`` the gradients' global norm is clipped before the optimizer steps, and
    ``grad_norm`` (before clipping) and ``clipped`` (1 when it clipped) are logged too.

    Under ``precision="fp16"`` the loss is scaled by a :class:`torch.amp.GradScaler` (gradients
    are unscaled before clipping); a step whose scaled gradients overflow is skipped by the scaler,
    which lowers the scale, and is not counted as a bad step (``grad_scale`` is logged)."""

    def __init__(
        self,
        fns: StepFunctions,
        comps: Components,
        opt: torch.optim.Optimizer,
        bad_steps: BadSteps,
        config: RunConfig,
        ctx: DistContext,
    ) -> None:
        self.fns, self.model, self.penalty = fns, comps.model, comps.penalty
        self.opt, self.bad_steps, self.ctx = opt, bad_steps, ctx
        self.input_noise, self.clip = config.input_noise, config.clip_grad
        self.prior_params = [p for p in comps.model.prior.parameters() if p.requires_grad]
        self.params = [p for group in opt.param_groups for p in group["params"]]
        device = self.params[0].device if self.params else torch.device("cpu")
        #: The fp16 gradient scaler (saved with checkpoints), else None.
        self.scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
        watch_plugins(fns, comps, bad_steps)  # the first step checks the plugins' outputs

    def _penalty_inputs(self, *codes: torch.Tensor | None) -> tuple[Any, ...]:
        """This process's codes, or in multi-process training those of every rank (the penalty
        sees the global batch; see :mod:`wae_toolkit.engine.distributed`)."""
        if not self.ctx.is_distributed:
            return codes
        return tuple(None if c is None else gather(c, check=False) for c in codes)

    def __call__(self, x: torch.Tensor, number: int) -> dict[str, torch.Tensor]:
        if self.fns.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        x_in = x + self.input_noise * torch.randn_like(x) if self.input_noise else x
        mean, log_var, z_q = self.fns.encode(x_in)
        z_p = self.model.prior.sample(len(x))
        pen_inputs = self._penalty_inputs(z_q, z_p, mean, log_var)
        logs: dict[str, torch.Tensor] = {}
        if self.penalty.adversarial:
            logs.update(self.penalty.critic_step(pen_inputs[0].detach(), pen_inputs[1].detach()))
        terms = self.fns.objective(x, z_q, log_var, pen_inputs)
        self.opt.zero_grad(set_to_none=True)
        scaler = self.scaler
        (terms["loss"] if scaler is None else scaler.scale(terms["loss"])).backward()
        if self.ctx.is_distributed and self.prior_params:
            _average_gradients(self.prior_params)  # the prior is outside the DDP wrappers
        if self.clip is not None:  # on the device: no synchronisation
            if scaler is not None:
                scaler.unscale_(self.opt)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
            logs["grad_norm"] = norm.detach()
            logs["clipped"] = (norm > self.clip).float()
        if scaler is None:
            self.bad_steps.before_step(number)
            self.opt.step()
        else:  # overflowing fp16 gradients are the scaler's to skip; the losses are still checked
            self.bad_steps.before_step(number, check_gradients=False)
            scaler.step(self.opt)
            scaler.update()
            logs["grad_scale"] = scaler._scale.detach().clone()  # type: ignore[union-attr]
        if self.fns.cudagraphs:
            logs.update({k: v.detach().clone() for k, v in terms.items()})
        else:
            logs.update({k: v.detach() for k, v in terms.items()})
        return logs
