"""The loop's state: one typed object that saves itself into a checkpoint and restores from one.

Everything the loop needs to continue a run exactly where it stopped is here: the position (epoch,
next batch, step and the epoch's data order), the losses accumulated since the last log and
since the epoch began, the last held-out evaluation, how many lines ``metrics.jsonl`` held, the
time spent, the bad steps skipped, and the encoder pre-training's state while it runs. Modules,
optimizers and random generators are saved beside it by :mod:`wae_toolkit.engine.checkpoint`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.config.checks import is_number
from wae_toolkit.errors import UsageError, setting

__all__ = ["LoopState", "Losses"]

#: Loss terms per name, one 0-d tensor per step, kept on the device until they are logged.
Losses = dict[str, list[Tensor]]


def _empty_order() -> Tensor:
    return torch.zeros(0, dtype=torch.long)


@dataclass
class LoopState:
    """Where the loop is and what it has accumulated (see the module's docstring)."""

    phase: str = "train"  #: ``"pretrain"`` while the encoder pre-training runs
    epoch: int = 0
    batch: int = 0  #: the index of the next batch in the epoch
    step: int = 0  #: optimisation steps taken
    perm: Tensor = field(default_factory=_empty_order)  #: this epoch's order (batch rows)
    log_acc: Losses = field(default_factory=dict)
    #: The epoch's loss terms: per term, a buffer and the number of steps in it (see
    #: :meth:`record`; :attr:`epoch_acc` lists them).
    epoch_buffers: dict[str, tuple[Tensor, int]] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    metrics_lines: int = 0
    seconds: float = 0.0  #: time trained by earlier processes of this run
    bad_steps: int = 0
    pretrain: dict[str, Any] | None = None
    #: The best evaluation of ``monitor`` so far: metric, value, epoch, step, and ``since``
    #: (evaluations without a new best); empty before the first.
    best: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter, repr=False)

    def record(self, logs: dict[str, Tensor]) -> None:
        """Add one step's loss terms to both accumulators. The epoch's are copied into one
        growing buffer per term (on the device, no synchronisation): thousands of small tensors
        kept for a whole epoch would fragment the allocator's heap, which then keeps the freed
        batches of every step (measured: 0.8 MB per step of 32x32 RGB batches of 100)."""
        for k, v in logs.items():
            self.log_acc.setdefault(k, []).append(v)
            buf, n = self.epoch_buffers.get(k, (None, 0))
            if buf is None or n == len(buf):
                grown = torch.empty(max(64, 2 * n), dtype=v.dtype, device=v.device)
                if buf is not None:
                    grown[:n] = buf
                buf = grown
            buf[n] = v
            self.epoch_buffers[k] = (buf, n + 1)

    @property
    def epoch_acc(self) -> Losses:
        """The loss terms of each step of the epoch so far."""
        return {k: list(buf[:n].unbind(0)) for k, (buf, n) in self.epoch_buffers.items()}

    def elapsed(self) -> float:
        """Seconds trained so far, by this process and the ones before it."""
        return self.seconds + time.perf_counter() - self.started

    def begin_epoch(self, epoch: int, perm: Tensor) -> None:
        self.epoch, self.batch, self.perm = epoch, 0, perm
        self.log_acc, self.epoch_buffers = {}, {}

    def to_extra(self, **run: Any) -> dict[str, Any]:
        """The checkpoint's ``extra`` values; ``run`` adds what describes the run (settings,
        data, processes)."""
        extra: dict[str, Any] = {"phase": self.phase}
        if self.pretrain is not None:
            extra["pretrain"] = self.pretrain
        return extra | {
            "epoch": self.epoch,
            "batch": self.batch,
            "perm": self.perm,
            "log_acc": {k: torch.stack(v) for k, v in self.log_acc.items() if v},
            "epoch_acc": {k: torch.stack(v) for k, v in self.epoch_acc.items() if v},
            "last_eval": self.last_eval,
            "metrics_lines": self.metrics_lines,
            "seconds": self.elapsed(),
            "bad_steps": self.bad_steps,
            **({"best": self.best} if self.best else {}),
            **run,
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any], device: torch.device) -> LoopState:
        """The state a checkpoint's values describe (checked by :func:`check_extra` first)."""

        def unstack(acc: dict[str, Tensor]) -> Losses:
            return {k: list(v.to(device).unbind(0)) for k, v in acc.items()}

        lines = int(extra.get("metrics_lines", 0))
        seconds = float(extra.get("seconds", 0.0))
        phase = extra.get("phase", "train")
        if phase != "train":
            return cls(
                phase=phase, pretrain=extra["pretrain"], metrics_lines=lines, seconds=seconds
            )
        return cls(
            epoch=extra["epoch"],
            batch=extra["batch"],
            step=int(extra["step"]),
            perm=extra["perm"].to(device),
            log_acc=unstack(extra["log_acc"]),
            epoch_buffers={
                k: (v.to(device), len(v)) for k, v in extra["epoch_acc"].items() if len(v)
            },
            last_eval=dict(extra["last_eval"]),
            bad_steps=int(extra.get("bad_steps", 0)),
            best=dict(extra.get("best", {})),
            metrics_lines=lines,
            seconds=seconds,
        )


