"""Checkpoints for resumable training: one safetensors file per checkpoint, written atomically.

A run folder keeps its checkpoints in a ``checkpoints`` subfolder::

    RUN_DIR/checkpoints/step-00001234.safetensors

Each file holds *everything* needed to continue at that step, so that a checkpoint is either
complete or absent:

- tensors: every module's ``state_dict`` (``module.<name>.<key>``), every optimizer's state
  tensors (``optim.<name>.state.<index>.<key>``), the global torch RNG state (``rng.torch``), the
  CUDA RNG states when CUDA is initialised (``rng.cuda.<device>``), every named
  ``torch.Generator``'s state (``generator.<name>``), the state tensors of schedulers
  (``sched.<name>.<path>``) and the tensors inside the caller's ``extra`` (``extra.<path>``);
- one JSON document in the safetensors metadata header (under :data:`METADATA_KEY`): the step,
  the optimizers' ``param_groups`` and non-tensor state, the schedulers' state, the Python
  ``random`` and NumPy global RNG states, versions, and the caller's ``extra``. Tensors inside
  that JSON are replaced by references to the tensors above, so nothing is ever pickled.

Writing: the file is serialised in memory, written to a hidden temporary file in the same folder
(``.step-00001234.safetensors.<pid>.<random>.tmp``), flushed and fsynced, renamed over its final
name with :func:`os.replace`, and the folder is fsynced. A process killed at any moment therefore
leaves the previous checkpoints and at most one hidden temporary file, which
:func:`list_checkpoints` never lists and the next :func:`save_checkpoint` removes. Older
checkpoints are deleted only once the new one is in place.

Reading: the header is parsed by this module (pure Python, bounded sizes), checked to be a
wae-toolkit checkpoint whose data exactly covers the file, and only then are the tensors decoded
by safetensors. ``torch.load`` and ``pickle`` are never used, so a pickle renamed to a
checkpoint's name is refused without running anything in it.

The library never prints: failures raise :class:`CheckpointError` (the file could not be written)
or :class:`InvalidCheckpointError` (the file is not a wae-toolkit checkpoint, or does not fit the
objects it is loaded into).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

import torch
from torch import Tensor, nn

from wae_toolkit import __version__
from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.memory import format_bytes
from wae_toolkit.runs.safe_io import (
    RunWriteError,
    make_folder,
    write_atomic,
    write_error,
)

__all__ = [
    "CHECKPOINT_DIR",
    "METADATA_KEY",
    "CheckpointError",
    "InvalidCheckpointError",
    "Stateful",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "newest_checkpoint",
    "read_document",
    "CheckpointSkippedWarning",
    "is_checkpoint_file_name",
    "save_checkpoint",
    "load_checkpoint",
    "estimate_checkpoint_bytes",
    "check_writable",
]

#: The run folder's subfolder that holds the checkpoints.
CHECKPOINT_DIR = "checkpoints"
#: The safetensors metadata key under which the checkpoint's JSON document is stored.
METADATA_KEY = "wae_toolkit.engine.checkpoint"
FORMAT = "wae-toolkit-checkpoint"
FORMAT_VERSION = 1

_NAME_RE = re.compile(r"^step-(\d+)\.safetensors$")
_TMP_RE = re.compile(r"^\.step-\d+\.safetensors\.[^/]*\.tmp$")
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


# -- file names -----------------------------------------------------------------------------------


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """The file of the checkpoint of ``step``: ``RUN_DIR/checkpoints/step-00001234.safetensors``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.safetensors"


def _step_of(path: Path) -> int | None:
    match = _NAME_RE.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The files named like checkpoints in ``RUN_DIR/checkpoints``, oldest step first.

    Temporary files of an interrupted write are hidden (their names start with a dot and end in
    ``.tmp``) and never listed. The files are not opened: use :func:`latest_checkpoint` for the
    newest one that is valid.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for path in folder.iterdir():
        step = _step_of(path)
        if step is not None and path.is_file() and not path.is_symlink():  # never a user's link
            found.append((step, path))
    return [p for _, p in sorted(found)]


