"""Training callbacks the tests use to interrupt a run at a chosen step."""

from __future__ import annotations

import os
import signal

from wae_toolkit.engine.callbacks import Callback


class StopAt(Callback):
    """Sends this process SIGINT (as Ctrl-C would) once step ``step`` is logged."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_log(self, step, epoch, logs):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


class CrashAt(Callback):
    """Dies at step ``step`` without any chance to checkpoint, as a killed process would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_log(self, step, epoch, logs):
        if step == self.step:
            raise RuntimeError("simulated crash")
