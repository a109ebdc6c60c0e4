"""The export formats and parts, their settings and the result of an export."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError, did_you_mean

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
ATOL = 1e-4


RTOL = 1e-4


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


def _outputs(part: str, gaussian: bool) -> list[str]:
    if part == "decoder":
        return ["x_hat"]
    return ["mean", "log_var"] if gaussian else ["z"]
