"""The one training loop: draw batches, take steps, and tell the callbacks.

:func:`run_training` prepares a :class:`~wae_toolkit.engine.setup.Session` (everything built
once) and runs a :class:`Loop` over it. The loop owns the order of events only; the step is
:class:`~wae_toolkit.engine.step.TrainStep`, the state :class:`~wae_toolkit.engine.state.LoopState`,
and the metrics file, the held-out evaluation and checkpoints are callbacks
(:mod:`wae_toolkit.engine.hooks`), followed by the caller's (progress, trackers, the user's).

The data set lives on the device as one tensor and batches are taken by indexing a permutation.
Losses stay on the device and are read back every ``log_every`` steps only.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data.objects import data_label
from wae_toolkit.devices import resolve_device
from wae_toolkit.engine.best import BestWeights, weight_tensors
from wae_toolkit.engine.callbacks import Callback, CallbackList, RunResult
from wae_toolkit.engine.distributed import (
    DistContext,
    all_reduce_mean,
    barrier,
    epoch_permutation,
    init_from_env,
    max_divergence,
    seed_for_rank,
    shard_indices,
    shutdown,
    sync_module,
)
from wae_toolkit.engine.faults import TrainingInterrupted
from wae_toolkit.engine.hooks import Checkpoints, HeldOutEvaluation, MetricsFile
from wae_toolkit.engine.resume import resume_command, resume_hint
from wae_toolkit.engine.setup import Session, prepare
from wae_toolkit.engine.step import mean_logs
from wae_toolkit.runs.folder import (
    CONFIG,
    METRICS,
    SUMMARY,
    WEIGHTS,
    MetricsWriter,
    default_run_dir,
    read_metrics,
    save_weights,
    write_json,
)
from wae_toolkit.runs.names import BEST_WEIGHTS, RAW_WEIGHTS
from wae_toolkit.runs.outputs import write_figures
from wae_toolkit.runs.safe_io import RunLock, RunWriteError
from wae_toolkit.signals import StopSignals

__all__ = ["Loop", "run_training"]

#: What :meth:`Loop._stop_now` returns when a signal (not a callback) stops the run.
_SIGNAL = "signal"


class Loop:
    """Runs a prepared session to its end, a stop requested by a callback, or a signal."""

    def __init__(self, session: Session, callbacks: Sequence[Callback], signals: StopSignals):
        self.s, self.signals, self.state = session, signals, session.state
        s, main = session, session.ctx.is_main
        self.metrics: MetricsFile | None = None
        builtin: list[Callback] = []
        if main:
            keep = s.state.metrics_lines if s.resumed_from is not None else None
            writer = MetricsWriter(s.out / METRICS, keep_lines=keep)
            self.metrics = MetricsFile(writer, s.state)
            evaluation = HeldOutEvaluation(
                s.eval_model, s.comps.cost, s.test_x, s.eval_gen, s.floor, s.state,
                s.config.eval_every, s.config.epochs, penalty=s.comps.penalty, lam=s.config.lam,
            )  # fmt: skip
            best = BestWeights(
                s.out, s.eval_model, s.comps.penalty, s.state, s.config.monitor, s.config.patience
            )
            builtin = [self.metrics, evaluation, best]
        if s.average is not None:  # before the checkpoints, which save the average
            builtin.append(s.average)
        self.checkpoints = Checkpoints(
            s.out, s.objects, s.state, s.bad_steps, s.config.checkpoint_every,
            s.config.keep_checkpoints, s.run_info, writes=main,
        )  # fmt: skip
        self.callbacks = CallbackList([*builtin, self.checkpoints, *callbacks])
        if main:
            evaluation.announce = self.callbacks.on_evaluate
        self.stopped: str | None = None
        self.schedule = s.schedule

    def run(self) -> RunResult:
        s = self.s
        try:
            barrier()  # the other ranks wait for rank 0's folder
            if s.ctx.is_distributed:  # distinct prior samples and noise per rank, from here on
                torch.manual_seed(seed_for_rank(s.config.seed + s.state.step, s.ctx.rank))
            self.callbacks.on_start(self._info())
            if s.pretraining is not None:
                self._pretrain()
            self.callbacks.on_train_start(self.state.epoch, self.state.step)
            if self.signals.received is not None and not s.ctx.is_distributed:
                raise self._interrupted(s.resumed_from or self.checkpoints.save(), "before step")
            for epoch in range(self.state.epoch, s.config.epochs):
                if self._epoch(epoch):
                    break
            if not self.stopped:
                self.state.begin_epoch(s.config.epochs, torch.zeros(0, dtype=torch.long))
                self.checkpoints.save()
            divergence = max_divergence(s.comps.model) if s.ctx.is_distributed else None
        finally:
            if self.metrics is not None:
                self.metrics.close()
        return self._finish(divergence)

    def _info(self) -> dict[str, Any]:
        s = self.s
        return {
            "run_dir": s.out,
            "device": str(s.device),
            "epochs": s.config.epochs,
            "steps_per_epoch": s.steps_per_epoch,
            "total_steps": s.total_steps,
            "batch_size": s.batch,
            "train_size": s.n,
            "test_size": len(s.test_x),
            "data": s.data.description,
            "resumed_from_step": None if s.resumed_from is None else self.state.step,
            "processes": s.ctx.world_size,
        }

    def _pretrain(self) -> None:
        """The encoder pre-training (``pretrain_steps``), checkpointed and stoppable."""
        pre, s = self.s.pretraining, self.s
        assert pre is not None

        def save() -> Path:
            self.state.phase, self.state.pretrain = "pretrain", pre.state()
            return self.checkpoints.save()

        def log(done: int, loss: float) -> None:
            if self.metrics is not None:
                self.metrics.log_pretraining(done, loss)
            if done % s.config.checkpoint_every == 0 and done < pre.steps:
                save()

        def stop(at_log: bool) -> bool:
            return self._stop_now(at_log, callbacks=False) is not None

        if not pre.finished and not pre.run(log, max(1, s.config.log_every), stop):
            during = f"during the encoder pre-training (step {pre.done} of {pre.steps}), before"
            raise self._interrupted(save(), f"{during} step")
        if s.ctx.is_distributed:
            sync_module(s.comps.model)
        del s.objects["optimizers"]["pretrain"]  # later checkpoints hold the main loop only
        self.state.phase, self.state.pretrain, s.pretraining = "train", None, None

    def _order(self, epoch: int) -> torch.Tensor:
        """This epoch's batches as rows of sample indices (this rank's share of each batch)."""
        s, state = self.s, self.state
        if s.ctx.is_distributed:  # the same permutation on every rank; each takes its shard
            perm = epoch_permutation(s.n, s.config.seed, epoch, s.device)
            rows = shard_indices(perm, s.local_batch, rank=s.ctx.rank, world_size=s.ctx.world_size)
            rows = rows.view(-1, s.local_batch)
        elif state.batch > 0:  # continuing a resumed epoch in its saved order
            perm = rows = state.perm.to(s.device).view(-1, s.batch)[: s.steps_per_epoch]
        else:
            perm = torch.randperm(s.n, device=s.device)[: s.steps_per_epoch * s.batch]
            perm = rows = perm.view(-1, s.batch)
        if state.batch == 0:
            state.begin_epoch(epoch, perm)
        state.perm = perm
        return rows

    def _epoch(self, epoch: int) -> bool:
        """Train one epoch (or its rest); True when a callback stopped the run."""
        s, state = self.s, self.state
        lr = self.schedule.epoch_start(epoch)
        s.comps.model.train()
        s.comps.penalty.train()
        rows = self._order(epoch)
        batches = s.batches.epoch(rows, state.batch)
        for i, x in zip(range(state.batch, s.steps_per_epoch), batches, strict=True):
            state.record(s.step(x, state.step + 1))
            state.step, state.batch = state.step + 1, i + 1
            self.schedule.step_end(state.step)
            at_log = state.step % s.config.log_every == 0 or i == s.steps_per_epoch - 1
            if at_log:
                s.bad_steps.check(state.log_acc)
                means = mean_logs(state.log_acc, s.ctx)
                if self.schedule.per_step:  # the rate of the step just taken
                    means["lr"] = self.schedule.used  # type: ignore[attr-defined]
                state.log_acc = {}
                self.callbacks.on_log(state.step, epoch, means)
            self.callbacks.on_step_end(state.step, epoch)
            if self._stopping(self._stop_now(at_log)):
                return True
        logs = mean_logs(state.epoch_acc, s.ctx) | {"lr": lr}
        state.begin_epoch(epoch + 1, torch.zeros(0, dtype=torch.long))
        self.callbacks.on_epoch_end(epoch, state.step, logs)
        return self._stopping(self._stop_now(True, signals=False))

    def _stop_now(self, at_log: bool, signals: bool = True, callbacks: bool = True) -> str | None:
        """Why to stop now (a signal, or a callback's reason), or None; in multi-process runs
        every rank agrees, deciding at log steps only."""
        got = self.signals.received if signals else None
        reason = self.callbacks.stop_reason if callbacks else None
        if not self.s.ctx.is_distributed:
            return _SIGNAL if got is not None else reason
        if not at_log:
            return None
        flags = torch.tensor([float(got or 0), float(bool(reason))], device=self.s.device)
        agreed = all_reduce_mean({"stop": flags})["stop"].tolist()
        if agreed[0] and self.signals.received is None:
            self.signals.received = signal.SIGTERM  # another rank got a signal: stop like it
        if agreed[0]:
            return _SIGNAL
        return (reason or "stopped by a callback in another process") if agreed[1] else None

    def _stopping(self, why: str | None) -> bool:
        """Checkpoint and stop for ``why``: raise for a signal, return True for a callback."""
        if why is None:
            return False
        saved = self.checkpoints.last_saved
        path = saved[1] if saved and saved[0] == self.state.step else self.checkpoints.save()
        if why == _SIGNAL:
            raise self._interrupted(path, "after step")
        self.stopped = why
        return True

    def _interrupted(self, path: Path, during: str) -> TrainingInterrupted:
        s = self.s
        return TrainingInterrupted(
            f"Stopped by {self.signals.name} {during} {self.state.step} of {s.total_steps}; "
            f"checkpoint written to '{path}'. Resume with: "
            f"{resume_command(s.out, s.ctx.world_size)}",
            self.signals.received or signal.SIGTERM,
        )

    def _final_weights(self) -> list[Path]:
        """Write the weights files (rank 0) and return them: ``model.safetensors``, and with
        ``ema`` the raw weights beside it, the model then taking the average's weights (it is
        what the run evaluated and drew); ``best.safetensors`` when it was written."""
        s = self.s
        model, penalty = s.comps.model, s.comps.penalty
        kept = [s.out / WEIGHTS]
        if s.average is not None:
            if s.ctx.is_main:
                save_weights(s.out / RAW_WEIGHTS, weight_tensors(model, penalty))
            model.load_state_dict(s.average.module.state_dict())
            kept.append(s.out / RAW_WEIGHTS)
        if s.ctx.is_main:
            save_weights(s.out / WEIGHTS, weight_tensors(model, penalty))
        if self.state.best:
            kept.append(s.out / BEST_WEIGHTS)
        return kept

    def _finish(self, divergence: float | None) -> RunResult:
        """The weights, figures and summary (rank 0), then ``on_end``."""
        s, state = self.s, self.state
        seconds = state.elapsed()
        model = s.comps.model
        model.eval()
        s.comps.penalty.eval()
        files: list[Path] = []
        summary: dict[str, Any] = {}
        kept = self._final_weights()
        if s.ctx.is_main:
            records = read_metrics(s.out)
            files = write_figures(s.out, model, s.data, s.test_x, records, s.config.seed)
            summary = {
                "run_dir": str(s.out),
                "steps": state.step,
                "epochs": s.config.epochs,
                **({"stopped": self.stopped} if self.stopped else {}),
                "skipped_steps": s.bad_steps.total,
                "seconds": round(seconds, 3),
                "samples_per_second": round(state.step * s.batch / max(seconds, 1e-9), 1),
                "device": str(s.device),
                "processes": s.ctx.world_size,
                **({"replica_divergence": divergence} if divergence is not None else {}),
                **state.last_eval,
                **({"best": state.best} if state.best else {}),
                "files": [p.name for p in [s.out / CONFIG, s.out / METRICS, *kept, *files]],
            }
            write_json(s.out / SUMMARY, summary)
        barrier()
        written = [*kept, *files] if s.ctx.is_main else []
        result = RunResult(s.out, summary, s.comps, s.data, written, s.replaced)
        self.callbacks.on_end(result)
        return result


def _run_dir(config: RunConfig, ctx: DistContext) -> Path:
    """``config.out``, or a new folder; in multi-process runs rank 0's choice."""
    if config.out:
        return Path(config.out)
    chosen = [str(default_run_dir(data_label(config.data), config.penalty))]
    if ctx.is_distributed:
        import torch.distributed as dist

        dist.broadcast_object_list(chosen, src=0)
    return Path(chosen[0])


