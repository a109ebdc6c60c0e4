"""The ``wae`` command line (Typer + rich).

Only this module prints. It imports torch and the plugins lazily, inside the commands that need
them, so ``wae --help`` and ``wae plugins list`` stay fast.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from wae_toolkit import __version__
from wae_toolkit.cli.eval_cmds import compare_command, eval_command
from wae_toolkit.cli.export_cmd import export_command
from wae_toolkit.cli.model_cmds import (
    encode_command,
    interpolate_command,
    reconstruct_command,
    runs_list_command,
    sample_command,
)
from wae_toolkit.cli.report_cmd import report_command
from wae_toolkit.errors import UsageError, WaeError, did_you_mean
from wae_toolkit.plugins.registry import KINDS, list_plugins, normalize_kind, plugin_names

app = typer.Typer(
    name="wae",
    help="Wasserstein Auto-Encoders: train, inspect plugins. Run 'wae COMMAND --help' for more.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
plugins_app = typer.Typer(help="List and inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
presets_app = typer.Typer(help="The paper's setups and small digits runs.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_STATE: dict[str, Any] = {"verbose": False, "argv": []}


def _completer(kind: str) -> Any:
    def complete(incomplete: str) -> list[str]:
        return [n for n in plugin_names(kind) if n.startswith(incomplete)]

    return complete


def _tracker_names(incomplete: str) -> list[str]:
    from wae_toolkit.config.settings import TRACKERS

    done, _, last = incomplete.rpartition(",")  # completes the last of comma-separated names
    return [f"{done},{n}" if done else n for n in TRACKERS if n.startswith(last)]


def _parse_track(items: list[str] | None) -> list[str] | None:
    """``--track`` values, repeated and/or comma-separated, in order, each once."""
    names = [n.strip().lower() for item in items or [] for n in item.split(",")]
    return list(dict.fromkeys(n for n in names if n)) or None


def _preset_names(incomplete: str) -> list[str]:
    from wae_toolkit.config.presets import PRESETS

    return [n for n in PRESETS if n.startswith(incomplete)]


def _version(value: bool) -> None:
    if value:
        out.print(f"wae-toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    builtins_only: bool = typer.Option(
        False,
        "--builtins-only",
        help="Use wae-toolkit's own plugins only (same as WAE_DISABLE_PLUGIN_AUTOLOAD=1).",
    ),
) -> None:
    _STATE["verbose"] = verbose or _STATE["verbose"]
    if builtins_only:
        from wae_toolkit.plugins.registry import AUTOLOAD_ENV

        os.environ[AUTOLOAD_ENV] = "1"


# ---------------------------------------------------------------------------------------------
# wae run

_OPT_HELP = "Option of the {0} plugin as NAME=VALUE; repeatable (see 'wae plugins show NAME')."
_HELP = {k: _OPT_HELP.format(k) for k in ("cost", "penalty", "prior", "network")}


@app.command()
def run(
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
        autocompletion=lambda incomplete: _preset_names(incomplete),
    ),
    cost: str = typer.Option(
        None, help="Reconstruction cost. \\[default: l2]", autocompletion=_completer("cost")
    ),
    penalty: str = typer.Option(
        None, help="Latent penalty D_Z. \\[default: mmd-imq]", autocompletion=_completer("penalty")
    ),
    prior: str = typer.Option(
        None, help="Prior P_Z. \\[default: gaussian]", autocompletion=_completer("prior")
    ),
    network: str = typer.Option(
        None,
        help="Encoder/decoder architecture. \\[default: mlp]",
        autocompletion=_completer("network"),
    ),
    data: str = typer.Option(
        None,
        help="Built-in data set (digits, swiss-roll, moons, ring) or a path: .npy/.npz, a "
        "folder of images, or a folder of MNIST IDX files. \\[default: digits]",
    ),
    cost_opt: list[str] = typer.Option(None, "--cost-opt", help=_HELP["cost"]),
    penalty_opt: list[str] = typer.Option(None, "--penalty-opt", help=_HELP["penalty"]),
    prior_opt: list[str] = typer.Option(None, "--prior-opt", help=_HELP["prior"]),
    network_opt: list[str] = typer.Option(None, "--network-opt", help=_HELP["network"]),
    data_opt: list[str] = typer.Option(
        None, "--data-opt", help="Option of the data source as NAME=VALUE (size, key, limit...)."
    ),
    latent_dim: int = typer.Option(
        None,
        "--latent-dim",
        "-d",
        help="Latent dimension D. \\[default: 8, or the data's size when smaller (2 for toy sets)]",
    ),
    encoder: str = typer.Option(
        None, help="Encoder kind: deterministic or gaussian. \\[default: deterministic]"
    ),
    lam: float = typer.Option(
        None, "--lambda", help="Weight of the latent penalty. \\[default: 10]"
    ),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Training epochs. \\[default: 300]"),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Batch size. \\[default: 100]"),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate. \\[default: 0.001]"),
    beta1: float = typer.Option(None, help="Adam beta1. \\[default: 0.5, the paper's]"),
    beta2: float = typer.Option(None, help="Adam beta2. \\[default: 0.999]"),
    lr_schedule: str = typer.Option(
        None,
        help="EPOCH:FACTOR,... learning-rate factors from given epochs (e.g. 30:0.5,50:0.1), or "
        "'none' for a constant rate. \\[default: the paper's proportions, lr/2 from 30% of the "
        "epochs and lr/10 from 50%]",
    ),
    seed: int = typer.Option(None, help="Random seed; same seed, same run on CPU. \\[default: 0]"),
    device: str = typer.Option(None, help="auto, cpu, cuda, cuda:N or mps. \\[default: auto]"),
    threads: int = typer.Option(
        None, help="CPU threads. \\[default: 1 for models under 1M parameters on CPU, else all]"
    ),
    out_dir: str = typer.Option(
        None, "--out", "-o", help="Run folder. \\[default: a new folder under runs/]"
    ),
    overwrite: bool = typer.Option(False, help="Replace the run already in --out."),
    log_every: int = typer.Option(None, help="Log step losses every N steps. \\[default: 10]"),
    eval_every: int = typer.Option(
        None, help="Evaluate on held-out data every N epochs. \\[default: 10]"
    ),
    input_noise: float = typer.Option(
        None, help="Std of Gaussian noise added to the encoder's input in training. \\[default: 0]"
    ),
    logvar_l1: float = typer.Option(
        None, help="L1 penalty weight on a Gaussian encoder's log-variances. \\[default: 0]"
    ),
    pretrain_steps: int = typer.Option(
        None,
        help="Encoder pre-training steps matching the codes' moments to the prior's. "
        "\\[default: 0]",
    ),
    checkpoint_every: int = typer.Option(
        None,
        help="Write a resumable checkpoint every N steps (also at the end and on Ctrl-C). "
        "\\[default: 500]",
    ),
    keep_checkpoints: int = typer.Option(
        None, help="How many of the newest checkpoints to keep. \\[default: 3]"
    ),
    skip_bad_steps: int = typer.Option(
        None,
        help="Steps with a NaN/infinite loss or gradient to skip before stopping. \\[default: 0]",
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
    compile_step: bool = typer.Option(
        None,
        "--compile/--no-compile",
        help="Compile the training step with torch.compile (slower start, faster steps). "
        "\\[default: no]",
    ),
    precision: str = typer.Option(
        None,
        help="fp32, or bf16 autocast for the networks (cost and penalty stay float32). "
        "\\[default: fp32]",
    ),
    track: list[str] = typer.Option(
        None,
        "--track",
        metavar="NAME",
        help="Log the run to mlflow or tensorboard; repeatable or comma-separated "
        "(docs/tracking.md). \\[default: none]",
        autocompletion=_tracker_names,
    ),
    tracking_uri: str = typer.Option(
        None,
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (sqlite:///f.db, or a path f.db; http://host:5000...). "
        "\\[default: sqlite:///RUNS/mlflow.db, beside the run folder]",
    ),
    experiment: str = typer.Option(
        None,
        "--experiment",
        metavar="NAME",
        help="MLflow experiment of the run, created when missing. \\[default: wae-toolkit]",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks on errors."),
) -> None:
    """Train a Wasserstein Auto-Encoder and write its run folder (weights, metrics, figures).

    Example: [bold]wae run --cost l2 --penalty mmd-imq --prior gaussian[/bold]
    """
    _STATE["verbose"] = verbose or _STATE["verbose"]
    from wae_toolkit.config.presets import resolve_config
    from wae_toolkit.config.settings import parse_schedule
    from wae_toolkit.plugins.options import parse_assignments

    values: dict[str, Any] = {
        "cost": cost,
        "penalty": penalty,
        "prior": prior,
        "network": network,
        "data": data,
        "cost_opts": parse_assignments(cost_opt, "--cost-opt"),
        "penalty_opts": parse_assignments(penalty_opt, "--penalty-opt"),
        "prior_opts": parse_assignments(prior_opt, "--prior-opt"),
        "network_opts": parse_assignments(network_opt, "--network-opt"),
        "data_opts": parse_assignments(data_opt, "--data-opt"),
        "latent_dim": latent_dim,
        "encoder": encoder,
        "lam": lam,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "seed": seed,
        "device": device,
        "threads": threads,
        "out": out_dir,
        "overwrite": overwrite or None,
        "log_every": log_every,
        "eval_every": eval_every,
        "input_noise": input_noise,
        "logvar_l1": logvar_l1,
        "pretrain_steps": pretrain_steps,
        "compile": compile_step,
        "precision": precision,
        "checkpoint_every": checkpoint_every,
        "keep_checkpoints": keep_checkpoints,
        "skip_bad_steps": skip_bad_steps,
        "track": _parse_track(track),
        "tracking_uri": tracking_uri,
        "experiment": experiment,
    }
    given = {k: v for k, v in values.items() if v is not None}
    if nproc is not None:
        _check_nproc(nproc, device)
    launch = nproc is not None and nproc > 1 and not os.environ.get("WORLD_SIZE")
    if resume is not None:
        _resume(resume, preset, given, lr_schedule, nproc if launch else None, config_file)
        return
    if launch:  # catch usage errors here, once, before starting the processes
        from wae_toolkit.config.presets import resolve_config as _resolve

        checked = dict(given)
        if lr_schedule is not None:
            checked["lr_schedule"] = parse_schedule(lr_schedule)
        _resolve(preset, checked, config_file)[0].validate()
        _launch(int(nproc or 1))
    if lr_schedule is not None:
        given["lr_schedule"] = parse_schedule(lr_schedule)  # None means the paper's proportions
    config, sources = resolve_config(preset, given, config_file)

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
    """Train with a progress bar and print the summary; quiet on ranks other than 0."""
    from wae_toolkit.cli.progress import RichProgress, print_summary
    from wae_toolkit.engine.loop import Callback, train

    if int(os.environ.get("RANK", "0") or 0) > 0:
        train(config, callback=Callback(), **kwargs)
        return
    progress = RichProgress(err)
    try:
        result = train(config, callback=progress, **kwargs)
    finally:
        progress.stop()
    print_summary(out, result)
    _print_tracking(config.track, result.run_dir)


def _print_tracking(track: list[str], run_dir: Any) -> None:
    """Where the trackers logged the run, and the command that shows it."""
    import json

    from wae_toolkit.trackers.base import TENSORBOARD_DIR, TRACKING_FILE

    if "mlflow" in track:
        saved = json.loads((run_dir / TRACKING_FILE).read_text(encoding="utf-8"))["mlflow"]
        uri = saved["tracking_uri"]
        see = (
            uri
            if uri.startswith(("http://", "https://"))
            else f"mlflow ui --backend-store-uri {uri}"
        )
        out.print(
            f"MLflow: run {saved['run_id']} of the experiment '{saved['experiment']}'; see it "
            f"with: {see}",
            markup=False,
            soft_wrap=True,
        )
    if "tensorboard" in track:
        out.print(
            f"TensorBoard: {run_dir / TENSORBOARD_DIR}; see every run with: tensorboard --logdir "
            f"{run_dir.parent}",
            markup=False,
            soft_wrap=True,
        )


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
    for a in _STATE["argv"]:
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


def _resume(
    run_dir: str,
    preset: str | None,
    given: dict[str, Any],
    schedule: str | None,
    nproc: int | None = None,
    config_file: str | None = None,
) -> None:
    """``wae run --resume RUN_DIR``: the saved settings, the newest checkpoint."""
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.runs.folder import read_run_config

    flag = {"lam": "--lambda", "out": "--out"}
    extra = [
        flag.get(
            k, "--" + k.removesuffix("_opts").replace("_", "-") + ("-opt" * k.endswith("_opts"))
        )
        for k, v in sorted(given.items())
        if k not in ("threads", "device") and v != {}
    ]
    extra += ["--preset"] * (preset is not None) + ["--lr-schedule"] * (schedule is not None)
    extra += ["--config"] * (config_file is not None)
    if extra:
        raise UsageError(
            f"--resume continues a run with its saved settings; drop {', '.join(extra)} "
            "(only --threads, --device and --nproc may change)."
        )
    saved = read_run_config(run_dir)
    keep: dict[str, Any] = {k: given[k] for k in ("threads", "device") if k in given}
    config = RunConfig.from_dict({**saved, "out": run_dir, "overwrite": False, **keep})
    config.validate()
    if nproc is not None:
        _launch(nproc)
    _train_and_report(config, resume=True)


# ---------------------------------------------------------------------------------------------
# wae plugins


@plugins_app.command("list")
def plugins_list(
    kind: str = typer.Option(None, "--kind", "-k", help=f"Only this kind: {', '.join(KINDS)}."),
    check: bool = typer.Option(
        False, "--check", help="Import each plugin and show ok or its error."
    ),
) -> None:
    """Table of installed plugins: kind, name, distribution, version, description.

    Reads installed metadata only; nothing is imported unless --check is given.
    """
    infos = list_plugins(kind)
    table = Table(title="wae-toolkit plugins", title_justify="left")
    for col in ("kind", "name", "distribution", "version", "description"):
        table.add_column(col, overflow="fold", no_wrap=col in ("kind", "name"))
    if check:
        table.add_column("status", overflow="fold")
    failures: list[str] = []
    for info in infos:
        dist = _escape(info.distribution)
        if info.clashes:
            dist += f" [yellow](also declared by {', '.join(info.clashes)})[/yellow]"
        row = [
            info.kind,
            f"[bold]{_escape(info.name)}[/bold]",
            dist,
            _escape(info.version),
            _escape(info.description),
        ]
        if check:
            from wae_toolkit.plugins.registry import get_plugin_class

            try:
                get_plugin_class(info.kind, info.name)
                row.append("[green]ok[/green]")
            except WaeError as exc:
                failures.append(f"[red]{info.kind} {info.name}:[/red] {_escape(str(exc))}")
                row.append("[red]failed[/red] (below)")
        table.add_row(*row)
    out.print(table)
    for line in failures:
        out.print(line, soft_wrap=True)
    if failures:
        raise typer.Exit(1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@plugins_app.command("show")
def plugins_show(
    name: str = typer.Argument(..., help="Plugin name, e.g. mmd-imq."),
    kind: str = typer.Option(None, "--kind", "-k", help="Kind, when the name exists in several."),
) -> None:
    """A plugin's documentation and its options with their types and defaults."""
    import inspect

    from wae_toolkit.errors import UnknownPluginError, did_you_mean
    from wae_toolkit.plugins.options import plugin_options
    from wae_toolkit.plugins.registry import get_plugin_class, get_plugin_info

    kinds = [normalize_kind(kind)] if kind else [k for k in KINDS if name in plugin_names(k)]
    if not kinds:
        every = sorted({n for k in KINDS for n in plugin_names(k)})
        raise UnknownPluginError(
            f"No plugin is named '{name}'.{did_you_mean(name, every)} "
            f"Available: {', '.join(every)}."
        )
    if len(kinds) > 1:
        raise WaeError(
            f"'{name}' names a plugin of several kinds ({', '.join(kinds)}); add --kind."
        )
    info = get_plugin_info(kinds[0], name)
    cls = get_plugin_class(kinds[0], name)
    out.print(
        f"{info.name} ({info.kind}) from {info.distribution} {info.version}: {info.target}",
        markup=False,
        soft_wrap=True,
    )
    doc = inspect.cleandoc(cls.__doc__ or "")
    body = doc.split("\nArgs:")[0].strip()
    out.print(body + "\n", markup=False, soft_wrap=True)
    table = Table(title="options", title_justify="left")
    for col in ("option", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for spec in plugin_options(cls):
        default = "(required)" if spec.required else repr(spec.default)
        if info.kind == "prior" and spec.name == "dim":
            default, help_ = "--latent-dim", "latent dimension, filled in by the toolkit"
        else:
            help_ = spec.help
        table.add_row(spec.name, _escape(spec.type_name), _escape(default), _escape(help_))
    out.print(table)
    flag = f"--{info.kind}-opt"
    out.print(
        f"Set options with {flag} NAME=VALUE, e.g. 'wae run --{info.kind} {name} {flag} ...'."
    )


@plugins_app.command("new")
def plugins_new(
    kind: str = typer.Argument(..., help=f"Plugin kind: {', '.join(KINDS)}."),
    name: str = typer.Argument(..., help="Plugin name in kebab-case, e.g. my-penalty."),
    directory: str = typer.Option(None, "--dir", help="Target folder. \\[default: wae-NAME]"),
) -> None:
    """Write a ready-to-install plugin package: pyproject with the entry point, a working class
    with its docstring contract, and a test that runs the conformance kit."""
    from wae_toolkit.plugins.scaffold import new_plugin, plugin_identifiers

    files = new_plugin(kind, name, directory)
    root = files[0].parent
    ids = plugin_identifiers(normalize_kind(kind), name)
    out.print(f"Wrote the {normalize_kind(kind)} plugin '{name}' ({ids['dist']}) in {root}:")
    for path in files:
        out.print(f"  {path}", markup=False)
    out.print(
        f"Next: pip install -e {root}  (on a CPU-only machine add -c constraints.txt), then "
        f"'wae plugins list' shows it and 'pytest {root / 'tests'}' runs its conformance test; "
        f"edit {files[3]} to make it yours.",
        markup=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------------------------
# wae presets


@presets_app.command("list")
def presets_list() -> None:
    """Table of presets: name, penalty, data, epochs and a description."""
    from wae_toolkit.config.presets import PRESETS

    table = Table(title="wae-toolkit presets (wae run --preset NAME)", title_justify="left")
    for col in ("preset", "penalty", "lambda", "data", "epochs", "description"):
        table.add_column(col, overflow="fold")
    for p in PRESETS.values():
        v = p.values
        data = "--data DIR (required)" if p.data_hint else str(v.get("data", "digits"))
        table.add_row(
            f"[bold]{p.name}[/bold]",
            str(v.get("penalty")),
            f"{v.get('lam'):g}",
            data,
            str(v.get("epochs")),
            _escape(p.description),
        )
    out.print(table)


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="Preset name, e.g. mnist-mmd.")) -> None:
    """Every value a preset sets."""
    from wae_toolkit.config.presets import get_preset

    p = get_preset(name)
    out.print(f"{p.name}: {p.description}", markup=False, soft_wrap=True)
    if p.data_hint:
        out.print(f"Needs --data DIR: {p.data_hint}.", markup=False, soft_wrap=True)
    table = Table(show_header=True)
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    for key, value in p.values.items():
        table.add_row(key, _escape(repr(value)))
    out.print(table)


