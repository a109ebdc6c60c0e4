"""The Python API for notebooks and scripts: :func:`fit` a WAE, :func:`load` a run.

Both mirror the command line::

    import wae_toolkit as wt

    model = wt.fit(penalty="mmd-imq", epochs=50, out="runs/nb-1")     # like `wae run ...`
    model = wt.fit("exp.toml", seed=2)                                # a config file + overrides
    model = wt.fit(preset="digits-gan", penalty_opts={"hidden": 64})
    model = wt.load("runs/nb-1")                                      # like `wae eval` loads it
    model = wt.fit(penalty=MyPenalty(beta=2.0), prior=wt.builtins.priors.GaussianPrior)

    z = model.encode(x)              # codes (B, D): a draw for a Gaussian encoder; x may be a
                                     # NumPy array or a tensor of any float dtype
    x_hat = model.decode(z)          # (B, *S)
    model.reconstruct(x); model.sample(16); model.interpolate(x0, x1, steps=8)

The returned model is the trained :class:`~wae_toolkit.assembly.model.WAE` (a
``torch.nn.Module``) in eval mode, with ``model.run_dir`` naming its run folder and
``model.summary`` its final metrics.

Plugins are given by name (installed plugins, as on the command line), or as Python objects: a
class implementing the kind's interface (built with the ``*_opts`` options), or an instance
(used as it is; its options are recorded). A class that is an installed plugin is recorded under
its plugin name, so the run folder repeats from the command line; any other class is recorded as
``"module:QualifiedName"`` and must be given again to :func:`load`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wae_toolkit.assembly.model import WAE
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.callbacks import Callback, RunResult
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.registry import KINDS, interface_class

__all__ = ["train", "fit", "load"]


def train(
    config: RunConfig,
    callback: Any = None,
    sources: dict[str, str] | None = None,
    resume: bool = False,
) -> RunResult:
    """Train a WAE as ``config`` says and write its run folder; what ``wae run`` calls.

    Everything is validated (configuration, plugins and their options, data, network shape,
    output folder and its free space) before anything is written. ``sources`` (from
    :func:`wae_toolkit.config.presets.resolve_config`) says where each value came from and is
    recorded in ``config.json``. ``callback`` is a :class:`~wae_toolkit.Callback` (or an object
    with some of its methods); it may stop the run early with ``request_stop``.

    With ``config.track``, the run is also logged to the trackers it names (by the process that
    writes the run folder; see :mod:`wae_toolkit.trackers`).

    A checkpoint is written every ``config.checkpoint_every`` steps, at the end, and when SIGINT
    or SIGTERM arrives (training then stops after the current step). With ``resume=True`` the
    run in ``config.out`` continues from its newest checkpoint: on CPU with the same settings it
    ends with the same parameters and metrics as a run that was never interrupted.

    Returns:
        a :class:`~wae_toolkit.RunResult` with the run folder, the summary and the trained model.

    Raises:
        UsageError: bad configuration, plugin name or option, data, or output folder, or nothing
            to resume.
        NonFiniteError: a loss or gradient became NaN or infinite (more than
            ``config.skip_bad_steps`` times); the last checkpoint is kept.
        TrainingInterrupted: SIGINT or SIGTERM; a checkpoint of the last step was written.
    """
    import torch

    from wae_toolkit.engine.callbacks import as_callback
    from wae_toolkit.engine.distributed import launched_rank
    from wae_toolkit.engine.loop import run_training
    from wae_toolkit.signals import StopSignals

    config.validate(build=False)  # the plugins are built once, by the engine
    callbacks = [cb] if (cb := as_callback(callback)) is not None else []
    if config.track and launched_rank() == 0:  # only the process writing the run folder tracks
        from wae_toolkit.trackers import with_trackers

        try:
            callbacks = [with_trackers(callbacks[0] if callbacks else Callback(), config)]
        except BaseException as exc:
            for c in callbacks:
                c.on_error(exc)
            raise
    previous_threads = torch.get_num_threads()
    backends = torch.backends
    previous = (
        backends.cudnn.benchmark,
        backends.cuda.matmul.allow_tf32,
        backends.cudnn.allow_tf32,
    )
    try:
        with StopSignals() as signals:
            return run_training(config, callbacks, sources, resume, signals)
    finally:
        torch.set_num_threads(previous_threads)
        backends.cudnn.benchmark = previous[0]  # the engine's CUDA settings (engine/setup.py)
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = previous[1:]


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
        callback: a :class:`wae_toolkit.Callback` to follow (or stop) training.
        settings: run settings by name, as in :class:`RunConfig` (``lam`` or ``lambda``,
            ``penalty_opts={...}``...); they override the file and the preset. ``cost``,
            ``penalty``, ``prior`` and ``network`` also take a plugin class or instance.

    Returns:
        the trained model in eval mode, with ``run_dir`` and ``summary`` attributes.

    Raises:
        UsageError: a bad setting (one sentence per problem), as on the command line; a
            sentence that names a setting to change names it as given here (``out=``,
            ``overwrite=True``), not by its command-line flag.
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

    if isinstance(config, RunConfig):
        if preset is not None:
            raise UsageError("fit() takes a RunConfig or a preset, not both.")
        defaults = RunConfig().to_dict()
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        base = {  # the data themselves, not config.json's record of them
            k: v for k, v in values.items() if k in ("data", "test") or v != defaults[k]
        }
        base = {k: v for k, v in base.items() if not (k == "test" and v is None)}
        if isinstance(base.get("data"), str) and base["data"] == defaults["data"]:
            del base["data"]
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


def load(run_dir: str | Path, device: str = "cpu", which: str = "last", **plugins: Any) -> WAE:
    """The trained model of a run folder, in eval mode on ``device`` (nothing is unpickled).

    Args:
        run_dir: a folder written by ``wae run`` or :func:`fit`.
        device: where the model goes (``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``).
        which: ``"last"`` (the weights the run ended with: their moving average with ``ema``),
            ``"best"`` (the best held-out evaluation of the run's ``monitor``,
            ``best.safetensors``) or ``"raw"`` (with ``ema``, the last step's own weights).
        plugins: the classes (or instances) the run was trained with that are not installed
            plugins, by kind (``prior=MyPrior``, ``network=...``); the run's ``config.json``
            names them ``"module:QualifiedName"``.

    Returns:
        the model, with ``run_dir`` and ``summary`` (the run's ``summary.json``; empty when the
        run has none, or when it cannot be read or is not a JSON object: then a
        :class:`~wae_toolkit.runs.read.RunFileWarning` says so, and the model is loaded all the
        same).

    Raises:
        UsageError: one sentence: a device that is not available, not a run folder, a damaged
            ``config.json`` or ``model.safetensors``, weights holding NaN or infinite values (a
            run that diverged), plugins that are not installed.
    """
    import warnings

    from wae_toolkit.runs.names import SUMMARY
    from wae_toolkit.runs.read import RunFileWarning, file_problem, read_run
    from wae_toolkit.runs.restore import load_run

    wrong = sorted(k for k, v in plugins.items() if k not in KINDS or isinstance(v, str))
    if wrong:
        raise UsageError(
            "load() takes the classes (or instances) of the plugins that are not installed, as "
            f"cost=, penalty=, prior= or network=; got {', '.join(wrong)}."
        )
    classes, objects = _plugin_objects(dict(plugins))
    folder = read_run(run_dir)
    with _using(classes, objects):
        loaded = load_run(folder, device=device, which=which)
    if folder.summary_problem is not None:
        warnings.warn(
            f"{file_problem(repr(str(folder.path / SUMMARY)), folder.summary_problem)}; "
            "model.summary is empty.",
            RunFileWarning,
            stacklevel=2,
        )
    return _finish(loaded.model, folder.path, folder.summary or {})


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
    from wae_toolkit.assembly.components import given_plugins
    from wae_toolkit.plugins.registry import in_process_plugins

    with in_process_plugins(classes) as names, given_plugins(objects):
        yield names
