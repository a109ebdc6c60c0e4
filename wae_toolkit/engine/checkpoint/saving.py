"""Writing a checkpoint atomically, and keeping the newest ones."""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wae_toolkit._version import __version__
from wae_toolkit.engine.checkpoint.format import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEY,
    CheckpointError,
    InvalidCheckpointError,
    Stateful,
    _check_name,
    _encode,
    _read_document,
    _to_storable,
)
from wae_toolkit.engine.checkpoint.listing import (
    list_checkpoints,
)
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.names import _TMP_RE, checkpoint_path, step_of
from wae_toolkit.runs.safe_io import (
    RunWriteError,
    make_folder,
    write_atomic,
)


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
    optim_doc = {name: _optimizer_doc(name, opt, tensors) for name, opt in optimizers.items()}
    gen_doc: dict[str, Any] = {}
    for name, gen in generators.items():
        _check_name("generator", name)
        tensors[f"generator.{name}"] = _to_storable(gen.get_state())
        gen_doc[name] = {"device": str(gen.device)}
    sched_doc: dict[str, Any] = {}
    for name, sched in schedulers.items():
        _check_name("scheduler", name)
        sched_doc[name] = _encode(sched.state_dict(), f"sched.{name}", tensors, f"scheduler {name}")
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
        "rng": _rng_doc(tensors),
        "extra": _encode(dict(extra), "extra", tensors, "extra"),
    }
    text = json.dumps(doc, allow_nan=True)
    try:
        return save(tensors, metadata={METADATA_KEY: text})
    except Exception as exc:  # safetensors raises its own error types (e.g. for a dtype)
        raise CheckpointError(f"Cannot serialise the checkpoint of step {step}: {exc}.") from exc


def _optimizer_doc(
    name: str, opt: torch.optim.Optimizer | None, tensors: dict[str, Tensor]
) -> dict[str, Any] | None:
    """An optimizer's ``param_groups`` and state as JSON, its tensors added to ``tensors``."""
    _check_name("optimizer", name)
    if opt is None:
        return None
    sd = opt.state_dict()
    state = {
        str(idx): {
            str(k): _encode(v, f"optim.{name}.state.{idx}.{k}", tensors, f"optimizer {name}")
            for k, v in entries.items()
        }
        for idx, entries in sd["state"].items()
    }
    groups = _encode(sd["param_groups"], f"optim.{name}.group", tensors, f"optimizer {name}")
    return {"param_groups": groups, "state": state}


def _rng_doc(tensors: dict[str, Tensor]) -> dict[str, Any]:
    """The global random generators' states (torch's and CUDA's into ``tensors``)."""
    tensors["rng.torch"] = _to_storable(torch.get_rng_state())
    n_cuda = 0
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = _to_storable(cuda_state)
            n_cuda += 1
    py_state = random.getstate()
    return {
        "cuda_devices": n_cuda,
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": _numpy_state(),
    }


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
    final = _write(Path(run_dir), step, data)
    try:
        _prune(run_dir, final, keep)
    except OSError as exc:  # the new checkpoint is in place: cleaning up is not worth failing
        warnings.warn(
            f"Could not delete old checkpoints in '{final.parent}': {exc}.",
            RuntimeWarning,
            stacklevel=2,
        )
    return final


def _write(run_dir: Path, step: int, data: bytes) -> Path:
    """Write ``data`` as the checkpoint of ``step`` atomically; files of higher steps (an
    abandoned continuation) are deleted just before it is renamed into place."""
    final = checkpoint_path(run_dir, step)
    what = f"the checkpoint of step {step} to '{final}'"
    try:
        make_folder(final.parent, what)
    except RunWriteError as exc:
        raise CheckpointError(str(exc)) from exc

    def drop_abandoned() -> None:  # an abandoned continuation must not shadow the new file
        for path in list_checkpoints(run_dir):
            s = step_of(path)
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
    oldest_kept = step_of(kept[-1]) if kept else step_of(newest)
    assert oldest_kept is not None
    doomed = [p for p in paths if (step_of(p) or 0) < oldest_kept]
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