config_app = typer.Typer(help="Run settings: files, presets, where each value comes from.")
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config_file: str = typer.Option(None, "--config", "-c", metavar="FILE", help="A file."),
    preset: str = typer.Option(None, help="A preset, below the file and --set."),
    assignments: list[str] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="A run setting, as a flag would give it."
    ),
) -> None:
    """The resolved run settings and where each comes from (default, preset, file, --set).

    Example: [bold]wae config show --config exp.toml --set epochs=5[/bold]
    """
    import typing

    from wae_toolkit.config.presets import resolve_config
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.plugins.options import convert, parse_assignments

    hints = typing.get_type_hints(RunConfig)
    given: dict[str, Any] = {}
    for key, text in parse_assignments(assignments, "--set").items():
        key = "lam" if key == "lambda" else key
        if key not in hints:
            raise UsageError(
                f"--set {key}: not a run setting.{did_you_mean(key, hints)} "
                "See 'wae run --help' or docs/configuration.md."
            )
        try:
            given[key] = convert(text, hints[key])
        except ValueError as exc:
            raise UsageError(f"--set {key}={text}: {exc}.") from None
    config, sources = resolve_config(preset, given, config_file)
    table = Table(show_header=True, title="run settings", title_justify="left")
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    table.add_column("from")
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            for k, v in value.items():
                table.add_row(f"{key}.{k}", _escape(repr(v)), sources.get(f"{key}.{k}", "default"))
            if not value:
                table.add_row(key, "{}", sources.get(key, "default"))
        else:
            table.add_row(key, _escape(repr(value)), sources.get(key, "default"))
    out.print(table)


