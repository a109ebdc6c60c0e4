"""The loop's built-in callbacks: the metrics file, the held-out evaluation and checkpoints.

They are ordinary :class:`~wae_toolkit.engine.callbacks.Callback` objects, called before the
user's callback, the progress display and the trackers (which therefore see the records and the
evaluation of the same step):

- :class:`MetricsFile` appends a record to ``metrics.jsonl`` at each log, epoch end and
  evaluation (rank 0 only);
- :class:`HeldOutEvaluation` evaluates the model on the test data when training starts and every
  ``eval_every`` epochs, adds the results to the epoch's logs and announces them with
  ``on_evaluate`` (rank 0 only);
- :class:`Checkpoints` writes a checkpoint every ``checkpoint_every`` steps; the loop also asks
  it for one when it stops or ends (every rank takes part, rank 0 writes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from wae_toolkit.assembly.model import WAE
from wae_toolkit.engine.callbacks import Callback
from wae_toolkit.engine.checkpoint import checkpoint_path, save_checkpoint
from wae_toolkit.engine.faults import BadSteps
from wae_toolkit.engine.heldout import evaluate
from wae_toolkit.engine.state import LoopState
from wae_toolkit.plugins.interfaces import Cost, LatentPenalty
from wae_toolkit.runs.folder import MetricsWriter

__all__ = ["MetricsFile", "HeldOutEvaluation", "Checkpoints"]


class MetricsFile(Callback):
    """Appends the run's records to ``metrics.jsonl`` and counts its lines in the state."""

    main_process_only = True

    def __init__(self, writer: MetricsWriter, state: LoopState) -> None:
        self.writer, self.state = writer, state

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)
        self.state.metrics_lines = self.writer.lines

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        self.write({"kind": "step", "epoch": epoch, "step": step, **logs})

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        self.write({"kind": "epoch", "epoch": epoch, "step": step, **logs})

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self.write({"kind": "eval", "epoch": epoch, "step": step, **metrics})

    def log_pretraining(self, done: int, loss: float) -> None:
        self.write({"kind": "pretrain", "step": done, "loss": loss})

    def close(self) -> None:
        self.writer.close()


class HeldOutEvaluation(Callback):
    """Held-out reconstruction cost and latent MMD (with the prior's floor), and with
    ``penalty`` the held-out penalty and objective, when training starts (unless the run resumed
    after it) and every ``every`` epochs and after the last."""

    main_process_only = True

    def __init__(
        self,
        model: WAE,
        cost: Cost,
        test_x: torch.Tensor,
        generator: torch.Generator,
        floor: float,
        state: LoopState,
        every: int,
        epochs: int,
        penalty: LatentPenalty | None = None,
        lam: float = 0.0,
    ) -> None:
        self.model, self.cost, self.test_x, self.generator = model, cost, test_x, generator
        self.penalty, self.lam = penalty, lam
        self.floor, self.state, self.every, self.epochs = floor, state, every, epochs
        #: Where the results are announced; the loop points it at every callback's on_evaluate.
        self.announce: Callable[[int, int, dict[str, float]], None] = self.on_evaluate

    def run(self, epoch: int, step: int) -> dict[str, float]:
        res = evaluate(
            self.model, self.cost, self.test_x, self.generator, penalty=self.penalty, lam=self.lam
        )
        self.state.last_eval = res | {"prior_mmd": self.floor}
        self.announce(epoch, step, self.state.last_eval)
        return self.state.last_eval

    def on_train_start(self, epoch: int, step: int) -> None:
        if not self.state.last_eval:  # a resumed run was evaluated before it stopped
            self.run(epoch, step)

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.every == 0 or epoch == self.epochs - 1:
            logs.update(self.run(epoch + 1, step))


class Checkpoints(Callback):
    """Checkpoints of the modules, optimizers, generators and the loop's state."""

    def __init__(
        self,
        out: Path,
        objects: dict[str, Any],
        state: LoopState,
        bad_steps: BadSteps,
        every: int,
        keep: int,
        run_info: dict[str, Any],
        writes: bool,
    ) -> None:
        self.out, self.objects, self.state, self.bad_steps = out, objects, state, bad_steps
        self.every, self.keep, self.run_info, self.writes = every, keep, run_info, writes
        #: The step and path of the newest checkpoint this process wrote (or took part in).
        self.last_saved: tuple[int, Path] | None = None

    def save(self) -> Path:
        """Write the checkpoint of the state's position (rank 0); its path on every rank."""
        self.bad_steps.check(self.state.log_acc)  # never checkpoint a state reached badly
        self.state.bad_steps = self.bad_steps.total
        if self.writes:
            save_checkpoint(
                self.out,
                self.state.step,
                **self.objects,
                keep=self.keep,
                extra=self.state.to_extra(**self.run_info),
            )
        self.last_saved = (self.state.step, checkpoint_path(self.out, self.state.step))
        return self.last_saved[1]

    def on_step_end(self, step: int, epoch: int) -> None:
        if step % self.every == 0:
            self.save()
