"""Export a trained model's encoder and decoder as TorchScript or ONNX files.

The files run without wae-toolkit: ``torch.jit.load`` for TorchScript, any ONNX runtime for ONNX
(the ``onnx`` extra: ``pip install 'wae-toolkit[onnx]'``). Each part is a small module with a
dynamic batch dimension:

* ``encoder.{pt,onnx}``: ``x`` ``(batch, *S)`` -> ``z`` ``(batch, D)``, the codes
  ``model.encode(x, sample=False)``; a Gaussian encoder gives two outputs instead, ``mean`` (the
  same codes) and ``log_var`` (its log-variances, clipped as the model clips them), from which a
  random code is ``mean + exp(log_var / 2) * eps``.
* ``decoder.{pt,onnx}``: ``z`` ``(batch, D)`` -> ``x_hat`` ``(batch, *S)``, what
  ``model.decode(z)`` gives, in the data's own space (the decoder's sigmoid or tanh included).
* ``export.json``: the inputs and outputs, the latent dimension, the data's shape and value range,
  the prior, the versions and the run the model came from (one entry per format and part, so
  TorchScript and ONNX exports of the same weights can share a folder).

Each file is written to a temporary name, loaded back and compared with the model on random
inputs at batch sizes other than the one it was traced with; only files that pass take their
final names. Existing files are replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError, WaeError, did_you_mean

__all__ = ["FORMATS", "PARTS", "ExportResult", "export_model"]

#: Export formats and the file suffix each writes.
FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
#: What ``part`` may name.
PARTS = ("encoder", "decoder", "both")
#: The ONNX opset: the dynamo exporter's native one, run by onnxruntime 1.14 and later.
ONNX_OPSET = 18
MANIFEST = "export.json"
#: Exports are traced with this batch size and checked at the others (the batch is dynamic).
TRACE_BATCH = 2
CHECK_BATCHES = (1, 5)
#: An exported part may differ from the model by at most ATOL + RTOL * abs(expected), elementwise.
ATOL, RTOL = 1e-4, 1e-4
#: ONNX files hold one protobuf, at most 2 GB.
_ONNX_MAX_BYTES = 2**31 - 2**24
_ONNX_EXTRA = "needs onnx, onnxruntime and onnxscript: pip install 'wae-toolkit[onnx]'"
_MANIFEST_VERSION = 1


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        out_dir: the folder.
        files: the files written (the exported parts, then ``export.json``).
        manifest: the content of ``export.json``.
    """

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def export_model(
    model: Any,
    format: str,
    out_dir: str | Path | None = None,
    *,
    part: str = "both",
    overwrite: bool = False,
    sample_shape: tuple[int, ...] | None = None,
) -> ExportResult:
    """Export the encoder and/or decoder of a trained WAE as TorchScript or ONNX.

    Args:
        model: a run folder (as written by ``wae run``), or a
            :class:`~wae_toolkit.assembly.model.WAE` (from :func:`wae_toolkit.load` or
            :func:`wae_toolkit.fit`).
        format: ``torchscript`` (``.pt`` files) or ``onnx`` (``.onnx`` files; needs the ``onnx``
            extra).
        out_dir: the folder for the files, created if needed. Default: ``export/`` in the run
            folder.
        part: ``encoder``, ``decoder`` or ``both``.
        overwrite: replace the files of this format already in ``out_dir``.
        sample_shape: the shape of one sample; needed only for a model that has no run folder.

    Returns:
        the folder, the files written and the manifest (``export.json``).

    Raises:
        UsageError: a bad format or part, a missing run, an output that exists, a missing extra.
        WaeError: an exported file that does not compute what the model does (nothing is left).
    """
    import torch

    from wae_toolkit.assembly.model import WAE

    fmt = _check_choice("format", format, tuple(FORMATS))
    which = _check_choice("part", part, PARTS)
    parts = ["encoder", "decoder"] if which == "both" else [which]
    if fmt == "onnx":
        _require_onnx()

    run_dir: Path | None = None
    if isinstance(model, str | Path):
        from wae_toolkit.api import load

        run_dir, model = Path(model), load(model, device="cpu")
    elif not isinstance(model, WAE):
        raise UsageError(
            f"export_model() takes a WAE or a run folder's path; got {type(model).__name__}."
        )
    else:
        run_dir = model.run_dir
    info = _data_info(model, run_dir, sample_shape)
    if out_dir is None:
        if run_dir is None:
            raise UsageError("This model has no run folder; give out_dir, the folder to write to.")
        out_dir = run_dir / "export"
        from wae_toolkit.runs.safe_io import link_problem

        problem = link_problem(Path(out_dir), "folder")  # never write out of the run folder
        if problem:
            raise UsageError(problem)
    out = Path(out_dir)

    fingerprint = _fingerprint(model)
    names = {p: p + FORMATS[fmt] for p in parts}
    manifest = _start_manifest(out, overwrite, names, fingerprint)

    with torch.no_grad():
        modules = {p: _wrapper(model, p) for p in parts}
        if fmt == "onnx":
            for p, module in modules.items():
                size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
                if size > _ONNX_MAX_BYTES:
                    raise UsageError(
                        f"The {p} has {size / 2**30:.1f} GB of weights and an ONNX file holds at "
                        "most 2 GB; use --format torchscript."
                    )
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".wae-export-", dir=out))
        except OSError as exc:
            raise UsageError(f"Cannot write to the folder '{out}': {exc.strerror}.") from None
        try:
            entries = {}
            for p, module in modules.items():
                path = tmp / names[p]
                example = _inputs(p, info, model.latent_dim, TRACE_BATCH, seed=0)
                if fmt == "torchscript":
                    _save_torchscript(module, example, path)
                else:
                    _save_onnx(module, example, path, p, model.gaussian, info)
                error = _verify(fmt, path, module, p, info, model.latent_dim)
                entries[p] = _entry(fmt, p, names[p], model.gaussian, info, model.latent_dim)
                entries[p]["max_abs_error"] = error
            written = []
            for p in parts:
                os.replace(tmp / names[p], out / names[p])
                written.append(out / names[p])
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    manifest.update(_header(model, run_dir, info, fingerprint))
    manifest.setdefault("exports", {}).setdefault(fmt, {}).update(entries)
    from wae_toolkit.runs.folder import write_json

    write_json(out / MANIFEST, manifest)
    return ExportResult(out, [*written, out / MANIFEST], manifest)


