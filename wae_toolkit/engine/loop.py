"""The one training loop, for every combination of cost, penalty, prior and network.

Each step, for a batch ``x`` of B samples:

1. ``z_q = E(x)`` (a draw from Q(Z|x) for a Gaussian encoder), ``z_p ~ P_Z`` (B samples);
2. adversarial penalties update their critic: ``penalty.critic_step(z_q.detach(), z_p)``;
3. ``loss = mean_i c(x_i, G(z_q_i)) + lambda * penalty(z_q, z_p)``; one Adam step on the encoder,
   the decoder and any prior parameters.

The data set lives on the device as one tensor and batches are taken by indexing a permutation.
Losses stay on the device and are read back every ``log_every`` steps only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wae_toolkit import __version__
from wae_toolkit.build.components import Components, build_components
from wae_toolkit.build.model import WAE, adam
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data import Dataset, load_dataset
from wae_toolkit.devices import resolve_device
from wae_toolkit.engine.checkpoint import (
    check_writable,
    checkpoint_path,
    estimate_checkpoint_bytes,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from wae_toolkit.engine.distributed import (
    DistContext,
    all_reduce_mean,
    barrier,
    ddp_model,
    epoch_permutation,
    gather,
    init_from_env,
    max_divergence,
    seed_for_rank,
    shard_indices,
    shutdown,
    sync_module,
)
from wae_toolkit.engine.distributed import average_gradients as _average_gradients
from wae_toolkit.engine.faults import BadSteps, NonFiniteError, StopSignals, TrainingInterrupted
from wae_toolkit.engine.heldout import MAX_MMD_SAMPLES, evaluate, prior_mmd_floor
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.folder import (
    CONFIG,
    METRICS,
    SUMMARY,
    WEIGHTS,
    MetricsWriter,
    check_run_dir,
    default_run_dir,
    prepare_run_dir,
    read_metrics,
    save_weights,
    write_json,
)
from wae_toolkit.runs.safe_io import RunLock, RunWriteError

__all__ = [
    "train",
    "Callback",
    "RunResult",
    "TrainingError",
    "TrainingInterrupted",
    "NonFiniteError",
    "resolve_device",
]


#: Kept for code written against earlier versions: a loss became NaN or infinite.
TrainingError = NonFiniteError


class Callback:
    """Hooks the training loop calls; the CLI uses them to draw its progress bar.

    Every method is optional. ``logs`` hold plain floats.
    """

    def on_start(self, info: dict[str, Any]) -> None:
        """Called once, before the first step, with the run folder, sizes and device."""

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        """Called every ``log_every`` steps with the mean losses since the last call."""

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        """Called after every epoch with its mean losses (and evaluations when run)."""

    def on_end(self, result: RunResult) -> None:
        """Called once the run folder is complete."""

    def on_error(self, error: BaseException) -> None:
        """Called once when training stops with an exception (an interruption included), before
        it propagates; ``on_end`` is then not called. ``on_start`` may not have been called."""


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    summary: dict[str, Any]
    components: Components
    dataset: Dataset
    files: list[Path] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    @property
    def model(self) -> Any:
        return self.components.model


#: Models with fewer parameters train on one CPU thread unless ``threads`` says otherwise.
SMALL_MODEL = 1_000_000


def _threads_for(config: RunConfig, device: torch.device, n_params: int) -> int:
    if config.threads is not None:
        return config.threads
    if device.type == "cpu" and n_params < SMALL_MODEL:
        return 1
    return torch.get_num_threads()


def _mean_logs(acc: dict[str, list[torch.Tensor]], ctx: DistContext) -> dict[str, float]:
    """Average the logged scalars (over the ranks too) with one device-to-host transfer."""
    keys = [k for k, v in acc.items() if v]
    if not keys:
        return {}
    means = torch.stack([torch.stack(acc[k]).float().mean() for k in keys])
    if ctx.is_distributed:
        means = all_reduce_mean({"m": means})["m"]
    return dict(zip(keys, means.tolist(), strict=True))


class StepFunctions:
    """The two halves of a training step, compiled and/or under bf16 autocast as configured.

    ``encode(x_in) -> (mean, log_var, z_q)`` runs the encoder (adversarial penalties update their
    critic on ``z_q`` between the halves); ``objective(x, z_q, log_var, pen)`` returns the loss
    terms ``loss``, ``cost``, ``penalty`` (and ``logvar_l1``), where ``pen`` holds the penalty's
    inputs ``(z_q, z_p, mean, log_var)``: this process's own, or in multi-process training those
    gathered from every rank. Under ``precision="bf16"``
    only the networks run in bf16: codes and reconstructions are cast to float32 before the cost
    and the penalty, so both are computed in float32.
    """

    def __init__(
        self,
        comps: Components,
        config: RunConfig,
        device: torch.device,
        model: WAE | None = None,
    ) -> None:
        self.model = comps.model if model is None else model  # a DDP view in multi-process runs
        self.cost, self.penalty = comps.cost, comps.penalty
        self.lam, self.logvar_l1 = config.lam, config.logvar_l1
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
            if config.precision == "bf16"
            else contextlib.nullcontext
        )
        self.encode = torch.compile(self._encode) if config.compile else self._encode
        self.objective = torch.compile(self._objective) if config.compile else self._objective

    def _encode(self, x_in: torch.Tensor) -> tuple[Any, Any, torch.Tensor]:
        with self.autocast():
            mean, log_var = self.model.encode_stats(x_in)
        mean = mean.float()
        log_var = None if log_var is None else log_var.float()
        return mean, log_var, self.model.draw(mean, log_var)

    def _objective(
        self,
        x: torch.Tensor,
        z_q: torch.Tensor,
        log_var: torch.Tensor | None,
        pen_inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    ) -> dict[str, torch.Tensor]:
        with self.autocast():
            x_hat = self.model.decode(z_q)
        rec = self.cost(x, x_hat.float()).mean()
        z_all, zp_all, mean_all, log_var_all = pen_inputs
        if self.penalty.needs_encoder_stats:
            pen = self.penalty(z_all, zp_all, mean=mean_all, log_var=log_var_all)
        else:
            pen = self.penalty(z_all, zp_all)
        terms = {"loss": rec + self.lam * pen, "cost": rec, "penalty": pen}
        if self.logvar_l1 and log_var is not None:
            reg = log_var.abs().sum(1).mean()
            terms["loss"] = terms["loss"] + self.logvar_l1 * reg
            terms["logvar_l1"] = reg
        return terms


def train(
    config: RunConfig,
    callback: Callback | None = None,
    sources: dict[str, str] | None = None,
    resume: bool = False,
) -> RunResult:
    """Train a WAE as ``config`` says and write its run folder.

    Everything is validated (configuration, plugins and their options, data, network shape,
    output folder and its free space) before anything is written. ``sources`` (from
    :func:`wae_toolkit.config.presets.resolve_config`) says where each value came from and is
    recorded
    in ``config.json``.

    With ``config.track``, the run is also logged to MLflow and/or TensorBoard (by the process
    that writes the run folder; see :mod:`wae_toolkit.trackers.base`).

    A checkpoint is written every ``config.checkpoint_every`` steps, at the end, and when SIGINT
    or SIGTERM arrives (training then stops after the current step). With ``resume=True`` the
    run in ``config.out`` continues from its newest checkpoint: on CPU with the same settings it
    ends with the same parameters and metrics as a run that was never interrupted.

    Returns:
        a :class:`RunResult` with the run folder, the summary metrics and the trained model.

    Raises:
        UsageError: bad configuration, plugin name or option, data, or output folder, or nothing
            to resume.
        NonFiniteError: a loss or gradient became NaN or infinite (more than
            ``config.skip_bad_steps`` times); the last checkpoint is kept.
        TrainingInterrupted: SIGINT or SIGTERM; a checkpoint of the last step was written.
    """
    config.validate()
    callback = _checked_callback(callback)
    previous_threads = torch.get_num_threads()
    previous_benchmark = torch.backends.cudnn.benchmark
    try:
        with StopSignals() as signals:
            return _train(config, callback or Callback(), sources, resume, signals)
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.cudnn.benchmark = previous_benchmark


def _checked_callback(callback: Any) -> Callback | None:
    """``callback`` when it is a :class:`Callback` or has its methods; one sentence otherwise."""
    hooks = ("on_start", "on_log", "on_epoch_end", "on_end")
    if callback is None or isinstance(callback, Callback):
        return callback
    if isinstance(callback, str | bytes | int | float | list | tuple | dict) or not any(
        callable(getattr(callback, h, None)) for h in hooks
    ):
        shown = repr(callback)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise UsageError(
            "callback must be a wae_toolkit.Callback (or an object with its methods "
            f"{', '.join(hooks)}); got {shown}."
        )
    return _DuckCallback(callback)


class _DuckCallback(Callback):
    """An object with some of :class:`Callback`'s methods; the others do nothing."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            found = getattr(object.__getattribute__(self, "obj"), name, None)
            if callable(found):
                return found
        return object.__getattribute__(self, name)


