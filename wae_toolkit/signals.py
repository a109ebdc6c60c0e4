"""SIGINT and SIGTERM during training: a request to stop, not a kill.

:class:`StopSignals` (installed by :func:`wae_toolkit.train`) turns the first SIGINT (Ctrl-C) or
SIGTERM into a request to stop after the current step (the loop then writes a checkpoint and
raises :class:`~wae_toolkit.engine.faults.TrainingInterrupted`); a second SIGINT interrupts at
once, as usual. :func:`stop_requested` lets code inside a step (a plugin's long critic loop) see
the request. This module sits at the bottom of the package so that plugins may use it.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["StopSignals", "stop_requested"]


class StopSignals:
    """Context manager: SIGINT/SIGTERM set :attr:`received` instead of killing the process.

    Only installed in the main thread (Python delivers signals there); elsewhere it is inert.
    Previous handlers are restored on exit. Under torchrun (``WORLD_SIZE`` > 1) a repeated
    signal is not a second Ctrl-C but the launcher passing the first one on, so it is ignored.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._single = os.environ.get("WORLD_SIZE", "1").strip() in ("", "1")
        self._second_interrupts = self._single
        self._outer: StopSignals | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT and self._second_interrupts:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def __enter__(self) -> StopSignals:
        global _ACTIVE
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
            self._outer, _ACTIVE = _ACTIVE, self
        return self

    def __exit__(self, *exc: object) -> None:
        global _ACTIVE
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._previous:
            _ACTIVE = self._outer
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""


#: The StopSignals of the training run in progress in this process (main thread), if any.
_ACTIVE: StopSignals | None = None


def stop_requested() -> bool:
    """Whether the training run in progress was asked to stop (Ctrl-C or SIGTERM).

    Code that runs a long loop inside one training step (a penalty's critic updates, say)
    checks this between iterations and returns early when it is true, so that the run stops
    within one iteration: the loop then finishes the step, writes a checkpoint and stops. It is
    always false outside training, and in multi-process training (where the processes must agree
    on when to stop, which the loop does at its logging steps).
    """
    active = _ACTIVE
    return active is not None and active._single and active.received is not None