def is_checkpoint_file_name(name: str) -> bool:
    """Whether ``name`` is a checkpoint's file name or one of its temporary files."""
    return bool(_NAME_RE.match(name) or _TMP_RE.match(name))


def newest_checkpoint(run_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest *valid* checkpoint of the run folder (``None`` when there is none), and the
    newer files that were skipped, each with the reason (cut short, damaged, not a checkpoint).

    Only headers are read, never the tensors, and nothing is unpickled.
    """
    skipped: list[tuple[Path, str]] = []
    try:
        paths = list_checkpoints(run_dir)
    except OSError:
        return None, skipped
    for path in reversed(paths):
        try:
            _read_document(path)
        except InvalidCheckpointError as exc:
            skipped.append((path, str(exc).partition(": ")[2].rstrip(".") or str(exc)))
            continue
        except OSError as exc:
            skipped.append((path, f"it cannot be read ({exc.strerror or exc})"))
            continue
        return path, skipped
    return None, skipped


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest *valid* checkpoint of the run folder, or ``None`` when there is none.

    Files are tried from the highest step down; one whose header is not a complete wae-toolkit
    checkpoint (cut short, damaged, or another kind of file under a checkpoint's name) is
    skipped, so a damaged newest file falls back to the previous checkpoint
    (:func:`newest_checkpoint` also says which files were skipped and why). Atomic writes never
    leave such a file; only damage from outside the toolkit does. The check reads the header
    only, never the tensors, and unpickles nothing; it never raises.
    """
    return newest_checkpoint(run_dir)[0]


def step_of(path: Path) -> int | None:
    """The step a checkpoint's file name says, or ``None`` for another name."""
    return _step_of(path)


# -- encoding JSON values and tensors --------------------------------------------------------------


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


# -- writing ---------------------------------------------------------------------------------------


def _serialise(
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer | None],
    generators: Mapping[str, torch.Generator],
    schedulers: Mapping[str, Stateful],
    extra: Mapping[str, Any],
) -> bytes:
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    for name, module in modules.items():
        _check_name("module", name)
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = _to_storable(value)
    optim_doc: dict[str, Any] = {}
    for name, opt in optimizers.items():
        _check_name("optimizer", name)
        if opt is None:
            optim_doc[name] = None
            continue
        sd = opt.state_dict()
        state = {
            str(idx): {
                str(k): _encode(v, f"optim.{name}.state.{idx}.{k}", tensors, f"optimizer {name}")
                for k, v in entries.items()
            }
            for idx, entries in sd["state"].items()
        }
        groups = _encode(sd["param_groups"], f"optim.{name}.group", tensors, f"optimizer {name}")
        optim_doc[name] = {"param_groups": groups, "state": state}
    gen_doc: dict[str, Any] = {}
    for name, gen in generators.items():
        _check_name("generator", name)
        tensors[f"generator.{name}"] = _to_storable(gen.get_state())
        gen_doc[name] = {"device": str(gen.device)}
    sched_doc: dict[str, Any] = {}
    for name, sched in schedulers.items():
        _check_name("scheduler", name)
        sched_doc[name] = _encode(sched.state_dict(), f"sched.{name}", tensors, f"scheduler {name}")
    tensors["rng.torch"] = _to_storable(torch.get_rng_state())
    n_cuda = 0
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = _to_storable(cuda_state)
            n_cuda += 1
    py_state = random.getstate()
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "step": step,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wae_toolkit_version": __version__,
        "torch_version": torch.__version__,
        "modules": sorted(modules),
        "optimizers": optim_doc,
        "generators": gen_doc,
        "schedulers": sched_doc,
        "rng": {
            "cuda_devices": n_cuda,
            "python": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy": _numpy_state(),
        },
        "extra": _encode(dict(extra), "extra", tensors, "extra"),
    }
    text = json.dumps(doc, allow_nan=True)
    try:
        return save(tensors, metadata={METADATA_KEY: text})
    except Exception as exc:  # safetensors raises its own error types (e.g. for a dtype)
        raise CheckpointError(f"Cannot serialise the checkpoint of step {step}: {exc}.") from exc


