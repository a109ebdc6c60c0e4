"""Loading a run folder's model back: :func:`load_run`.

Plugins are resolved by name through the registry, weights are read from safetensors and checked
to be finite; nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wae_toolkit.errors import PluginVersionWarning, UsageError, setting, setting_name, short_repr
from wae_toolkit.runs.files import UnreadableFile, check_plain_file
from wae_toolkit.runs.names import WEIGHT_FILES, WEIGHTS
from wae_toolkit.runs.read import RunFolder, read_run

__all__ = ["LoadedRun", "load_run", "PluginMissingWarning", "TRAINING_ONLY"]


class PluginMissingWarning(PluginVersionWarning):
    """A saved run is loaded without its cost or penalty, which are not installed: its model
    serves for sampling, encoding and export, not for evaluation or training."""


#: The plugins only training and evaluation use: a run whose cost or penalty is not installed
#: still loads, for sampling, encoding and export (:func:`load_run` says so in a warning).
TRAINING_ONLY = ("cost", "penalty")


def _check_plugins(path: Path, recorded: dict[str, Any]) -> list[str]:
    """Refuse a run whose prior or network is not installed, and return the kinds among
    :data:`TRAINING_ONLY` that are not (saying so in a warning); warn when a plugin's provider
    changed."""
    import warnings

    from wae_toolkit.errors import UnknownPluginError
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
    absent: list[str] = []
    for kind, rec in recorded.items():
        name, dist, version = rec.get("name"), rec.get("distribution"), rec.get("version")
        now = found[kind]
        if now is None and kind in TRAINING_ONLY:
            uses = "evaluating it (wae eval) and resuming" if kind == "cost" else "resuming"
            warnings.warn(
                f"The run '{path}' was trained with the {kind} '{name}' from {dist} {version}, "
                f"which is not installed: its model is loaded for sampling, encoding and "
                f"export, but {uses} its training need{'' if kind == 'cost' else 's'} the "
                f"{kind} (pip install {dist}=={version}).",
                PluginMissingWarning,
                stacklevel=3,
            )
            absent.append(kind)
            continue
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
    return absent


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
            f"damaged, so its model cannot be used; train it again (a lower {setting('lr')} or "
            f"{setting('lam')} usually helps) or use an earlier checkpoint of it."
        )


def _no_weights(path: Path, which: str) -> str:
    if which == "last":
        return f"The run folder '{path}' has no {WEIGHTS}; the run did not finish."
    if which == "raw":
        return (
            f"The run folder '{path}' has no {WEIGHT_FILES['raw']}: it was trained without "
            f"{setting_name('ema')}, so its {WEIGHTS} holds the raw weights; load it with "
            "which='last'."
        )
    return (
        f"The run folder '{path}' has no {WEIGHT_FILES['best']}: it was written by a version "
        "without best weights, or it stopped before its first held-out evaluation."
    )


def _build(
    config: Any,
    shape: tuple[int, ...],
    value_range: tuple[float, float] | None,
    absent: list[str],
    path: Path,
    recorded: dict[str, Any],
) -> Any:
    """The run's components; the ``absent`` cost or penalty (not installed) replaced by a
    stand-in that says what to install when it is called."""
    import dataclasses

    from wae_toolkit.assembly.components import build_components
    from wae_toolkit.plugins.registry import in_process_plugins
    from wae_toolkit.runs.absent import STAND_INS, unavailable

    with in_process_plugins({k: STAND_INS[k] for k in absent}) as names:
        swap: dict[str, Any] = {k: names[k] for k in absent}
        swap |= {f"{k}_opts": {} for k in absent}
        comps = build_components(dataclasses.replace(config, **swap), shape, value_range)
    for kind in absent:
        getattr(comps, kind).reason = unavailable(path, kind, recorded.get(kind, {}))
    return comps


def load_run(
    run_dir: str | Path | RunFolder, device: str = "cpu", which: str = "last"
) -> LoadedRun:
    """Load a run folder written by :func:`wae_toolkit.train`.

    Plugins are resolved by name through the registry (so they must be installed); weights are
    read from safetensors; nothing is unpickled. A run whose cost or penalty is not installed
    loads all the same, for sampling, encoding and export: a :class:`PluginMissingWarning` says
    so, and calling the missing plugin (``cost``, ``penalty``) raises a ``UsageError`` saying
    what to install.

    Args:
        run_dir: the run folder (or the :class:`~wae_toolkit.runs.read.RunFolder` reading it).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``, checked as ``--device`` is.
        which: ``last`` (``model.safetensors``: the weights the run ended with, their moving
            average when it had ``ema``), ``best`` (``best.safetensors``, the best held-out
            evaluation of its ``monitor``) or ``raw`` (with ``ema``, the last step's own weights).

    Raises:
        UsageError: one sentence: a device that is not available, not a run folder, a damaged
            ``config.json`` or ``model.safetensors``, weights holding NaN or infinite values (a
            run that diverged), a prior or network that is not installed.
    """
    from safetensors.torch import load_file

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
    absent = _check_plugins(path, record.get("plugins", {}))
    comps = _build(config, shape, value_range, absent, path, record.get("plugins", {}))
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
        if "penalty" not in absent:  # a stand-in has none of the penalty's weights (a critic's)
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