#: Settings that may differ between a run and its resumption (where it runs, not what it does).
_MAY_CHANGE_ON_RESUME = ("out", "overwrite", "threads", "device")


def _resume_point(out: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume ``out`` from and its document; a clear error when there is none.

    Every file and folder a run writes must be a plain file or folder (not a link), and a
    damaged newer checkpoint is skipped with a :class:`CheckpointSkippedWarning` that says how
    many steps are redone.
    """
    from wae_toolkit.engine.checkpoint import CheckpointSkippedWarning, newest_checkpoint, step_of
    from wae_toolkit.runs.folder import RUN_DIRS, RUN_FILES
    from wae_toolkit.runs.safe_io import link_problem

    if not (out / CONFIG).is_file():
        raise UsageError(f"Cannot resume '{out}': it holds no run (no {CONFIG}).")
    for name in (*RUN_FILES, *RUN_DIRS):
        problem = link_problem(out / name, "folder" if name in RUN_DIRS else "file")
        if problem:
            raise UsageError(f"Cannot resume '{out}': {problem}")
    path, skipped = newest_checkpoint(out)
    if path is None:
        if skipped:
            raise UsageError(
                f"Cannot resume '{out}': it has no checkpoint that can be read ({len(skipped)} "
                f"damaged file(s) skipped, the newest '{skipped[0][0].name}': {skipped[0][1]}); "
                "start it again with --overwrite."
            )
        raise UsageError(
            f"Cannot resume '{out}': it has no checkpoint (the run stopped before its first "
            "one); start it again with --overwrite."
        )
    if skipped:
        used = step_of(path) or 0
        lost = max((step_of(p) or 0) for p, _ in skipped) - used
        names = ", ".join(f"'{p.name}' ({why})" for p, why in skipped)
        warnings.warn(
            f"Skipped the damaged newer checkpoint(s) {names}; resuming from step {used}, so "
            f"{lost} step(s) are trained again.",
            CheckpointSkippedWarning,
            stacklevel=4,
        )
    from wae_toolkit.engine.checkpoint import read_document

    return path, read_document(path)


def _settings_record(record: dict[str, Any]) -> dict[str, Any]:
    """The settings of a ``config.json`` record that a resumed run must keep, as plain JSON."""
    run = {k: v for k, v in record["run"].items() if k not in _MAY_CHANGE_ON_RESUME}
    return json.loads(json.dumps(run, default=str))


def _check_resume_fits(
    path: Path, doc: dict[str, Any], settings: dict[str, Any], data: dict[str, Any]
) -> None:
    """Refuse to resume from ``path`` when the run's settings or data changed since it was
    written, naming what changed."""
    extra: dict[str, Any] = doc["extra"] if isinstance(doc.get("extra"), dict) else {}
    saved = extra.get("settings")
    if isinstance(saved, dict):
        changed = [
            f"{k}: {_short(saved.get(k))} in the checkpoint, {_short(settings.get(k))} now"
            for k in sorted(set(saved) | set(settings))
            if saved.get(k) != settings.get(k)
        ]
        if changed:
            raise UsageError(
                f"Cannot resume from '{path}': the run's settings in {CONFIG} changed after it "
                f"was written ({'; '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}). "
                "Training settings cannot change on resume (only --threads, --device and "
                f"--nproc may): restore {CONFIG}, or start a new run with --config."
            )
    saved_data = extra.get("data")
    if isinstance(saved_data, dict):
        changed = [
            f"{k} {_short(saved_data.get(k))} then, {_short(v)} now"
            for k, v in data.items()
            if k in saved_data and saved_data[k] != v
        ]
        if changed:
            raise UsageError(
                f"Cannot resume from '{path}': the data changed since it was written "
                f"({'; '.join(changed)}); resume with the same data, or start a new run."
            )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _train(
    config: RunConfig,
    cb: Callback,
    sources: dict[str, str] | None,
    resume: bool,
    signals: StopSignals,
) -> RunResult:
    ctx = init_from_env(device=resolve_device(config.device) if config.device != "auto" else None)
    try:
        if config.track and ctx.is_main:  # only the process that writes the run folder tracks
            from wae_toolkit.trackers.base import with_trackers

            cb = with_trackers(cb, config)
        return _train_in(config, cb, sources, resume, signals, ctx)
    except BaseException as exc:
        on_error = getattr(cb, "on_error", None)  # callbacks written before it existed lack it
        if on_error is not None:
            on_error(exc)
        raise
    finally:
        shutdown(ctx)


class _NoWriter(MetricsWriter):
    """What ranks other than 0 log to: nothing (only rank 0 writes files)."""

    lines = 0  # type: ignore[assignment]

    def __init__(self) -> None:
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        self.lines += 1

    def close(self) -> None:
        pass


def _run_dir(config: RunConfig, ctx: DistContext) -> Path:
    """``config.out``, or a new folder; in multi-process runs rank 0's choice."""
    if config.out:
        return Path(config.out)
    chosen = [str(default_run_dir(config.data, config.penalty))]
    if ctx.is_distributed:
        import torch.distributed as dist

        dist.broadcast_object_list(chosen, src=0)
    return Path(chosen[0])


def _train_in(
    config: RunConfig,
    cb: Callback,
    sources: dict[str, str] | None,
    resume: bool,
    signals: StopSignals,
    ctx: DistContext,
) -> RunResult:
    out = _run_dir(config, ctx)
    lock = RunLock(out)
    space: dict[str, int] = {}
    try:
        if resume and ctx.is_main:  # one process per run folder: checked before anything else
            if (out / CONFIG).is_file():
                lock.acquire()
        return _train_locked(config, cb, sources, resume, signals, ctx, out, lock, space)
    except RunWriteError as exc:
        raise type(exc)(f"{exc} {_resume_hint(out, ctx, space.get('needed'))}") from exc
    finally:
        lock.release()


def _resume_hint(out: Path, ctx: DistContext, needed: int | None) -> str:
    """What to do after a failed write: resume from the newest checkpoint, or start again."""
    from wae_toolkit.memory import format_bytes

    newest = latest_checkpoint(out)
    room = f" (the whole run needs about {format_bytes(needed)})" if needed else ""
    if newest is None:
        if not (out / CONFIG).is_file():
            return ""
        return f"No checkpoint was written yet{room}: start the run again with --overwrite."
    nproc = f" --nproc {ctx.world_size}" if ctx.is_distributed else ""
    return (
        f"The newest checkpoint, '{newest}', is intact{room}: once the problem is fixed, continue "
        f"with 'wae run --resume {out}{nproc}'."
    )


def _space_needed(config: RunConfig, objects: dict[str, Any], total_steps: int, model: WAE) -> int:
    """Bytes the run folder needs: the kept checkpoints and the one being written, the weights,
    the metrics lines and the figures."""
    checkpoint = estimate_checkpoint_bytes(objects["modules"], objects["optimizers"])
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    lines = total_steps // config.log_every + 3 * config.epochs + 10
    return (config.keep_checkpoints + 1) * checkpoint + weights + 300 * lines + 4_000_000


def _check_state(
    path: Path, state: dict[str, Any], config: RunConfig, steps_per_epoch: int, batch: int, n: int
) -> None:
    """Refuse a checkpoint whose loop state does not fit this run (damaged, or written by other
    settings), before the loop uses it."""

    def count(key: str, high: float = float("inf")) -> bool:
        v = state.get(key)
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= high

    problems = []
    if state.get("phase", "train") == "train":
        if not count("epoch", config.epochs) or not count("batch", steps_per_epoch):
            problems.append("its epoch or position in the epoch is out of range")
        elif state["step"] != state["epoch"] * steps_per_epoch + state["batch"]:
            problems.append(
                f"its step {state['step']} is not epoch {state['epoch']} x {steps_per_epoch} "
                f"steps + {state['batch']}"
            )
        perm = state.get("perm")
        if not isinstance(perm, torch.Tensor) or perm.dtype not in (torch.int64, torch.int32):
            problems.append("its data order is missing")
        elif state.get("batch") and (
            perm.numel() < steps_per_epoch * batch
            or (perm.numel() and (int(perm.min()) < 0 or int(perm.max()) >= n))
        ):
            problems.append(f"its data order does not fit {n} samples in batches of {batch}")
        for key in ("log_acc", "epoch_acc", "last_eval"):
            if not isinstance(state.get(key), dict):
                problems.append(f"its '{key}' is missing")
        if isinstance(state.get("last_eval"), dict) and not all(
            isinstance(v, int | float) for v in state["last_eval"].values()
        ):
            problems.append("its last evaluation is not numbers")
    else:
        pre = state.get("pretrain")
        if not (
            isinstance(pre, dict)
            and isinstance(pre.get("done"), int)
            and 0 <= pre["done"] <= config.pretrain_steps
            and all(isinstance(pre.get(k), torch.Tensor) for k in ("mu_p", "cov_p", "pending"))
        ):
            problems.append("its encoder pre-training state is damaged")
    for key in ("metrics_lines", "bad_steps"):
        if key in state and not count(key):
            problems.append(f"its '{key}' is not a count")
    seconds = state.get("seconds", 0.0)
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        problems.append("its elapsed time is not a number of seconds")
    if problems:
        raise UsageError(
            f"Cannot resume from '{path}': {problems[0]}; it is damaged or was written by "
            "other settings. Remove it to resume from an earlier checkpoint, or start again "
            "with --overwrite."
        )


def _train_locked(
    config: RunConfig,
    cb: Callback,
    sources: dict[str, str] | None,
    resume: bool,
    signals: StopSignals,
    ctx: DistContext,
    out: Path,
    lock: RunLock,
    space: dict[str, int],
) -> RunResult:
    device = ctx.device if ctx.is_distributed else resolve_device(config.device)
    main = ctx.is_main
    if resume:
        resume_from, resume_doc = _resume_point(out)
    else:
        check_run_dir(out, config.overwrite)

    torch.manual_seed(config.seed)
    data = load_dataset(config.data, config.data_opts)
    config = dataclasses.replace(config, latent_dim=config.resolved_latent_dim(data.sample_shape))
    comps = build_components(config, data.sample_shape, data.value_range)
    model, cost, penalty = comps.model, comps.cost, comps.penalty
    model.to(device)
    penalty.to(device)
    train_x = data.train.to(device)
    test_x = data.test.to(device)
    if comps.network.channels_last and train_x.ndim == 4:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        train_x = train_x.contiguous(memory_format=torch.channels_last)  # batches inherit it
        test_x = test_x.contiguous(memory_format=torch.channels_last)
    n = len(train_x)
    batch = min(config.batch_size, n)
    if batch % ctx.world_size:
        raise UsageError(
            f"--batch-size {batch} is the global batch and must divide evenly among the "
            f"{ctx.world_size} processes; use a multiple of {ctx.world_size}."
        )
    local_batch = batch // ctx.world_size
    steps_per_epoch = max(1, n // batch)
    total_steps = steps_per_epoch * config.epochs
    record = _record(config, out, comps, data, device, sources, n, test_x)
    settings = _settings_record(record)
    data_info = {
        "train_size": n,
        "test_size": len(test_x),
        "sample_shape": list(data.sample_shape),
    }
    if resume:
        _check_resume_fits(resume_from, resume_doc, settings, data_info)
    eval_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    floor = prior_mmd_floor(model.prior, min(len(test_x), MAX_MMD_SAMPLES), eval_gen)

    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    torch.set_num_threads(_threads_for(config, device, n_params))
    if device.type == "cuda" and comps.network.channels_last:
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotune each convolution once
    view = model
    if ctx.is_distributed:
        sync_module(model)  # every rank starts from rank 0's weights, critic included
        sync_module(penalty)
        view = ddp_model(model, ctx)
    opt = adam(params, config.lr, (config.beta1, config.beta2))
    step_fns = StepFunctions(comps, config, device, model=view)
    bad_steps = BadSteps(opt, config.skip_bad_steps)
    prior_params = [p for p in model.prior.parameters() if p.requires_grad]
    objects: dict[str, Any] = {
        "modules": {"model": model, "penalty": penalty},
        "optimizers": {"model": opt} | {f"penalty_{k}": v for k, v in penalty.optimizers().items()},
        "generators": {"eval": eval_gen},
    }
    pre = None
    needs_pretraining = config.pretrain_steps and (
        not resume or resume_doc.get("extra", {}).get("phase") == "pretrain"
    )
    if needs_pretraining:
        from wae_toolkit.engine.pretrain import EncoderPretraining

        pre = EncoderPretraining(
            model, train_x, config.pretrain_steps, batch, config.lr, (config.beta1, config.beta2)
        )
        objects["optimizers"]["pretrain"] = pre.opt
    space["needed"] = _space_needed(config, objects, total_steps, model)
    if main:
        check_writable(out, space["needed"])

    state: dict[str, Any] = {}
    replaced: list[str] = []
    writer: MetricsWriter = _NoWriter()
    if resume:
        state = load_checkpoint(resume_from, **objects)
        _check_state(resume_from, state, config, steps_per_epoch, batch, n)
        if state["step"] >= total_steps and (out / SUMMARY).is_file():
            raise UsageError(
                f"The run in '{out}' already finished ({state['step']} of {total_steps} steps); "
                "there is nothing to resume."
            )
        if pre is not None:
            pre.restore(state["pretrain"])
        if main:
            writer = MetricsWriter(out / METRICS, keep_lines=int(state["metrics_lines"]))
    elif main:
        replaced = prepare_run_dir(out, config.overwrite, lock)
        write_json(out / CONFIG, record)
        writer = MetricsWriter(out / METRICS)
    barrier()  # the other ranks wait for rank 0's folder
    if ctx.is_distributed:  # distinct prior samples and noise per rank, from here on
        torch.manual_seed(seed_for_rank(config.seed + int(state.get("step", 0)), ctx.rank))
    cb.on_start(
        {
            "run_dir": out,
            "device": str(device),
            "epochs": config.epochs,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps,
            "batch_size": batch,
            "train_size": n,
            "test_size": len(test_x),
            "data": data.description,
            "resumed_from_step": state.get("step"),
            "processes": ctx.world_size,
        }
    )

    def run_eval(epoch: int, step: int) -> dict[str, float]:
        if not main:
            return {}
        res = evaluate(model, cost, test_x, eval_gen) | {"prior_mmd": floor}
        writer.write({"kind": "eval", "epoch": epoch, "step": step, **res})
        return res

    def save(epoch: int, next_batch: int, perm: torch.Tensor, accs: tuple[Any, Any]) -> Path:
        bad_steps.check(accs[0])  # never checkpoint a state reached through a bad step
        path = checkpoint_path(out, step)
        if main:
            save_checkpoint(
                out,
                step,
                **objects,
                keep=config.keep_checkpoints,
                extra={
                    "phase": "pretrain" if pre is not None and not pre.finished else "train",
                    **({"pretrain": pre.state()} if pre is not None else {}),
                    "epoch": epoch,
                    "batch": next_batch,
                    "perm": perm,
                    "log_acc": {k: torch.stack(v) for k, v in accs[0].items() if v},
                    "epoch_acc": {k: torch.stack(v) for k, v in accs[1].items() if v},
                    "last_eval": last_eval,
                    "metrics_lines": writer.lines,
                    "seconds": seconds_before + time.perf_counter() - started,
                    "bad_steps": bad_steps.total,
                    "processes": ctx.world_size,
                    "settings": settings,
                    "data": data_info,
                },
            )
        return path

    def stop_requested(at_log: bool) -> bool:
        """Whether to stop now; every rank agrees, deciding at log steps only."""
        if not ctx.is_distributed:
            return signals.received is not None
        if not at_log:
            return False
        flag = torch.tensor(float(signals.received or 0), device=device)
        agreed = all_reduce_mean({"stop": flag})["stop"]
        if float(agreed) and signals.received is None:
            signals.received = signal.SIGTERM  # another rank got a signal: stop like it
        return bool(float(agreed))

    def interrupted(path: Path, during: str = "") -> TrainingInterrupted:
        return TrainingInterrupted(
            f"Stopped by {signals.name} {during or 'after step'} {step} of {total_steps}; "
            f"checkpoint written to '{path}'. Resume with: wae run --resume "
            f"{out}" + (f" --nproc {ctx.world_size}" if ctx.is_distributed else ""),
            signals.received or signal.SIGTERM,
        )

    no_perm = torch.zeros(0, dtype=torch.long, device=device)
    started = time.perf_counter()
    seconds_before = float(state.get("seconds", 0.0))
    step, last_eval = int(state.get("step", 0)), dict(state.get("last_eval", {}))
    if pre is not None and not pre.finished:

        def log_pretraining(done: int, loss: float) -> None:
            writer.write({"kind": "pretrain", "step": done, "loss": loss})
            if done % config.checkpoint_every == 0 and done < config.pretrain_steps:
                save(0, 0, no_perm, ({}, {}))

        if not pre.run(log_pretraining, max(1, config.log_every), stop_requested):
            raise interrupted(
                save(0, 0, no_perm, ({}, {})),
                f"during the encoder pre-training (step {pre.done} of {pre.steps}), before step",
            )
        if ctx.is_distributed:
            sync_module(model)
    if pre is not None:  # done: later checkpoints hold the main loop only
        del objects["optimizers"]["pretrain"]
        pre = None
    if resume and state.get("phase", "train") == "train":
        start_epoch, start_batch = state["epoch"], state["batch"]
        bad_steps.total = int(state.get("bad_steps", 0))
    else:
        start_epoch, start_batch = 0, 0
        last_eval = run_eval(0, 0)
    try:
        if signals.received is not None and not ctx.is_distributed:  # a stop while setting up
            path = resume_from if resume else save(0, 0, no_perm, ({}, {}))
            raise interrupted(path, "before step")
        for epoch in range(start_epoch, config.epochs):
            lr = config.lr * config.lr_factor(epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            penalty.train()
            first = 0
            epoch_acc: dict[str, list[torch.Tensor]] = {}
            log_acc: dict[str, list[torch.Tensor]] = {}
            continuing = resume and epoch == start_epoch and start_batch > 0
            if continuing:
                first = start_batch
                log_acc = {k: list(v.to(device).unbind(0)) for k, v in state["log_acc"].items()}
                epoch_acc = {k: list(v.to(device).unbind(0)) for k, v in state["epoch_acc"].items()}
            if ctx.is_distributed:  # the same permutation on every rank; each takes its shard
                perm = epoch_permutation(n, config.seed, epoch, device)
                mine = shard_indices(
                    perm, local_batch, rank=ctx.rank, world_size=ctx.world_size
                ).view(-1, local_batch)
            elif continuing:
                perm = mine = state["perm"].to(device).view(-1, batch)[:steps_per_epoch]
            else:
                perm = mine = torch.randperm(n, device=device)[: steps_per_epoch * batch].view(
                    -1, batch
                )
            for i in range(first, steps_per_epoch):
                x = train_x[mine[i]]
                x_in = x + config.input_noise * torch.randn_like(x) if config.input_noise else x
                mean, log_var, z_q = step_fns.encode(x_in)
                z_p = model.prior.sample(len(x))
                pen_inputs = (z_q, z_p, mean, log_var)
                if ctx.is_distributed:  # the penalty sees the global batch (see distributed.py)
                    pen_inputs = (
                        gather(z_q, check=False),
                        gather(z_p, check=False),
                        gather(mean, check=False),
                        None if log_var is None else gather(log_var, check=False),
                    )
                logs: dict[str, torch.Tensor] = {}
                if penalty.adversarial:
                    logs.update(penalty.critic_step(pen_inputs[0].detach(), pen_inputs[1].detach()))
                terms = step_fns.objective(x, z_q, log_var, pen_inputs)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if ctx.is_distributed and prior_params:
                    _average_gradients(prior_params)  # the prior is outside the DDP wrappers
                step += 1
                bad_steps.before_step(step)
                opt.step()
                logs.update({k: v.detach() for k, v in terms.items()})
                for k, v in logs.items():
                    log_acc.setdefault(k, []).append(v)
                    epoch_acc.setdefault(k, []).append(v)
                at_log = step % config.log_every == 0 or i == steps_per_epoch - 1
                if at_log:
                    bad_steps.check(log_acc)
                    means = _mean_logs(log_acc, ctx)
                    log_acc = {}
                    writer.write({"kind": "step", "epoch": epoch, "step": step, **means})
                    cb.on_log(step, epoch, means)
                stop = stop_requested(at_log)
                if stop or step % config.checkpoint_every == 0:
                    path = save(epoch, i + 1, perm, (log_acc, epoch_acc))
                    if stop:
                        raise interrupted(path)
            epoch_logs = _mean_logs(epoch_acc, ctx) | {"lr": lr}
            writer.write({"kind": "epoch", "epoch": epoch, "step": step, **epoch_logs})
            last = epoch == config.epochs - 1
            if (epoch + 1) % config.eval_every == 0 or last:
                last_eval = run_eval(epoch + 1, step)
                epoch_logs |= last_eval
            cb.on_epoch_end(epoch, step, epoch_logs)
        seconds = seconds_before + time.perf_counter() - started
        save(config.epochs, 0, no_perm, ({}, {}))
        divergence = max_divergence(model) if ctx.is_distributed else 0.0
    finally:
        writer.close()

    model.eval()
    penalty.eval()
    files: list[Path] = []
    summary: dict[str, Any] = {}
    if main:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors |= {f"penalty.{k}": v for k, v in penalty.state_dict().items()}
        save_weights(out / WEIGHTS, tensors)
        from wae_toolkit.runs.outputs import write_figures

        files = write_figures(out, model, data, test_x, read_metrics(out), config.seed)
        summary = {
            "run_dir": str(out),
            "steps": step,
            "epochs": config.epochs,
            "seconds": round(seconds, 3),
            "samples_per_second": round(step * batch / max(seconds, 1e-9), 1),
            "device": str(device),
            "processes": ctx.world_size,
            **({"replica_divergence": divergence} if ctx.is_distributed else {}),
            **last_eval,
            "files": [p.name for p in [out / CONFIG, out / METRICS, out / WEIGHTS, *files]],
        }
        write_json(out / SUMMARY, summary)
    barrier()
    result = RunResult(out, summary, comps, data, [out / WEIGHTS, *files] if main else [], replaced)
    cb.on_end(result)
    return result


def _record(
    config: RunConfig,
    out: Path,
    comps: Components,
    data: Dataset,
    device: torch.device,
    sources: dict[str, str] | None,
    n: int,
    test_x: torch.Tensor,
) -> dict[str, Any]:
    """The content of ``config.json``."""
    return {
        "wae_toolkit_version": __version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(device),
        "run": {**config.to_dict(), "out": str(out), "overwrite": False}
        | {f"{k}_opts": v["options"] for k, v in comps.plugins.items()},
        "plugins": comps.plugins,
        "sources": sources or {},
        "data": {
            "name": data.name,
            "description": data.description,
            "sample_shape": list(data.sample_shape),
            "value_range": None if data.value_range is None else list(data.value_range),
            "train_size": n,
            "test_size": len(test_x),
        },
        "decoder_output": comps.decoder_output,
    }
