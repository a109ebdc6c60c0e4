"""Loading a checkpoint into modules, optimizers, generators and schedulers, in place."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wae_toolkit.engine.checkpoint.format import (
    _PARAM_SHAPED_STATE,
    InvalidCheckpointError,
    Stateful,
    _decode,
    _invalid,
    _read,
)
from wae_toolkit.errors import UsageError, WaeError, short_repr


def _listing(names: list[str] | set[str], limit: int = 4) -> str:
    """Names from a file, quoted for a one-line message (control characters escaped)."""
    items = sorted(names)
    shown = ", ".join(short_repr(str(n), 40) for n in items[:limit])
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