def run_training(
    config: RunConfig,
    callbacks: Sequence[Callback],
    sources: dict[str, str] | None,
    resume: bool,
    signals: StopSignals,
) -> RunResult:
    """Train as ``config`` says (already validated) with ``callbacks`` after the built-in ones;
    see :func:`wae_toolkit.train`, which calls it."""
    ctx = init_from_env(device=resolve_device(config.device) if config.device != "auto" else None)
    mine = [cb for cb in callbacks if ctx.is_main or not getattr(cb, "main_process_only", False)]
    try:
        return _run_locked(config, mine, sources, resume, signals, ctx)
    except BaseException as exc:
        CallbackList(mine).on_error(exc)
        raise
    finally:
        shutdown(ctx)


def _run_locked(
    config: RunConfig,
    callbacks: Sequence[Callback],
    sources: dict[str, str] | None,
    resume: bool,
    signals: StopSignals,
    ctx: DistContext,
) -> RunResult:
    out = _run_dir(config, ctx)
    lock = RunLock(out)
    space: dict[str, int] = {}
    try:
        if resume and ctx.is_main and (out / CONFIG).is_file():
            lock.acquire()  # one process per run folder: checked before anything else
        session = prepare(config, sources, resume, ctx, out, lock, space)
        return Loop(session, callbacks, signals).run()
    except RunWriteError as exc:
        hint = resume_hint(out, ctx.world_size, space.get("needed"))
        raise type(exc)(f"{exc} {hint}") from exc
    finally:
        lock.release()
