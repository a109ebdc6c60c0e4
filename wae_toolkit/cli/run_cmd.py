"""``wae run``: train a WAE and write its run folder.

The run settings' options are not written here: every field of
:class:`~wae_toolkit.config.settings.RunConfig` declares its own (help, flags, parsing) and
:mod:`wae_toolkit.cli.run_options` turns them into Typer options. This module adds the options
that are not run settings (``--config``, ``--preset``, ``--nproc``, ``--resume``, ``--verbose``),
builds the command's signature from both, and runs: one process, several under torchrun, or a
resumed run. Registered by :mod:`wae_toolkit.cli.app`; torch is imported only when training.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

import typer
from rich.console import Console

from wae_toolkit.cli.run_options import Completer, FieldOption, field_options, given_settings
from wae_toolkit.cli.shared import STATE
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError

__all__ = ["run_command"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _preset_names(incomplete: str) -> list[str]:
    from wae_toolkit.config.presets import PRESETS

    return [n for n in PRESETS if n.startswith(incomplete)]


def _own_options(
    config_file: str = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="Settings from a TOML/JSON/YAML file (or a run's config.json to repeat it); flags "
        "override it. See 'wae config show'.",
    ),
    preset: str = typer.Option(
        None,
        help="Start from a named setup (the paper's mnist-mmd, celeba-gan, ... or digits-*); "
        "other flags override it. See 'wae presets list'.",
        autocompletion=_preset_names,
    ),
    nproc: int = typer.Option(
        None,
        "--nproc",
        help="Train with N processes (one per GPU, or CPU processes) through torchrun; "
        "--batch-size is the global batch. \\[default: 1]",
    ),
    resume: str = typer.Option(
        None,
        "--resume",
        metavar="RUN_DIR",
        help="Continue the run in RUN_DIR from its newest checkpoint, with its saved settings.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks on errors."),
) -> None:
    """The options of ``wae run`` that are no run setting (only the signature is used)."""


#: Where those options stand among the settings' in ``wae run --help``: these two first, the
#: ones listed here just before the named setting, the others (``--verbose``) last.
_FIRST = ("config_file", "preset")
_BEFORE = {"compile": ("nproc", "resume")}


def run_command(complete: Mapping[str, Completer]) -> Callable[..., None]:
    """The ``wae run`` command function: the options of :func:`_own_options` and one per
    :class:`~wae_toolkit.config.settings.RunConfig` field (its metadata), as its signature.

    Args:
        complete: the completion functions the settings name (a plugin kind, ``trackers``).
    """
    fields = field_options(RunConfig, complete)
    own = dict(inspect.signature(_own_options, eval_str=True).parameters)
    clash = sorted(own.keys() & {f.name for f in fields})
    if clash:
        raise TypeError(f"run settings named like the other options of 'wae run': {clash}")
    flags = {f.name: f.flag for f in fields}

    def run(**options: Any) -> None:
        """Train a Wasserstein Auto-Encoder and write its run folder (weights, metrics, figures).

        Example: [bold]wae run --cost l2 --penalty mmd-imq --prior gaussian[/bold]
        """
        STATE["verbose"] = options["verbose"] or STATE["verbose"]
        given = given_settings(options, fields)
        _run(
            given,
            flags,
            options["config_file"],
            options["preset"],
            options["nproc"],
            options["resume"],
        )

    params = _parameters(own, fields)
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    )
    return run


def _parameters(
    own: dict[str, inspect.Parameter], fields: list[FieldOption]
) -> list[inspect.Parameter]:
    """The command's parameters in the order of ``wae run --help``."""
    names = {f.name for f in fields}
    before = {setting: own_names for setting, own_names in _BEFORE.items() if setting in names}
    anchored = {n for own_names in before.values() for n in own_names}
    params = [own[n] for n in _FIRST]
    for f in fields:
        params += [own[n] for n in before.get(f.name, ())]
        params.append(f.parameter)
    return params + [p for n, p in own.items() if n not in _FIRST and n not in anchored]


def _run(
    given: dict[str, Any],
    flags: dict[str, str],
    config_file: str | None,
    preset: str | None,
    nproc: int | None,
    resume: str | None,
) -> None:
    """Train, train under torchrun (``--nproc N``) or resume (``--resume``)."""
    from wae_toolkit.config.presets import resolve_config

    if nproc is not None:
        _check_nproc(nproc, given.get("device"))
    launch = nproc is not None and nproc > 1 and not os.environ.get("WORLD_SIZE")
    if resume is not None:
        _resume(resume, preset, given, flags, nproc if launch else None, config_file)
        return
    # Every usage error comes here, once, before any process starts.
    config, sources = resolve_config(preset, given, config_file)
    if launch:
        _launch(int(nproc or 1))
    _train_and_report(config, sources=sources)


def _check_nproc(nproc: int, device: str | None) -> None:
    """``--nproc``: at least 1; at most one process per GPU on CUDA, or per CPU core on CPU."""
    if nproc < 1:
        raise UsageError(f"--nproc must be an integer >= 1; got {nproc}.")
    if nproc == 1 or os.environ.get("WORLD_SIZE"):
        return
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and (device or "auto").startswith(("auto", "cuda")):
        if nproc > gpus:
            raise UsageError(
                f"--nproc {nproc} asks for more processes than this machine has GPUs ({gpus}); "
                f"multi-process training runs one process per GPU, so use at most {gpus}."
            )
        return
    cores = max(2, os.cpu_count() or 1)
    if nproc > cores:
        raise UsageError(
            f"--nproc {nproc} asks for more processes than this machine has CPU cores ({cores}); "
            f"on CPU use at most {cores} (one process per core; on a GPU machine, one per GPU)."
        )


