"""Writing each part as TorchScript or ONNX, and checking the file against the model."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wae_toolkit.errors import WaeError
from wae_toolkit.export.formats import (
    ATOL,
    CHECK_BATCHES,
    ONNX_OPSET,
    RTOL,
    _DataInfo,
    _outputs,
)


def _wrapper(model: Any, part: str) -> Any:
    """A CPU float32 copy of the encoder or decoder, as a module with plain tensor outputs."""
    import copy

    import torch
    from torch import Tensor, nn

    from wae_toolkit.assembly.model import LOG_VAR_RANGE

    class Encoder(nn.Module):
        def __init__(self, net: nn.Module, gaussian: bool) -> None:
            super().__init__()
            self.net, self.gaussian = net, gaussian

        def forward(self, x: Tensor) -> Any:
            if self.gaussian:
                mean, log_var = self.net(x)
                return mean, log_var.clamp(*LOG_VAR_RANGE)
            return self.net(x)

    class Decoder(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, z: Tensor) -> Tensor:
            return self.net(z)  # type: ignore[no-any-return]

    net = copy.deepcopy(model.encoder if part == "encoder" else model.decoder)
    net = net.to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format)
    module = Encoder(net, bool(model.gaussian)) if part == "encoder" else Decoder(net)
    return module.eval().requires_grad_(False)


def _inputs(part: str, info: _DataInfo, latent_dim: int, batch: int, seed: int) -> Any:
    """Random inputs of ``batch`` samples: data in its value range, or codes."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    if part == "decoder":
        return torch.randn(batch, latent_dim, generator=gen)
    x = torch.rand(batch, *info.sample_shape, generator=gen)
    if info.value_range is None:
        return torch.randn(batch, *info.sample_shape, generator=gen)
    lo, hi = info.value_range
    return lo + (hi - lo) * x


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Keep torch's own notices out of the user's way while exporting.

    TorchScript works in this torch but says on every call that it is deprecated, the ONNX
    exporter logs which torchvision operators it skips, and torch.export warns about its own
    internals; none of these concern the files written, which are checked afterwards.
    """
    names = ("torch.onnx", "torch.export", "torch._export", "torch.fx.experimental")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _save_torchscript(module: Any, example: Any, path: Path) -> None:
    import torch

    with _quiet_torch():
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(traced, str(path))


def _save_onnx(
    module: Any, example: Any, path: Path, part: str, gaussian: bool, info: _DataInfo
) -> None:
    import torch

    inputs = ["z" if part == "decoder" else "x"]
    with _quiet_torch():
        try:
            program = torch.onnx.export(
                module,
                (example,),
                None,
                input_names=inputs,
                output_names=_outputs(part, gaussian),
                opset_version=ONNX_OPSET,
                dynamo=True,
                external_data=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
        except Exception as exc:
            raise WaeError(
                f"The {part} could not be exported to ONNX: {str(exc).splitlines()[0]}"
            ) from exc
        assert program is not None
        from wae_toolkit._version import __version__

        props = program.model.metadata_props
        props["wae_toolkit"] = __version__
        props["part"] = part
        props["sample_shape"] = json.dumps(list(info.sample_shape))
        props["value_range"] = json.dumps(info.value_range and list(info.value_range))
        program.save(str(path), external_data=False)


def _verify(
    fmt: str, path: Path, module: Any, part: str, info: _DataInfo, latent_dim: int
) -> float:
    """Load the file back and compare it with ``module`` at other batch sizes; the largest
    absolute difference. Raises WaeError when it is beyond ``ATOL + RTOL * abs(expected)``."""
    import numpy as np
    import torch

    with _quiet_torch():
        if fmt == "torchscript":
            loaded = torch.jit.load(str(path), map_location="cpu")

            def run(x: Any) -> list[Any]:
                y = loaded(x)
                return [t.numpy() for t in (y if isinstance(y, tuple) else (y,))]
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name

            def run(x: Any) -> list[Any]:
                return list(session.run(None, {name: x.numpy()}))

    worst = 0.0
    for i, batch in enumerate(CHECK_BATCHES):
        x = _inputs(part, info, latent_dim, batch, seed=i + 1)
        want = module(x)
        want = [t.numpy() for t in (want if isinstance(want, tuple) else (want,))]
        try:
            got = run(x)
        except Exception as exc:
            raise WaeError(
                f"The exported {part} failed on a batch of {batch}: {str(exc).splitlines()[0]}"
            ) from exc
        for g, w in zip(got, want, strict=True):
            g = np.asarray(g)
            if g.shape != w.shape or not np.allclose(g, w, rtol=RTOL, atol=ATOL):
                err = float(np.abs(g - w).max()) if g.shape == w.shape else math.inf
                raise WaeError(
                    f"The exported {part} does not compute what the model does on a batch of "
                    f"{batch} (largest difference {err:.3g}, shape {g.shape} for {w.shape}); "
                    "nothing was written."
                )
            worst = max(worst, float(np.abs(g - w).max()))
    return worst
