"""The one interface for everything the training loop does besides the step: :class:`Callback`.

The loop itself only draws batches, runs the step and announces what happened. Writing
``metrics.jsonl``, the held-out evaluation, checkpoints, the progress display and the experiment
trackers are callbacks (see :mod:`wae_toolkit.engine.hooks` and :mod:`wae_toolkit.trackers`),
and so is anything a user passes to ``wae_toolkit.train(config, callback=...)``.

The loop calls, in this order::

    on_start(info)                        once, before the first step
    on_evaluate(epoch, step, metrics)     after each held-out evaluation: the first at step 0
                                          (after any encoder pre-training), then every
                                          ``eval_every`` epochs and after the last
    on_train_start(epoch, step)           when this process begins its training steps
    on_log(step, epoch, logs)             every ``log_every`` steps, with the mean losses
    on_step_end(step, epoch)              after every step
    on_epoch_end(epoch, step, logs)       after every epoch (logs hold that epoch's evaluation)
    on_end(result)                        once the run folder is complete
    on_error(error)                       instead of on_end, when training stops on an exception

Any callback may ask the loop to stop with :meth:`Callback.request_stop`: the loop finishes the
current step, writes a checkpoint and ends the run as a finished one would (weights, figures,
``summary.json`` with ``"stopped": REASON``); ``wae run --resume`` continues it later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wae_toolkit.errors import UsageError, short_repr

if TYPE_CHECKING:
    from wae_toolkit.assembly.components import Components
    from wae_toolkit.data import Dataset

__all__ = ["Callback", "CallbackList", "RunResult", "as_callback", "HOOKS"]

#: The hooks a callback may implement, in the order the loop first calls them.
HOOKS = (
    "on_start",
    "on_evaluate",
    "on_train_start",
    "on_log",
    "on_step_end",
    "on_epoch_end",
    "on_end",
    "on_error",
)


@dataclass
class RunResult:
    """What :func:`wae_toolkit.train` returns (and ``on_end`` receives)."""

    run_dir: Path
    summary: dict[str, Any]
    components: Components
    dataset: Dataset
    files: list[Path] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    @property
    def model(self) -> Any:
        return self.components.model


class Callback:
    """Hooks the training loop calls. Every method is optional; ``logs`` hold plain floats.

    Subclass it and override the hooks you need; call :meth:`request_stop` from any of them to
    end the run early. Callbacks run in the process that writes the run folder and in the other
    processes of a multi-process run alike, unless :attr:`main_process_only` is set.
    """

    #: Run only in the process that writes the run folder (rank 0), as trackers do.
    main_process_only: bool = False
    #: Set by :meth:`request_stop`: why the run should stop; ``None`` to go on.
    stop_reason: str | None = None

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        """Ask the loop to stop after the current step (see the module's docstring)."""
        self.stop_reason = str(reason)

    def on_start(self, info: dict[str, Any]) -> None:
        """Called once, before the first step, with the run folder, sizes and device."""

    def on_train_start(self, epoch: int, step: int) -> None:
        """Called when this process begins training steps, at ``step`` (0 unless resumed)."""

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Called after each held-out evaluation with its metrics (``test_mmd``, ...)."""

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        """Called every ``log_every`` steps with the mean losses since the last call."""

    def on_step_end(self, step: int, epoch: int) -> None:
        """Called after every optimisation step (keep it cheap: no device synchronisation)."""

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        """Called after every epoch with its mean losses (and evaluations when run)."""

    def on_end(self, result: RunResult) -> None:
        """Called once the run folder is complete."""

    def on_error(self, error: BaseException) -> None:
        """Called once when training stops with an exception (an interruption included), before
        it propagates; ``on_end`` is then not called. ``on_start`` may not have been called."""


class CallbackList(Callback):
    """Calls several callbacks in turn; asks to stop when any of them does."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    @property
    def stop_reason(self) -> str | None:  # type: ignore[override]
        for cb in self.callbacks:
            reason = getattr(cb, "stop_reason", None)
            if reason:
                return str(reason)
        return None

    def on_start(self, info: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_start(info)

    def on_train_start(self, epoch: int, step: int) -> None:
        for cb in self.callbacks:
            cb.on_train_start(epoch, step)

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_evaluate(epoch, step, metrics)

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_log(step, epoch, logs)

    def on_step_end(self, step: int, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_step_end(step, epoch)

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, step, logs)

    def on_end(self, result: RunResult) -> None:
        for cb in self.callbacks:
            cb.on_end(result)

    def on_error(self, error: BaseException) -> None:
        for cb in self.callbacks:
            cb.on_error(error)


def as_callback(callback: Any) -> Callback | None:
    """``callback`` when it is a :class:`Callback`; an object with some of its hook methods,
    wrapped so that the others do nothing; one sentence for anything else."""
    if callback is None or isinstance(callback, Callback):
        return callback
    if isinstance(callback, str | bytes | int | float | list | tuple | dict) or not any(
        callable(getattr(callback, h, None)) for h in HOOKS
    ):
        raise UsageError(
            "callback must be a wae_toolkit.Callback (or an object with some of its methods "
            f"{', '.join(HOOKS[:-1])}); got {short_repr(callback)}."
        )
    return _DuckCallback(callback)


class _DuckCallback(Callback):
    """An object with some of :class:`Callback`'s methods; the others do nothing."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") or name in ("stop_reason", "main_process_only"):
            found = getattr(object.__getattribute__(self, "obj"), name, None)
            if name.startswith("on_") and callable(found):
                return found
            if not name.startswith("on_") and found is not None:
                return found
        return object.__getattribute__(self, name)
