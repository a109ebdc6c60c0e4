"""Everything a run needs before its first step, built once: :func:`prepare` -> :class:`Session`.

In order: the resume point (or the output folder's check), the data on the device, the plugins
built once from the configuration (the same objects are trained), the batch sizes, the record
written to ``config.json``, the optimizer and the step, the encoder pre-training, the disk space
the run needs, the loop's state (fresh, or from the checkpoint), and the run folder.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wae_toolkit._version import __version__
from wae_toolkit.assembly.components import Components, build_components
from wae_toolkit.assembly.optimizer import make_optimizer
from wae_toolkit.config.checks import CUDA_ONLY, cuda_only
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data import Dataset, load_dataset
from wae_toolkit.data.objects import load_objects
from wae_toolkit.data.streamed import StreamedPart, memory_budget
from wae_toolkit.devices import resolve_device
from wae_toolkit.engine.averaging import WeightAverage
from wae_toolkit.engine.batches import ResidentBatches, StreamedBatches, default_workers
from wae_toolkit.engine.checkpoint import check_writable, estimate_checkpoint_bytes, load_checkpoint
from wae_toolkit.engine.distributed import DistContext, ddp_model, sync_module
from wae_toolkit.engine.faults import BadSteps
from wae_toolkit.engine.heldout import MAX_MMD_SAMPLES, prior_mmd_floor
from wae_toolkit.engine.pretrain import EncoderPretraining
from wae_toolkit.engine.resume import check_resume_fits, resume_point, settings_record
from wae_toolkit.engine.schedules import make_schedule
from wae_toolkit.engine.schedules.schedule import Schedule
from wae_toolkit.engine.state import LoopState, check_extra
from wae_toolkit.engine.step import StepFunctions, TrainStep
from wae_toolkit.errors import UsageError, setting, setting_name
from wae_toolkit.memory import default_budget, parse_bytes
from wae_toolkit.runs.folder import CONFIG, SUMMARY, check_run_dir, prepare_run_dir, write_json
from wae_toolkit.runs.read import read_json_object
from wae_toolkit.runs.safe_io import RunLock

__all__ = ["Session", "prepare"]

#: Models with fewer parameters train on one CPU thread unless ``threads`` says otherwise.
SMALL_MODEL = 1_000_000


@dataclass
class Session:
    """A run ready to train: its settings, data, plugins, optimizer, step and state."""

    config: RunConfig
    ctx: DistContext
    out: Path
    data: Dataset
    comps: Components
    batches: ResidentBatches | StreamedBatches  #: the training batches
    test_x: torch.Tensor
    batch: int  #: the global batch
    steps_per_epoch: int
    record: dict[str, Any]  #: the content of config.json
    run_info: dict[str, Any]  #: what every checkpoint records about the run
    eval_gen: torch.Generator
    floor: float  #: the held-out MMD between two prior samples
    opt: torch.optim.Optimizer
    bad_steps: BadSteps
    step: TrainStep
    schedule: Schedule
    objects: dict[str, Any]  #: modules, optimizers and generators a checkpoint saves
    state: LoopState = field(default_factory=LoopState)
    pretraining: EncoderPretraining | None = None
    average: WeightAverage | None = None  #: the moving average of the weights (``ema``)
    resumed_from: Path | None = None
    replaced: list[str] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.test_x.device

    @property
    def eval_model(self) -> Any:
        """The model that is evaluated, drawn and saved: the moving average when ``ema`` is on."""
        return self.comps.model if self.average is None else self.average.module

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def local_batch(self) -> int:
        return self.batch // self.ctx.world_size

    @property
    def n(self) -> int:
        return len(self.data.train)


def _threads_for(config: RunConfig, device: torch.device, n_params: int) -> int:
    if config.threads is not None:
        return config.threads
    if device.type == "cpu" and n_params < SMALL_MODEL:
        return 1
    return torch.get_num_threads()


def _data_on(
    config: RunConfig, device: torch.device
) -> tuple[RunConfig, Dataset, Components, Any, torch.Tensor]:
    """The data set on ``device`` (its training part as a :class:`ResidentBatches` or, when it is
    larger than the memory budget, a :class:`StreamedBatches`) and the plugins built for it
    (one time each)."""
    torch.manual_seed(config.seed)
    given = None if config.memory_budget is None else parse_bytes(config.memory_budget)
    budget = given or default_budget(device) or 1 << 62  # unknown memory: no limit
    with memory_budget(budget):
        if isinstance(config.data, str):
            data = load_dataset(config.data, config.data_opts)
        else:  # data given in Python
            data = load_objects(config.data, config.test, config.data_opts, config.batch_size)
    config = dataclasses.replace(config, latent_dim=config.resolved_latent_dim(data.sample_shape))
    comps = build_components(config, data.sample_shape, data.value_range)
    comps.model.to(device)
    comps.penalty.to(device)
    test_x = data.test.to(device)
    channels_last = comps.network.channels_last and test_x.ndim == 4
    if channels_last:
        comps.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        test_x = test_x.contiguous(memory_format=torch.channels_last)
    part = data.train
    if isinstance(part, StreamedPart) and part.nbytes <= budget:  # bytes that fit: held whole
        chunks = np.array_split(np.arange(len(part)), min(64, len(part)))
        x = torch.cat([part.read(rows) for rows in chunks])
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return config, data, comps, ResidentBatches(x, finish=part.finish), test_x
    if isinstance(part, StreamedPart):
        workers = default_workers() if config.workers is None else config.workers
        streamed = StreamedBatches(part, device, workers, channels_last)
        return config, data, comps, streamed, test_x
    train_x = part.to(device)
    if channels_last:
        train_x = train_x.contiguous(memory_format=torch.channels_last)  # batches inherit it
    return config, data, comps, ResidentBatches(train_x), test_x


def _global_batch(config: RunConfig, n: int, ctx: DistContext) -> int:
    batch = min(config.batch_size, n)
    if batch % ctx.world_size:
        raise UsageError(
            f"{setting('batch_size', batch)} is the global batch and must divide evenly among the "
            f"{ctx.world_size} processes; use a multiple of {ctx.world_size}."
        )
    return batch


def record_of(
    config: RunConfig,
    out: Path,
    comps: Components,
    data: Dataset,
    device: torch.device,
    sources: dict[str, str] | None,
    sizes: tuple[int, int],
) -> dict[str, Any]:
    """The content of ``config.json``; ``sizes`` are the train and test sizes."""
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
            "train_size": sizes[0],
            "test_size": sizes[1],
        },
        "decoder_output": comps.decoder_output,
    }


def _optimizer(config: RunConfig, comps: Components, ctx: DistContext) -> tuple[Any, ...]:
    """The model's optimizer, the bad-step guard, the step and what a checkpoint saves."""
    model, penalty, device = comps.model, comps.penalty, next(comps.model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    torch.set_num_threads(_threads_for(config, device, sum(p.numel() for p in params)))
    if device.type == "cuda" and comps.network.channels_last:
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotune each convolution once
    if device.type == "cuda" and config.precision == "tf32":  # restored by train() at the end
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    view = model
    if ctx.is_distributed:
        sync_module(model)  # every rank starts from rank 0's weights, critic included
        sync_module(penalty)
        view = ddp_model(model, ctx)
    opt = make_optimizer(config, params)
    bad_steps = BadSteps(opt, config.skip_bad_steps)
    step = TrainStep(
        StepFunctions(comps, config, device, model=view), comps, opt, bad_steps, config, ctx
    )
    objects: dict[str, Any] = {
        "modules": {"model": model, "penalty": penalty},
        "optimizers": {"model": opt} | {f"penalty_{k}": v for k, v in penalty.optimizers().items()},
    }
    return opt, bad_steps, step, objects


def space_needed(config: RunConfig, objects: dict[str, Any], total_steps: int) -> int:
    """Bytes the run folder needs: the kept checkpoints and the one being written, the weights,
    the metrics lines and the figures."""
    model = objects["modules"]["model"]
    checkpoint = estimate_checkpoint_bytes(objects["modules"], objects["optimizers"])
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    lines = total_steps // config.log_every + 3 * config.epochs + 10
    return (config.keep_checkpoints + 1) * checkpoint + weights + 300 * lines + 4_000_000


def prepare(
    config: RunConfig,
    sources: dict[str, str] | None,
    resume: bool,
    ctx: DistContext,
    out: Path,
    lock: RunLock,
    space: dict[str, int],
) -> Session:
    """Check, load and build everything before the first step (see the module's docstring);
    ``space["needed"]`` is set to the bytes the run folder needs once they are known."""
    device = ctx.device if ctx.is_distributed else resolve_device(config.device)
    if config.precision in CUDA_ONLY and device.type != "cuda":  # --device auto found no GPU
        raise UsageError(cuda_only(config.precision, device.type))
    if config.precision == "bf16" and device.type == "mps":  # --device auto found MPS
        raise UsageError("precision bf16 runs on cpu and cuda devices; use fp32 on mps.")
    resume_from, resume_doc = resume_point(out) if resume else (None, {})
    if not resume:
        check_run_dir(out, config.overwrite)
    config, data, comps, batches, test_x = _data_on(config, device)
    batch = _global_batch(config, len(data.train), ctx)
    sizes = (len(data.train), len(test_x))
    record = record_of(config, out, comps, data, device, sources, sizes)
    data_info: dict[str, Any] = {"train_size": sizes[0], "test_size": sizes[1]}
    data_info["sample_shape"] = list(data.sample_shape)
    settings = settings_record(record)
    if resume_from is not None:
        check_resume_fits(resume_from, resume_doc, settings, data_info)
    eval_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    floor = prior_mmd_floor(comps.model.prior, min(len(test_x), MAX_MMD_SAMPLES), eval_gen)
    opt, bad_steps, step, objects = _optimizer(config, comps, ctx)
    objects["generators"] = {"eval": eval_gen}
    steps_per_epoch = max(1, len(data.train) // batch)
    schedule = make_schedule(config.schedule, opt, config, steps_per_epoch)  # before a restore
    stateful = {"lr": schedule} if schedule.stateful else {}
    if step.scaler is not None:
        stateful["grad_scaler"] = step.scaler
    if stateful:  # absent otherwise: checkpoints of default runs stay as they were
        objects["schedulers"] = stateful
    average = WeightAverage(comps.model, config.ema) if config.ema else None  # 0/None: off
    if average is not None:
        objects["modules"]["ema"] = average.averaged
    session = Session(
        config, ctx, out, data, comps, batches, test_x,
        batch=batch,
        steps_per_epoch=steps_per_epoch,
        record=record,
        run_info={"processes": ctx.world_size, "settings": settings, "data": data_info},
        eval_gen=eval_gen, floor=floor, opt=opt, bad_steps=bad_steps, step=step,
        schedule=schedule, objects=objects, average=average,
        resumed_from=resume_from,
    )  # fmt: skip
    phase = resume_doc.get("extra", {}).get("phase") if resume else None
    if config.pretrain_steps and (not resume or phase == "pretrain"):
        betas = (config.beta1, config.beta2)
        if not isinstance(batches, ResidentBatches):
            raise UsageError(
                f"{setting_name('pretrain_steps')} needs the training data in memory, and these "
                f"stream from disk (they are larger than {setting_name('memory_budget')}); raise "
                "the budget or drop the option."
            )
        pre = EncoderPretraining(
            comps.model, batches.floats(), config.pretrain_steps, batch, config.lr, betas
        )
        session.pretraining, objects["optimizers"]["pretrain"] = pre, pre.opt
    _start(session, lock, space)
    return session


def _start(session: Session, lock: RunLock, space: dict[str, int]) -> None:
    """Check the disk has room, then restore the checkpoint, or write the new run folder."""
    config, out = session.config, session.out
    space["needed"] = space_needed(config, session.objects, session.total_steps)
    if session.ctx.is_main:
        check_writable(out, space["needed"])
    if session.resumed_from is not None:
        _restore(session, session.resumed_from)
        if session.ctx.is_main:
            _record_epochs(out, config.epochs)
    elif session.ctx.is_main:
        session.replaced = prepare_run_dir(out, config.overwrite, lock)
        write_json(out / CONFIG, session.record)


def _record_epochs(out: Path, epochs: int) -> None:
    """A resumed run continued for more epochs: say so in its ``config.json`` (the rest of the
    record stays as the run wrote it)."""
    record, _ = read_json_object(out / CONFIG)
    if isinstance(record, dict) and isinstance(record.get("run"), dict):
        if record["run"].get("epochs") != epochs:
            record["run"]["epochs"] = epochs
            write_json(out / CONFIG, record)


def _restore(session: Session, path: Path) -> None:
    """Load the checkpoint at ``path`` into the session's objects and state."""
    config = session.config
    extra = load_checkpoint(path, **session.objects)
    check_extra(
        path,
        extra,
        epochs=config.epochs,
        pretrain_steps=config.pretrain_steps,
        steps_per_epoch=session.steps_per_epoch,
        batch=session.batch,
        n=session.n,
    )
    if extra["step"] >= session.total_steps and (session.out / SUMMARY).is_file():
        raise UsageError(
            f"The run in '{session.out}' already finished ({extra['step']} of "
            f"{session.total_steps} steps); there is nothing to resume (a larger "
            f"{setting('epochs')} trains it further)."
        )
    session.state = LoopState.from_extra(extra, session.device)
    session.bad_steps.total = session.state.bad_steps
    if session.pretraining is not None and session.state.pretrain is not None:
        session.pretraining.restore(session.state.pretrain)
