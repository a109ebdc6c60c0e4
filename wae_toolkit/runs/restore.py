"""Loading a run folder's model back: :func:`load_run`.

Plugins are resolved by name through the registry, weights are read from safetensors and checked
to be finite; nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError, short_repr
from wae_toolkit.runs.files import UnreadableFile, check_plain_file
from wae_toolkit.runs.names import WEIGHT_FILES, WEIGHTS
from wae_toolkit.runs.read import RunFolder, read_run

__all__ = ["LoadedRun", "load_run"]


def _check_plugins(path: Path, recorded: dict[str, Any]) -> None:
    """Refuse a run whose plugins are not installed; warn when their provider changed."""
    import warnings

    from wae_toolkit.errors import PluginVersionWarning, UnknownPluginError
    from wae_toolkit.plugins.registry import IN_PROCESS, get_plugin_info

    found: dict[str, Any] = {}  # kind -> the plugin's metadata now, or None when not installed
    for kind, rec in recorded.items():
        try:
            found[kind] = get_plugin_info(kind, str(rec.get("name")))
        except UnknownPluginError:
            found[kind] = None
    given = {k: r.get("name") for k, r in recorded.items() if r.get("distribution") == IN_PROCESS}
    missing = [k for k in given if found[k] is None]
    if missing:
        raise UsageError(
            f"The run '{path}' was trained with classes given to wae_toolkit.fit() that are not "
            f"installed plugins ({', '.join(f'{k} {given[k]}' for k in missing)}); "
            f"load it from Python, giving them again: wae_toolkit.load(run, "
            f"{', '.join(f'{k}=...' for k in missing)})."
        )
    for kind, rec in recorded.items():
        name, dist, version = rec.get("name"), rec.get("distribution"), rec.get("version")
        now = found[kind]
        if now is None:
            raise UsageError(
                f"The run '{path}' uses the {kind} '{name}' from {dist} {version}, which is not "
                f"installed; install it (pip install {dist}=={version}) to load this run."
            )
        if (now.distribution, now.version) != (dist, version):
            warnings.warn(
                f"The run '{path}' was trained with the {kind} '{name}' from {dist} {version}; "
                f"it is now provided by {now.distribution} {now.version}, so results may differ.",
                PluginVersionWarning,
                stacklevel=3,
            )


@dataclass
class LoadedRun:
    """A run folder loaded back: its configuration, model and penalty, in eval mode on CPU."""

    path: Path
    config: Any  # RunConfig
    record: dict[str, Any]
    model: Any  # WAE
    penalty: Any  # LatentPenalty
    cost: Any  # Cost


def _check_finite(weights_path: Path, tensors: dict[str, Any]) -> None:
    """Refuse weights holding NaN or infinite values (a run that diverged, or a damaged file)."""
    import torch

    bad = sorted(
        k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    )
    if bad:
        raise UsageError(
            f"The weights in '{weights_path}' hold NaN or infinite values ({len(bad)} of "
            f"{len(tensors)} tensors, the first '{bad[0][:80]}'): the run diverged or the file was "
            "damaged, so its model cannot be used; train it again (a lower --lr or --lambda "
            "usually helps) or use an earlier checkpoint of it."
        )


def _no_weights(path: Path, which: str) -> str:
    if which == "last":
        return f"The run folder '{path}' has no {WEIGHTS}; the run did not finish."
    if which == "raw":
        return (
            f"The run folder '{path}' has no {WEIGHT_FILES['raw']}: it was trained without "
            f"--ema, so its {WEIGHTS} holds the raw weights; load it with which='last'."
        )
    return (
        f"The run folder '{path}' has no {WEIGHT_FILES['best']}: it was written by a version "
        "without best weights, or it stopped before its first held-out evaluation."
    )


def load_run(
    run_dir: str | Path | RunFolder, device: str = "cpu", which: str = "last"
) -> LoadedRun:
    """Load a run folder written by :func:`wae_toolkit.train`.

    Plugins are resolved by name through the registry (so they must be installed); weights are
    read from safetensors; nothing is unpickled.

    Args:
        run_dir: the run folder (or the :class:`~wae_toolkit.runs.read.RunFolder` reading it).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``, checked as ``--device`` is.
        which: ``last`` (``model.safetensors``: the weights the run ended with, their moving
            average when it had ``ema``), ``best`` (``best.safetensors``, the best held-out
            evaluation of its ``monitor``) or ``raw`` (with ``ema``, the last step's own weights).

    Raises:
        UsageError: one sentence: a device that is not available, not a run folder, a damaged
            ``config.json`` or ``model.safetensors``, weights holding NaN or infinite values (a
            run that diverged), plugins that are not installed.
    """
    from safetensors.torch import load_file

    from wae_toolkit.assembly.components import build_components
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.devices import resolve_device

    if which not in WEIGHT_FILES:
        raise UsageError(
            f"which must be one of {', '.join(WEIGHT_FILES)} (the weights to load); "
            f"got {short_repr(which)}."
        )
    dev = resolve_device(str(device))
    folder = run_dir if isinstance(run_dir, RunFolder) else read_run(run_dir)
    path, record = folder.path, folder.record
    settings = dict(record["run"])
    if isinstance(settings.get("data"), dict):  # data given in Python: recorded, not held
        settings["data"] = str(settings["data"].get("kind") or "data")
    config = RunConfig.from_dict(settings)
    shape = tuple(record["data"]["sample_shape"])
    vr = record["data"].get("value_range")
    value_range = None if vr is None else (float(vr[0]), float(vr[1]))
    _check_plugins(path, record.get("plugins", {}))
    comps = build_components(config, shape, value_range)
    weights_path = path / WEIGHT_FILES[which]
    try:
        check_plain_file(weights_path, limit=None)
    except FileNotFoundError:
        raise UsageError(_no_weights(path, which)) from None
    except UnreadableFile as exc:
        raise UsageError(
            f"Cannot read '{weights_path}' ({exc}); the run cannot be loaded."
        ) from None
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")[:200]
        raise UsageError(f"'{weights_path}' is not a valid safetensors file: {why}.") from None
    _check_finite(weights_path, tensors)
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    pen_sd = {k[8:]: v for k, v in tensors.items() if k.startswith("penalty.")}
    try:
        comps.model.load_state_dict(model_sd)
        comps.penalty.load_state_dict(pen_sd)
    except RuntimeError as exc:  # "Error(s) in loading state_dict for WAE:", then the problems
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or ["?"]
        detail = lines[min(1, len(lines) - 1)][:200].rstrip(".:, ")
        raise UsageError(
            f"The weights in '{weights_path}' do not fit the model its configuration describes "
            f"({detail}); they belong to another run."
        ) from None
    comps.model.to(dev).eval()
    comps.penalty.to(dev).eval()
    return LoadedRun(path, config, record, comps.model, comps.penalty, comps.cost)
