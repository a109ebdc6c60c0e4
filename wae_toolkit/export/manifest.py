"""``export.json``: what an exported model's files hold and where they came from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError
from wae_toolkit.export.formats import (
    _MANIFEST_VERSION,
    ATOL,
    CHECK_BATCHES,
    MANIFEST,
    ONNX_OPSET,
    RTOL,
    _DataInfo,
    _outputs,
)


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