app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("report")(report_command)
app.command("sample")(sample_command)
app.command("encode")(encode_command)
app.command("reconstruct")(reconstruct_command)
app.command("interpolate")(interpolate_command)
app.command("export")(export_command)
runs_app = typer.Typer(help="The run folders you have.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
runs_app.command("list")(runs_list_command)


# ---------------------------------------------------------------------------------------------


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """The toolkit's warnings as one yellow line each (``--verbose``: where they came from)."""
    where = f" ({filename}:{lineno})" if _STATE["verbose"] else ""
    for text in str(message).splitlines() or [category.__name__]:
        err.print(f"[yellow]Warning:[/yellow] {_escape(text)}{_escape(where)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``wae`` console script: one red line per error, exit 2 for usage."""
    args = sys.argv[1:] if argv is None else list(argv)
    _STATE["argv"] = args
    _STATE["verbose"] = any(a in ("--verbose", "-v") for a in args) or bool(
        os.environ.get("WAE_VERBOSE")
    )
    import warnings

    try:
        with warnings.catch_warnings():  # restored afterwards (main may run inside a program)
            warnings.showwarning = _show_warning
            # Standalone mode: Typer reports its own usage errors (exit 2) and exits.
            app(args=args, prog_name="wae")
    except WaeError as exc:
        if _STATE["verbose"]:
            err.print_exception()
        rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
        label = "Error:" if rank in ("", "0") else f"Error (rank {rank}):"
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err.print(f"[red]{label}[/red] {_escape(line)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C during training, or Ctrl-C outside it
        err.print("[red]Interrupted.[/red]")
        sys.exit(130)
