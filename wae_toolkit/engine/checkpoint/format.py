"""The checkpoint file format: names, errors, the JSON document's encoding, and reading and
checking a file's header (see :mod:`wae_toolkit.engine.checkpoint`)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from torch import Tensor

from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.runs.safe_io import (
    RunWriteError,
)

#: The safetensors metadata key under which the checkpoint's JSON document is stored.
METADATA_KEY = "wae_toolkit.checkpoint"  # the file format's key since 0.1: never renamed


FORMAT = "wae-toolkit-checkpoint"


FORMAT_VERSION = 1


#: safetensors refuses headers larger than this; so do we, before reading them.
_MAX_HEADER = 100_000_000


#: Room for the RNG states, the JSON document and the safetensors header.
_OVERHEAD_BYTES = 1 << 20


#: Optimizer state entries that have their parameter's shape (Adam, AdamW, SGD, RMSprop, ...).
_PARAM_SHAPED_STATE = frozenset(
    {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "acc_delta"}
)


#: The marker of encoded values in the JSON document (tensor references, tuples).
_TAG = "__wae__"


class CheckpointError(RunWriteError):
    """A checkpoint could not be written (no space left, folder not writable, ...)."""

    exit_code = 1


class InvalidCheckpointError(CheckpointError, UsageError):
    """A file is not a wae-toolkit checkpoint, or does not fit what it is loaded into."""

    exit_code = 2


class CheckpointSkippedWarning(UserWarning):
    """A damaged checkpoint file was skipped when a run was resumed (fewer steps are kept)."""


class Stateful(Protocol):
    """Anything with ``state_dict()`` and ``load_state_dict()`` (e.g. an LR scheduler).

    Its state must be made of JSON values (``None``, bools, numbers, strings, lists, tuples and
    dicts with string keys) and tensors.
    """

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


def _to_storable(t: Tensor) -> Tensor:
    """A contiguous CPU copy that shares storage with nothing (safetensors refuses sharing)."""
    return t.detach().to("cpu", copy=True).contiguous()


def _encode(value: Any, key: str, tensors: dict[str, Tensor], where: str) -> Any:
    """``value`` as JSON; tensors go into ``tensors`` under ``key`` (or a path below it)."""
    if isinstance(value, Tensor):
        name, i = key, 1
        while name in tensors:
            name, i = f"{key}~{i}", i + 1
        tensors[name] = _to_storable(value)
        return {_TAG: "tensor", "key": name}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        items = [_encode(v, f"{key}.{i}", tensors, f"{where}[{i}]") for i, v in enumerate(value)]
        return {_TAG: "tuple", "items": items}
    if isinstance(value, list):
        return [_encode(v, f"{key}.{i}", tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or k == _TAG:
                raise UsageError(
                    f"A checkpoint cannot store {where}: its key {k!r} is not allowed (keys must "
                    f"be strings other than {_TAG!r})."
                )
            out[k] = _encode(v, f"{key}.{k}", tensors, f"{where}[{k!r}]")
        return out
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item):  # NumPy scalars
        return _encode(item(), key, tensors, where)
    raise UsageError(
        f"A checkpoint cannot store {where}, a {type(value).__name__}: only JSON values "
        "(None, bools, numbers, strings, lists, tuples, dicts with string keys) and tensors can "
        "be stored, since checkpoints are never pickled."
    )


def _decode(value: Any, tensors: Mapping[str, Tensor], path: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, path) for v in value]
    if isinstance(value, dict):
        tag = value.get(_TAG)
        if tag == "tensor":
            key = value.get("key")
            if not isinstance(key, str) or key not in tensors:
                raise _invalid(path, f"it refers to a tensor {key!r} that it does not hold")
            return tensors[key]
        if tag == "tuple":
            return tuple(_decode(v, tensors, path) for v in value.get("items", []))
        return {k: _decode(v, tensors, path) for k, v in value.items()}
    return value


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise UsageError(f"The {kind} name {name!r} must be a non-empty string without dots.")


def _invalid(path: Path, why: str) -> InvalidCheckpointError:
    return InvalidCheckpointError(f"'{path}' is not a wae-toolkit checkpoint: {why}.")


def _parse_header(fh: IO[bytes], size: int, path: Path) -> dict[str, Any]:
    """Parse and check the safetensors header of a checkpoint; return its JSON document.

    Raises:
        InvalidCheckpointError: whatever is wrong with the header (never another error).
    """
    try:
        return _check_header(fh, size, path)
    except WaeError:
        raise
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError, MemoryError) as exc:
        raise _invalid(path, f"its header is damaged ({type(exc).__name__})") from None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_header(fh: IO[bytes], size: int, path: Path) -> dict[str, Any]:
    if size < 8:
        raise _invalid(path, "it is empty or cut short")
    n = int.from_bytes(fh.read(8), "little")
    if n < 2 or n > _MAX_HEADER or 8 + n > size:
        raise _invalid(path, "it is not a safetensors file, or it was cut short")
    try:
        header = json.loads(fh.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _invalid(path, "its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _invalid(path, "its header is not a JSON object")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not isinstance(meta.get(METADATA_KEY), str):
        raise _invalid(path, "it is a safetensors file without a checkpoint's metadata")
    try:
        doc = json.loads(meta[METADATA_KEY])
    except (ValueError, RecursionError):
        raise _invalid(path, "its metadata is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _invalid(path, "its metadata does not describe a checkpoint")
    version = doc.get("version")
    if not isinstance(version, int) or not _is_count(version) or version > FORMAT_VERSION:
        shown = repr(version) if _is_count(version) else "that is not a number"
        raise _invalid(
            path,
            f"it has format version {shown[:20]} and this wae-toolkit reads up to "
            f"{FORMAT_VERSION}; upgrade wae-toolkit",
        )
    end = 0
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        offsets = spec.get("data_offsets") if isinstance(spec, dict) else None
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]
            and isinstance(spec.get("dtype"), str)
            and isinstance(shape, list)
            and all(_is_count(d) for d in shape)
        ):
            raise _invalid(path, f"the header entry {str(key)[:60]!r} is damaged")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise _invalid(path, f"it should be {8 + n + end} bytes long but is {size} (cut short?)")
    if not _is_count(doc.get("step")):
        raise _invalid(path, "its metadata has no step")
    for section in ("modules", "optimizers", "generators", "schedulers", "rng", "extra"):
        kind = list if section == "modules" else dict
        if section in doc and not isinstance(doc[section], kind):
            raise _invalid(path, f"its '{section}' metadata is damaged")
    return doc


def _read_document(path: Path) -> dict[str, Any]:
    """The JSON document of a checkpoint, reading its header only."""
    with open(path, "rb") as fh:
        return _parse_header(fh, os.fstat(fh.fileno()).st_size, path)


def read_document(path: str | Path) -> dict[str, Any]:
    """The JSON document of a checkpoint (step, versions, ``extra``...), from its header only.

    Raises:
        InvalidCheckpointError: the file cannot be read or is not a wae-toolkit checkpoint.
    """
    path = Path(path)
    try:
        return _read_document(path)
    except OSError as exc:
        raise InvalidCheckpointError(
            f"Cannot read the checkpoint '{path}': {exc.strerror or exc}."
        ) from None


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The document and the tensors of a checkpoint, from one read of the file."""
    from safetensors.torch import load

    if not path.is_file():
        raise InvalidCheckpointError(f"The checkpoint '{path}' does not exist.")
    data = path.read_bytes()
    doc = _parse_header(io.BytesIO(data), len(data), path)
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise _invalid(path, f"its tensors cannot be read ({exc})") from None
    return doc, tensors