def _numpy_state() -> list[Any] | None:
    import numpy as np

    state = np.random.get_state()
    if not isinstance(state, tuple) or state[0] != "MT19937":
        return None
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer | None] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    schedulers: Mapping[str, Stateful] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write the checkpoint of ``step`` atomically and keep the newest ``keep`` checkpoints.

    Args:
        run_dir: the run folder; checkpoints go to its ``checkpoints`` subfolder (created).
        step: the number of optimizer steps taken; names the file.
        modules: modules whose ``state_dict`` is saved (the model with its prior, the penalty
            with its critic).
        optimizers: optimizers whose state is saved; ``None`` for one not created yet (e.g. a
            critic's optimizer before the first critic step).
        generators: ``torch.Generator`` objects whose state is saved (e.g. ``eval_gen``).
        schedulers: LR schedulers or other :class:`Stateful` objects.
        extra: JSON values and tensors to save with it (epoch, position in the epoch, the
            epoch's permutation, ...); :func:`load_checkpoint` returns them. ``"step"`` is
            reserved.
        keep: how many checkpoints to keep (>= 1).

    The global RNG states (torch, CUDA when initialised, Python ``random``, NumPy) are always
    saved. Names must not contain dots. Checkpoint files of a *higher* step than ``step`` belong
    to a continuation that was abandoned (the run was resumed from an earlier checkpoint); they
    are deleted just before the new file is renamed into place, so they can never shadow it.
    Leftover temporary files of interrupted writes are removed afterwards. Only one process may
    write checkpoints into a run folder at a time.

    Returns:
        the path of the new checkpoint.

    Raises:
        CheckpointError: the file could not be written (disk full, folder not writable); its
            temporary file is removed and the previous checkpoints are left intact.
        UsageError: ``keep`` < 1, a name has a dot, or ``extra`` holds something other than JSON
            values and tensors.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise UsageError(f"keep must be an integer >= 1; got {keep!r}.")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UsageError(f"step must be an integer >= 0; got {step!r}.")
    extra = dict(extra or {})
    if "step" in extra:
        raise UsageError("extra may not hold the key 'step': the checkpoint records it already.")
    data = _serialise(step, modules, optimizers or {}, generators or {}, schedulers or {}, extra)

    final = checkpoint_path(run_dir, step)
    folder = final.parent
    what = f"the checkpoint of step {step} to '{final}'"
    try:
        make_folder(folder, what)
    except RunWriteError as exc:
        raise CheckpointError(str(exc)) from exc

    def drop_abandoned() -> None:  # an abandoned continuation must not shadow the new file
        for path in list_checkpoints(run_dir):
            s = _step_of(path)
            if s is not None and s > step:
                path.unlink(missing_ok=True)

    try:
        write_atomic(final, data, what, before_replace=drop_abandoned)
    except RunWriteError as exc:
        try:
            intact = bool(list_checkpoints(run_dir))
        except OSError:
            intact = False
        after = " The previous checkpoints are left intact." if intact else ""
        raise CheckpointError(f"{exc}{after}") from exc.__cause__
    try:
        _prune(run_dir, final, keep)
    except OSError as exc:  # the new checkpoint is in place: cleaning up is not worth failing
        warnings.warn(
            f"Could not delete old checkpoints in '{folder}': {exc}.", RuntimeWarning, stacklevel=2
        )
    return final


def _prune(run_dir: str | Path, newest: Path, keep: int) -> None:
    """Delete checkpoints older than the newest ``keep`` valid ones, and stale temporary files."""
    paths = list_checkpoints(run_dir)
    kept: list[Path] = []  # the newest valid checkpoints, newest first
    for path in reversed(paths):
        if len(kept) == keep:
            break
        if path != newest:
            try:
                _read_document(path)
            except (InvalidCheckpointError, OSError):
                continue
        kept.append(path)
    oldest_kept = _step_of(kept[-1]) if kept else _step_of(newest)
    assert oldest_kept is not None
    doomed = [p for p in paths if (_step_of(p) or 0) < oldest_kept]
    folder = newest.parent
    doomed += [p for p in folder.iterdir() if _TMP_RE.match(p.name) and p.is_file()]
    failed = []
    for path in doomed:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            failed.append(f"'{path.name}' ({exc.strerror or exc})")
    if failed:
        warnings.warn(
            f"Could not delete old checkpoint files in '{folder}': {', '.join(failed)}.",
            RuntimeWarning,
            stacklevel=3,
        )


# -- reading ---------------------------------------------------------------------------------------


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


def _listing(names: list[str] | set[str], limit: int = 4) -> str:
    items = sorted(names)
    shown = ", ".join(f"'{n}'" for n in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _check_names(
    kind: str, path: Path, saved: set[str], given: set[str], strict: bool, hint: str = ""
) -> None:
    missing = given - saved
    if missing:
        raise InvalidCheckpointError(
            f"The checkpoint '{path}' holds no {kind} named {_listing(missing)} (it holds "
            f"{_listing(saved) or 'none'}); it was written by another configuration.{hint}"
        )
    if strict and saved - given:
        raise UsageError(
            f"The checkpoint '{path}' also holds the {kind} {_listing(saved - given)}, which "
            f"were not given to load_checkpoint; pass them, or strict=False to ignore them."
        )


def _load_module(path: Path, name: str, module: nn.Module, sd: dict[str, Tensor]) -> None:
    current = module.state_dict()
    differ = [
        f"'{k}' is {tuple(v.shape)} {v.dtype} in the checkpoint but "
        f"{tuple(current[k].shape)} {current[k].dtype} here"
        for k, v in sd.items()
        if k in current and (v.shape != current[k].shape or v.dtype != current[k].dtype)
    ]
    if differ:
        raise InvalidCheckpointError(
            f"The checkpoint '{path}' does not fit the {name}: {'; '.join(differ[:3])}"
            f"{' ...' if len(differ) > 3 else ''}. It was written by another configuration."
        )
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        current = module.state_dict()
        missing = set(current) - set(sd)
        unexpected = set(sd) - set(current)
        parts = []
        if missing:
            parts.append(f"it lacks {_listing(missing)}")
        if unexpected:
            parts.append(f"it has {_listing(unexpected)}, which the {name} does not")
        why = "; ".join(parts) or str(exc).splitlines()[0]
        raise InvalidCheckpointError(
            f"The checkpoint '{path}' does not fit the {name}: {why}. It was written by another "
            "configuration."
        ) from None


def _load_optimizer(
    path: Path, name: str, opt: torch.optim.Optimizer, entry: dict[str, Any], tensors: Any
) -> None:
    groups = _decode(entry["param_groups"], tensors, path)
    state = {
        int(idx): {k: _decode(v, tensors, path) for k, v in values.items()}
        for idx, values in entry["state"].items()
    }
    if len(groups) != len(opt.param_groups) or any(
        len(g["params"]) != len(h["params"]) for g, h in zip(groups, opt.param_groups, strict=True)
    ):
        saved = [len(g["params"]) for g in groups]
        here = [len(g["params"]) for g in opt.param_groups]
        raise InvalidCheckpointError(
            f"The checkpoint '{path}' does not fit the optimizer '{name}': it has parameter "
            f"groups of {saved} parameters, the optimizer {here}. It was written by another "
            "configuration."
        )
    params = [p for g in opt.param_groups for p in g["params"]]
    saved_ids = [i for g in groups for i in g["params"]]
    index = dict(zip(saved_ids, params, strict=True))
    for idx, values in state.items():
        param = index.get(idx)
        if param is None:
            raise _invalid(path, f"the optimizer '{name}' has state for an unknown parameter")
        for key, value in values.items():
            if key in _PARAM_SHAPED_STATE and isinstance(value, Tensor):
                if value.shape != param.shape:
                    raise InvalidCheckpointError(
                        f"The checkpoint '{path}' does not fit the optimizer '{name}': its "
                        f"'{key}' of parameter {idx} is {tuple(value.shape)}, the parameter "
                        f"{tuple(param.shape)}. It was written by another configuration."
                    )
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise InvalidCheckpointError(
            f"The checkpoint '{path}' does not fit the optimizer '{name}': {exc}."
        ) from None


def load_checkpoint(
    path: str | Path,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer | None] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    schedulers: Mapping[str, Stateful] | None = None,
    restore_rng: bool = True,
    strict: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` in place.

    Modules get their ``state_dict`` (tensors are copied to the modules' devices), optimizers
    their state and ``param_groups`` (moved to their parameters' devices), generators and
    schedulers their states, and, when ``restore_rng`` is true, the global RNGs (torch, CUDA for
    the devices present, Python ``random``, NumPy) theirs: the next random draws and optimizer
    steps are then exactly those that followed the save.

    An optimizer saved as ``None`` (not created yet) leaves the given optimizer as it is; one
    saved with state cannot be given as ``None``. Tensors in the returned ``extra`` values are on
    the CPU.

    Args:
        path: the checkpoint file (see :func:`latest_checkpoint`).
        modules, optimizers, generators, schedulers: the objects to restore, by the names they
            were saved under.
        restore_rng: restore the global RNG states too.
        strict: refuse a checkpoint that holds objects not given here.

    Returns:
        the ``extra`` dict given to :func:`save_checkpoint`, with ``"step"`` added.

    Raises:
        InvalidCheckpointError: ``path`` is not a wae-toolkit checkpoint (a pickle, a truncated
            file, random bytes; nothing in it is run), or it does not fit the given objects (its
            keys, shapes or dtypes differ). Objects restored before the misfit was found are left
            restored, so discard them after this error.
    """
    path = Path(path)
    optimizers = optimizers or {}
    generators = generators or {}
    schedulers = schedulers or {}
    try:
        doc, tensors = _read(path)
    except OSError as exc:
        raise InvalidCheckpointError(
            f"Cannot read the checkpoint '{path}': {exc.strerror or exc}."
        ) from None
    try:
        return _apply(
            path, doc, tensors, modules, optimizers, generators, schedulers, restore_rng, strict
        )
    except WaeError:
        raise
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        RecursionError,
        OverflowError,
    ) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise _invalid(path, f"its metadata is damaged ({type(exc).__name__}: {detail})") from None


def _apply(
    path: Path,
    doc: dict[str, Any],
    tensors: dict[str, Tensor],
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer | None],
    generators: Mapping[str, torch.Generator],
    schedulers: Mapping[str, Stateful],
    restore_rng: bool,
    strict: bool,
) -> dict[str, Any]:
    """Check that the checkpoint fits the objects, then restore them (see load_checkpoint)."""
    try:
        saved_modules = set(doc["modules"])
        saved_optim: dict[str, Any] = doc["optimizers"]
        saved_gens: dict[str, Any] = doc["generators"]
        saved_scheds: dict[str, Any] = doc["schedulers"]
        rng: dict[str, Any] = doc["rng"]
    except (KeyError, TypeError):
        raise _invalid(path, "its metadata lacks the objects' list") from None
    _check_names("module", path, saved_modules, set(modules), strict)
    _check_names("optimizer", path, set(saved_optim), set(optimizers), strict)
    _check_names("generator", path, set(saved_gens), set(generators), strict)
    _check_names("scheduler", path, set(saved_scheds), set(schedulers), strict)
    for name, gen in generators.items():
        state = tensors.get(f"generator.{name}")
        here = gen.get_state()
        if state is None or state.shape != here.shape or state.dtype != here.dtype:
            raise InvalidCheckpointError(
                f"The checkpoint '{path}' does not fit the generator '{name}': it was saved for "
                f"a generator on {saved_gens[name].get('device')}, this one is on {gen.device}."
            )
    for name, opt in optimizers.items():
        if opt is None and saved_optim[name] is not None:
            raise UsageError(
                f"The checkpoint '{path}' holds the state of the optimizer '{name}', which was "
                "given as None; create the optimizer before loading the checkpoint."
            )

    for name, module in modules.items():
        prefix = f"module.{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        _load_module(path, f"module '{name}'", module, sd)
    for name, opt in optimizers.items():
        if opt is not None and saved_optim[name] is not None:
            _load_optimizer(path, name, opt, saved_optim[name], tensors)
    for name, sched in schedulers.items():
        sched.load_state_dict(_decode(saved_scheds[name], tensors, path))
    for name, gen in generators.items():
        gen.set_state(tensors[f"generator.{name}"])
    if restore_rng:
        _restore_rng(path, rng, tensors)
    extra = _decode(doc.get("extra", {}), tensors, path)
    if not isinstance(extra, dict):
        raise _invalid(path, "its extra values are not a JSON object")
    return {**extra, "step": doc["step"]}


def _restore_rng(path: Path, rng: dict[str, Any], tensors: Mapping[str, Tensor]) -> None:
    state = tensors.get("rng.torch")
    if state is None:
        raise _invalid(path, "it holds no torch RNG state")
    torch.set_rng_state(state)
    n_cuda = int(rng.get("cuda_devices", 0))
    if n_cuda and torch.cuda.is_available():
        for i in range(min(n_cuda, torch.cuda.device_count())):
            torch.cuda.set_rng_state(tensors[f"rng.cuda.{i}"], i)
    py = rng.get("python")
    if py is not None:
        random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = rng.get("numpy")
    if np_state is not None:
        import numpy as np

        name, keys, pos, has_gauss, cached = np_state
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# -- preflight -------------------------------------------------------------------------------------


def estimate_checkpoint_bytes(
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer | None] | None = None,
) -> int:
    """About how many bytes one checkpoint of these objects takes.

    Module state is counted exactly; an optimizer's state is counted exactly once it has some,
    and before its first step as two tensors per parameter (Adam's moments). One MiB is added
    for the RNG states and the header.
    """
    total = _OVERHEAD_BYTES
    for module in modules.values():
        total += sum(t.numel() * t.element_size() for t in module.state_dict().values())
    for opt in (optimizers or {}).values():
        if opt is None:
            continue
        if opt.state:
            total += sum(
                v.numel() * v.element_size()
                for entries in opt.state.values()
                for v in entries.values()
                if isinstance(v, Tensor)
            )
        else:
            total += sum(
                2 * p.numel() * p.element_size() for g in opt.param_groups for p in g["params"]
            )
    return total


def check_writable(run_dir: str | Path, needed_bytes: int) -> None:
    """Check, before training, that checkpoints can be written to ``run_dir``.

    Nothing is left behind: the nearest existing folder on the way to ``RUN_DIR/checkpoints``
    gets a small temporary file, created and removed, and its disk must have ``needed_bytes``
    free. Give room for ``keep + 1`` checkpoints (the new one is written before the oldest is
    deleted), e.g. ``(keep + 1) * estimate_checkpoint_bytes(...)``.

    Raises:
        CheckpointError: the folder cannot be created or written, or the disk has less than
            ``needed_bytes`` free.
    """
    target = Path(run_dir) / CHECKPOINT_DIR
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    what = f"checkpoints to '{target}'"
    if not probe.is_dir():
        raise CheckpointError(
            f"Cannot write {what}: '{probe}' is a file, so the folder cannot be created; choose "
            "another --out."
        )
    test = probe / f".wae-write-test.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(test, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(exc, probe, what, cls=CheckpointError) from exc
    finally:
        try:
            test.unlink(missing_ok=True)
        except OSError:
            pass
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise CheckpointError(
            f"Cannot write {what}: the disk holding '{probe}' has {format_bytes(free)} free and "
            f"the checkpoints need about {format_bytes(needed_bytes)}; free some space, keep fewer "
            "checkpoints, or choose another --out."
        )