def _count(v: Any, high: float = float("inf")) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= high


def _train_problems(
    state: dict[str, Any], epochs: int, steps_per_epoch: int, batch: int, n: int
) -> list[str]:
    problems = []
    if not _count(state.get("epoch"), epochs) or not _count(state.get("batch"), steps_per_epoch):
        problems.append("its epoch or position in the epoch is out of range")
    elif state["step"] != state["epoch"] * steps_per_epoch + state["batch"]:
        problems.append(
            f"its step {state['step']} is not epoch {state['epoch']} x {steps_per_epoch} "
            f"steps + {state['batch']}"
        )
    perm = state.get("perm")
    if not isinstance(perm, Tensor) or perm.dtype not in (torch.int64, torch.int32):
        problems.append("its data order is missing")
    elif state.get("batch") and (
        perm.numel() < steps_per_epoch * batch
        or (perm.numel() and (int(perm.min()) < 0 or int(perm.max()) >= n))
    ):
        problems.append(f"its data order does not fit {n} samples in batches of {batch}")
    for key in ("log_acc", "epoch_acc", "last_eval"):
        if not isinstance(state.get(key), dict):
            problems.append(f"its '{key}' is missing")
    best = state.get("best", {})
    if not isinstance(best, dict) or (
        best and not (is_number(best.get("value")) and _count(best.get("since")))
    ):
        problems.append("its best evaluation is damaged")
    if isinstance(state.get("last_eval"), dict) and not all(
        isinstance(v, int | float) for v in state["last_eval"].values()
    ):
        problems.append("its last evaluation is not numbers")
    return problems


def check_extra(
    path: Path,
    state: dict[str, Any],
    *,
    epochs: int,
    pretrain_steps: int,
    steps_per_epoch: int,
    batch: int,
    n: int,
) -> None:
    """Refuse a checkpoint whose loop state does not fit this run (damaged, or written by other
    settings), before the loop uses it."""
    if state.get("phase", "train") == "train":
        problems = _train_problems(state, epochs, steps_per_epoch, batch, n)
    else:
        pre = state.get("pretrain")
        ok = (
            isinstance(pre, dict)
            and isinstance(pre.get("done"), int)
            and 0 <= pre["done"] <= pretrain_steps
            and all(isinstance(pre.get(k), Tensor) for k in ("mu_p", "cov_p", "pending"))
        )
        problems = [] if ok else ["its encoder pre-training state is damaged"]
    for key in ("metrics_lines", "bad_steps"):
        if key in state and not _count(state[key]):
            problems.append(f"its '{key}' is not a count")
    seconds = state.get("seconds", 0.0)
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        problems.append("its elapsed time is not a number of seconds")
    if problems:
        raise UsageError(
            f"Cannot resume from '{path}': {problems[0]}; it is damaged or was written by "
            "other settings. Remove it to resume from an earlier checkpoint, or start again "
            f"with {setting('overwrite', True)}."
        )
