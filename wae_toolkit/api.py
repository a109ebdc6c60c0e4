"""The Python API for notebooks and scripts: :func:`fit` a WAE, :func:`load` a run.

Both mirror the command line::

    import wae_toolkit as wt

    model = wt.fit(penalty="mmd-imq", epochs=50, out="runs/nb-1")     # like `wae run ...`
    model = wt.fit("exp.toml", seed=2)                                # a config file + overrides
    model = wt.fit(preset="digits-gan", penalty_opts={"hidden": 64})
    model = wt.load("runs/nb-1")                                      # like `wae eval` loads it
    model = wt.fit(penalty=MyPenalty(beta=2.0), prior=wt.builtins.priors.GaussianPrior)

    z = model.encode(x)              # codes (B, D): a draw for a Gaussian encoder
    x_hat = model.decode(z)          # (B, *S)
    model.reconstruct(x); model.sample(16); model.interpolate(x0, x1, steps=8)

The returned model is the trained :class:`~wae_toolkit.build.model.WAE` (a ``torch.nn.Module``) in
eval
mode, with ``model.run_dir`` naming its run folder and ``model.summary`` its final metrics.

Plugins are given by name (installed plugins, as on the command line), or as Python objects: a
class implementing the kind's interface (built with the ``*_opts`` options), or an instance
(used as it is; its options are recorded). A class that is an installed plugin is recorded under
its plugin name, so the run folder repeats from the command line; any other class is recorded as
``"module:QualifiedName"`` and must be given again to :func:`load`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wae_toolkit.build.model import WAE
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.registry import KINDS, interface_class

__all__ = ["fit", "load"]


def fit(
    config: RunConfig | str | Path | None = None,
    *,
    preset: str | None = None,
    callback: Any = None,
    **settings: Any,
) -> WAE:
    """Train a WAE and return it, as ``wae run`` would.

    Args:
        config: a :class:`RunConfig`, or the path of a configuration file (TOML/JSON/YAML, or a
            run's ``config.json`` to repeat it), or None for the defaults.
        preset: a preset's name (below the file and the keyword settings).
        callback: a :class:`wae_toolkit.engine.loop.Callback` to follow training.
        settings: run settings by name, as in :class:`RunConfig` (``lam`` or ``lambda``,
            ``penalty_opts={...}``...); they override the file and the preset. ``cost``,
            ``penalty``, ``prior`` and ``network`` also take a plugin class or instance.

    Returns:
        the trained model in eval mode, with ``run_dir`` and ``summary`` attributes.

    Raises:
        UsageError: a bad setting (one sentence per problem), as on the command line.
    """
    if "lambda" in settings:
        settings["lam"] = settings.pop("lambda")
    classes, objects = _plugin_objects(settings)
    with _using(classes, objects) as names:
        settings.update(names)
        return _fit(config, preset, callback, settings)


def _fit(
    config: RunConfig | str | Path | None,
    preset: str | None,
    callback: Any,
    settings: dict[str, Any],
) -> WAE:
    from wae_toolkit.config.presets import resolve_config
    from wae_toolkit.engine.loop import train

    if isinstance(config, RunConfig):
        if preset is not None:
            raise UsageError("fit() takes a RunConfig or a preset, not both.")
        defaults = RunConfig().to_dict()
        base = {k: v for k, v in config.to_dict().items() if v != defaults[k]}
        run_config, sources = resolve_config(None, {**base, **settings})
    elif config is None or isinstance(config, str | Path):
        run_config, sources = resolve_config(
            preset, settings, None if config is None else str(config)
        )
    else:
        raise UsageError(
            f"fit() takes a RunConfig, a configuration file's path or None; got "
            f"{type(config).__name__}."
        )
    result = train(run_config, callback=callback, sources=sources)
    return _finish(result.model, result.run_dir, result.summary)


def load(run_dir: str | Path, device: str = "cpu", **plugins: Any) -> WAE:
    """The trained model of a run folder, in eval mode on ``device`` (nothing is unpickled).

    Args:
        run_dir: a folder written by ``wae run`` or :func:`fit`.
        device: where the model goes (``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``).
        plugins: the classes (or instances) the run was trained with that are not installed
            plugins, by kind (``prior=MyPrior``, ``network=...``); the run's ``config.json``
            names them ``"module:QualifiedName"``.

    Returns:
        the model, with ``run_dir`` and ``summary`` (the run's ``summary.json``; empty when the
        run has none, or when it cannot be read or is not a JSON object: then a
        :class:`~wae_toolkit.runs.folder.RunFileWarning` says so, and the model is loaded all the
        same).

    Raises:
        UsageError: one sentence: a device that is not available, not a run folder, a damaged
            ``config.json`` or ``model.safetensors``, weights holding NaN or infinite values (a
            run that diverged), plugins that are not installed.
    """
    import warnings

    from wae_toolkit.runs.folder import (
        SUMMARY,
        RunFileWarning,
        file_problem,
        load_run,
        read_json_object,
    )

    wrong = sorted(k for k, v in plugins.items() if k not in KINDS or isinstance(v, str))
    if wrong:
        raise UsageError(
            "load() takes the classes (or instances) of the plugins that are not installed, as "
            f"cost=, penalty=, prior= or network=; got {', '.join(wrong)}."
        )
    classes, objects = _plugin_objects(dict(plugins))
    with _using(classes, objects):
        loaded = load_run(run_dir, device=device)
    summary, why = read_json_object(Path(run_dir) / SUMMARY)
    if why is not None:
        warnings.warn(
            f"{file_problem(repr(str(Path(run_dir) / SUMMARY)), why)}; model.summary is empty.",
            RunFileWarning,
            stacklevel=2,
        )
    return _finish(loaded.model, Path(run_dir), summary or {})


def _finish(model: WAE, run_dir: Path, summary: dict[str, Any]) -> WAE:
    model.eval()
    model.run_dir = Path(run_dir)
    model.summary = dict(summary)
    return model


def _plugin_objects(settings: dict[str, Any]) -> tuple[dict[str, type], dict[str, Any]]:
    """Take the plugin classes and instances out of ``settings`` (``kind -> class``, ``kind ->
    instance``); an instance's options go to ``<kind>_opts`` (a prior's dimension to
    ``latent_dim`` when that is not set). Names (text) and ``None`` stay where they are."""
    from wae_toolkit.plugins.options import resolved_options

    classes: dict[str, type] = {}
    objects: dict[str, Any] = {}
    for kind in KINDS:
        iface = interface_class(kind)
        value = settings.get(kind)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, type) and issubclass(value, iface):
            classes[kind] = value
        elif isinstance(value, iface):
            if settings.get(f"{kind}_opts"):
                raise UsageError(
                    f"Got a {kind} object and {kind}_opts; give the options to the object's "
                    "constructor, or give its class with the options."
                )
            classes[kind], objects[kind] = type(value), value
            options = resolved_options(value)
            if kind == "prior":
                dim = options.pop("dim", None)
                if settings.get("latent_dim") is None and isinstance(dim, int):
                    settings["latent_dim"] = dim
            settings[f"{kind}_opts"] = options
        else:
            what = f"the class {value.__qualname__}" if isinstance(value, type) else repr(value)
            raise UsageError(
                f"The {kind} must be a plugin name, a subclass of {iface.__name__} or an "
                f"instance of one; got {what[:80]}."
            )
        del settings[kind]
    return classes, objects


@contextlib.contextmanager
def _using(classes: dict[str, type], objects: dict[str, Any]) -> Iterator[dict[str, str]]:
    """The plugin classes findable by name and the objects used as they are; yields the names
    (``kind -> name``) the configuration records."""
    from wae_toolkit.build.components import given_plugins
    from wae_toolkit.plugins.registry import in_process_plugins

    with in_process_plugins(classes) as names, given_plugins(objects):
        yield names