def _train_and_report(config: Any, **kwargs: Any) -> None:
    """Train with a progress display and print the summary; quiet on ranks other than 0."""
    from wae_toolkit.api import train
    from wae_toolkit.cli.progress import make_progress, print_summary
    from wae_toolkit.engine.callbacks import Callback

    if int(os.environ.get("RANK", "0") or 0) > 0:
        train(config, callback=Callback(), **kwargs)
        return
    progress = make_progress(out, err)  # a live line in a terminal, else a line per evaluation
    try:
        result = train(config, callback=progress, **kwargs)
    finally:
        progress.stop()
    print_summary(out, result)
    _print_tracking(config.track, result.run_dir)


def _print_tracking(track: list[str], run_dir: Any) -> None:
    """Where the trackers logged the run, and the command that shows it."""
    from wae_toolkit.runs.names import TENSORBOARD_DIR, WANDB_DIR
    from wae_toolkit.runs.read import read_run

    saved = read_run(run_dir).tracking
    lines = []
    if "mlflow" in track and isinstance(saved.get("mlflow"), dict):
        entry = saved["mlflow"]
        uri = str(entry.get("tracking_uri", ""))
        see = (
            uri
            if uri.startswith(("http://", "https://"))
            else f"mlflow ui --backend-store-uri {uri}"
        )
        lines.append(
            f"MLflow: run {entry.get('run_id')} of the experiment '{entry.get('experiment')}'; "
            f"see it with: {see}"
        )
    if "tensorboard" in track:
        lines.append(
            f"TensorBoard: {run_dir / TENSORBOARD_DIR}; see every run with: tensorboard --logdir "
            f"{run_dir.parent}"
        )
    if "wandb" in track and isinstance(saved.get("wandb"), dict):
        entry = saved["wandb"]
        where = f"run {entry.get('run_id')} of the project '{entry.get('project')}'"
        if entry.get("mode") == "offline":
            where += f", offline; upload it with: wandb sync {run_dir / WANDB_DIR}/offline-run-*"
        lines.append(f"W&B: {where}")
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


#: torchrun's own report once a worker failed (a traceback of the launcher): not shown, the
#: worker already printed its error.
_TORCHRUN_FAILURE = re.compile(rb"torch/distributed/elastic/.*(failed \(exitcode|SignalException)")
_TORCHRUN_BANNER = (b"*****", b"Setting OMP_NUM_THREADS")


def _launch(nproc: int) -> None:
    """``wae run --nproc N``: start the same command under torchrun with N processes.

    The workers' output passes through; torchrun's banner and its traceback when a worker fails
    (the worker has printed its own one-line error) are left out. Exits with torchrun's code.
    """
    import subprocess

    args, skip = [], False
    for a in STATE["argv"]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), "-m", "wae_toolkit", *args]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    # A session of its own, so that Ctrl-C reaches the workers once, passed on by torchrun.
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, start_new_session=True)
    assert proc.stderr is not None
    forwarded: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        proc.send_signal(signum)  # torchrun passes it to every worker: they checkpoint and stop

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    silent = False
    try:
        for piece in iter(lambda: _read_piece(proc.stderr), b""):
            silent = silent or bool(_TORCHRUN_FAILURE.search(piece))
            if not silent and not piece.lstrip().startswith(_TORCHRUN_BANNER):
                sys.stderr.buffer.write(piece)
                sys.stderr.buffer.flush()
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if forwarded:
        code = 128 + forwarded[0]
    elif code and not silent:
        err.print(f"[red]Error:[/red] a training process failed (exit code {code}).")
    sys.exit(code)


def _read_piece(stream: Any) -> bytes:
    """One line of ``stream``, ending at a newline or a carriage return (progress bars)."""
    out = bytearray()
    while True:
        ch = stream.read(1)
        if not ch:
            return bytes(out)
        out += ch
        if ch in (b"\n", b"\r"):
            return bytes(out)


#: The settings a resumed run may change (with --nproc): where it runs, not what it trains, and
#: a larger number of epochs (to continue a finished or stopped run further).
_RESUME_MAY_CHANGE = ("threads", "device", "epochs")


def _resume(
    run_dir: str,
    preset: str | None,
    given: dict[str, Any],
    flags: dict[str, str],
    nproc: int | None = None,
    config_file: str | None = None,
) -> None:
    """``wae run --resume RUN_DIR``: the saved settings, the newest checkpoint."""
    from wae_toolkit.runs.folder import read_run_config

    extra = [flags[k] for k in sorted(given) if k not in _RESUME_MAY_CHANGE]
    extra += ["--preset"] * (preset is not None) + ["--config"] * (config_file is not None)
    if extra:
        raise UsageError(
            f"--resume continues a run with its saved settings; drop {', '.join(extra)} "
            "(only --threads, --device, --nproc and a larger --epochs may change)."
        )
    saved = read_run_config(run_dir)
    keep: dict[str, Any] = {k: given[k] for k in _RESUME_MAY_CHANGE if k in given}
    config = RunConfig.from_dict({**saved, "out": run_dir, "overwrite": False, **keep})
    config.validate(build=False)  # the run builds its plugins once
    if nproc is not None:
        _launch(nproc)
    _train_and_report(config, resume=True)