# ---------------------------------------------------------------------------------------------
# checks


def _check_choice(what: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise UsageError(
            f"Unknown export {what} '{value}'.{did_you_mean(text, allowed)} "
            f"Allowed: {', '.join(allowed)}."
        )
    return text


def _require_onnx() -> None:
    """Refuse early, before anything is written, when the ONNX packages are missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError(f"The ONNX export {_ONNX_EXTRA}.") from None


@dataclass
class _DataInfo:
    sample_shape: tuple[int, ...]
    value_range: tuple[float, float] | None
    record: dict[str, Any]


def _data_info(model: Any, run_dir: Path | None, sample_shape: Any) -> _DataInfo:
    """The sample shape and value range from the run's config.json, or from ``sample_shape``."""
    given = None
    if sample_shape is not None:
        try:
            given = tuple(int(s) for s in sample_shape)
        except (TypeError, ValueError):
            given = ()
        if not given or min(given) < 1:
            raise UsageError(
                f"sample_shape must be a tuple of positive integers; got {sample_shape!r}."
            )
    from wae_toolkit.runs.names import CONFIG
    from wae_toolkit.runs.read import read_run

    if run_dir is None or not (run_dir / CONFIG).is_file():
        if given is None:
            raise UsageError(
                "This model has no run folder to read its data's shape from; give sample_shape, "
                "the shape of one sample."
            )
        return _DataInfo(given, None, {})
    record = read_run(run_dir).record
    shape = tuple(record["data"]["sample_shape"])
    if given is not None and given != shape:
        raise UsageError(
            f"sample_shape {given} differs from the run's samples, which have shape {shape}."
        )
    vr = record["data"].get("value_range")
    return _DataInfo(shape, None if vr is None else (float(vr[0]), float(vr[1])), record)


def _fingerprint(model: Any) -> str:
    """SHA-256 of the model's weights: which weights an export folder holds."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _start_manifest(
    out: Path, overwrite: bool, names: dict[str, str], fingerprint: str
) -> dict[str, Any]:
    """The manifest to extend: the folder's own when it describes the same weights, else a new
    one. Refuses (without ``overwrite``) files that exist and a manifest of other weights."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"The output path '{out}' is a file; give a folder for --out.")
    existing = [n for n in names.values() if (out / n).exists()]
    if existing and not overwrite:
        raise UsageError(
            f"'{out}' already holds {' and '.join(existing)}; choose another --out or pass "
            "--overwrite to replace them."
        )
    from wae_toolkit.runs.read import read_json_object

    path = out / MANIFEST
    if not path.exists():
        return {}
    old, _ = read_json_object(path)  # None when damaged: a manifest of other weights
    same = (
        isinstance(old, dict)
        and old.get("wae_export") == _MANIFEST_VERSION
        and old.get("weights_sha256") == fingerprint
        and isinstance(old.get("exports"), dict)
    )
    if same:
        assert isinstance(old, dict)
        return old
    if not overwrite:
        raise UsageError(
            f"'{path}' does not describe an export of these weights; choose another --out or "
            "pass --overwrite to replace it."
        )
    return {}


# ---------------------------------------------------------------------------------------------
# the exported modules


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


def _outputs(part: str, gaussian: bool) -> list[str]:
    if part == "decoder":
        return ["x_hat"]
    return ["mean", "log_var"] if gaussian else ["z"]


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


# ---------------------------------------------------------------------------------------------
# export.json


def _entry(
    fmt: str, part: str, file: str, gaussian: bool, info: _DataInfo, latent_dim: int
) -> dict[str, Any]:
    import torch

    from wae_toolkit._version import __version__

    shape = list(info.sample_shape)
    if part == "encoder":
        inputs = [{"name": "x", "shape": ["batch", *shape], "dtype": "float32"}]
        outputs = [
            {"name": n, "shape": ["batch", latent_dim], "dtype": "float32"}
            for n in _outputs(part, gaussian)
        ]
    else:
        inputs = [{"name": "z", "shape": ["batch", latent_dim], "dtype": "float32"}]
        outputs = [{"name": "x_hat", "shape": ["batch", *shape], "dtype": "float32"}]
    entry: dict[str, Any] = {
        "file": file,
        "inputs": inputs,
        "outputs": outputs,
        "wae_toolkit": __version__,
        "torch": torch.__version__,
    }
    if fmt == "onnx":
        import onnx
        import onnxruntime

        entry["opset"] = ONNX_OPSET
        entry["onnx"] = onnx.__version__
        entry["checked_with_onnxruntime"] = onnxruntime.__version__
    entry["checked_batch_sizes"] = list(CHECK_BATCHES)
    entry["tolerance"] = {"atol": ATOL, "rtol": RTOL}
    return entry


def _header(model: Any, run_dir: Path | None, info: _DataInfo, fingerprint: str) -> dict[str, Any]:
    from wae_toolkit.assembly.components import decoder_output_for

    record = info.record
    data = record.get("data", {})
    plugins = record.get("plugins", {})
    prior = plugins.get("prior", {})
    if model.gaussian:
        encoder = (
            "gaussian: outputs mean and log_var; mean is model.encode(x, sample=False), a random "
            "code is mean + exp(log_var / 2) * eps with eps ~ N(0, I); log_var is clipped to "
            "[-20, 5] as in the model"
        )
    else:
        encoder = "deterministic: output z is model.encode(x)"
    vr = info.value_range
    return {
        "wae_export": _MANIFEST_VERSION,
        "run": None if run_dir is None else str(run_dir.resolve()),
        "weights_sha256": fingerprint,
        "latent_dim": model.latent_dim,
        "encoder": encoder,
        "decoder": (
            "output x_hat is model.decode(z), in the data's space "
            f"({record.get('decoder_output') or decoder_output_for(vr)} output layer)"
        ),
        "data": {
            "name": data.get("name"),
            "description": data.get("description"),
            "sample_shape": list(info.sample_shape),
            "value_range": None if vr is None else list(vr),
            "options": record.get("run", {}).get("data_opts", {}),
            "input": (
                "float32 samples shaped and scaled as wae-toolkit loads the run's data, within "
                "value_range (image files: channels first, C x H x W, pixel / 255, then 2x - 1 "
                "with the data option scale=symmetric)"
            ),
        },
        "prior": {"name": prior.get("name"), "options": prior.get("options", {})},
    }
