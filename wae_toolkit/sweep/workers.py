"""``--jobs K``: K worker processes on one machine, each running :func:`~.study.work` on the
shared study.

The workers are started with ``spawn`` (a fresh interpreter each: no state of the parent is
inherited) and report back through a pipe how they ended; the parent follows the study in its
storage and passes each finished trial to ``on_trial``. Ctrl-C in a terminal reaches every
process of the command: each worker stops its run after the current step and marks its trial
FAIL (not counted); the parent passes an interrupt on to any worker still running a few seconds
later, then waits for all of them. The workers start their first trials together, once each has
loaded (or after :data:`READY_S` seconds).
"""

from __future__ import annotations

import signal
import time
from typing import Any

from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.sweep.plan import SweepPlan
from wae_toolkit.sweep.study import SweepInterrupted, SweepSettings, open_storage, open_study

__all__ = ["run_workers"]

#: Seconds between two looks at the study for finished trials.
POLL_S = 0.5
#: Seconds the workers get to stop after Ctrl-C before the parent interrupts them itself.
STOP_GRACE_S = 5.0
#: Seconds a worker waits for the others to load before it starts trials alone.
READY_S = 300.0


def _worker(plan: SweepPlan, settings: SweepSettings, conn: Any, barrier: Any) -> None:
    """A worker process: once all are ready (``barrier``), run trials, then send
    ``(how, exit_code, message, trials_run)``."""
    import threading

    from wae_toolkit.engine.faults import TrainingInterrupted
    from wae_toolkit.sweep.study import work

    def ready() -> None:
        try:
            barrier.wait(timeout=READY_S)
        except threading.BrokenBarrierError:  # a worker failed to start: go on without it
            pass

    try:
        conn.send(("done", 0, "", work(plan, settings, ready=ready)))
    except (TrainingInterrupted, KeyboardInterrupt):
        conn.send(("interrupted", 130, "", 0))
    except WaeError as exc:
        conn.send(("error", exc.exit_code, str(exc), 0))
    except BaseException as exc:  # an unexpected failure: the parent names it
        conn.send(("error", 1, f"a sweep worker failed: {type(exc).__name__}: {exc}", 0))
    finally:
        conn.close()


def run_workers(plan: SweepPlan, settings: SweepSettings, on_trial: Any = None) -> int:
    """Run ``settings.jobs`` workers to the end of the study; returns the trials they ran.

    Raises:
        SweepInterrupted: Ctrl-C (or a worker was interrupted).
        UsageError, WaeError: a worker's error, as that worker raised it.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    from wae_toolkit.sweep.overview import trial_row

    study = open_study(plan, open_storage(settings.storage), settings.prune)
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def follow() -> None:
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                if on_trial is not None:
                    on_trial(trial_row(t))

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(settings.jobs)
    procs, pipes = [], []
    for i in range(settings.jobs):
        receive, send = ctx.Pipe(duplex=False)
        args = (plan, settings, send, barrier)
        proc = ctx.Process(target=_worker, args=args, name=f"wae-sweep-{i}")
        proc.start()
        send.close()
        procs.append(proc)
        pipes.append(receive)
    ends: list[tuple[str, int, str, int]] = []
    interrupted = False
    try:
        while len(ends) < len(procs):
            for conn in wait([p for p in pipes if not p.closed], timeout=POLL_S):
                ends.append(_receive(conn))  # type: ignore[arg-type]
                if ends[-1][0] == "error":
                    _interrupt(procs, grace=0.0)  # one failed: the others stop too
            follow()
    except KeyboardInterrupt:
        interrupted = True
        _interrupt(procs, grace=STOP_GRACE_S)
    finally:
        for proc in procs:
            proc.join()
        for conn in pipes:
            if not conn.closed and conn.poll():
                ends.append(_receive(conn))
        follow()
    errors = [e for e in ends if e[0] == "error"]
    if errors:
        how, code, message, _ = errors[0]
        raise (UsageError if code == 2 else WaeError)(message)
    if interrupted or any(e[0] == "interrupted" for e in ends):
        raise SweepInterrupted("interrupted")
    return sum(e[3] for e in ends)


def _receive(conn: Any) -> tuple[str, int, str, int]:
    try:
        end = conn.recv()
    except EOFError:  # the process died without a word (killed)
        end = ("error", 1, "a sweep worker ended without reporting (it was killed?).", 0)
    conn.close()
    return tuple(end)  # type: ignore[return-value]


def _interrupt(procs: list[Any], grace: float) -> None:
    """Interrupt the workers still running after ``grace`` seconds (SIGINT: each stops its run
    after the current step)."""
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            try:
                import os

                os.kill(proc.pid, signal.SIGINT)
            except OSError:
                pass
