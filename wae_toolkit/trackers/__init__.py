"""Experiment trackers: callbacks that log a run as it trains (``wae run --track NAME``).

The table of the trackers ``track`` may name is :data:`wae_toolkit.config.trackers.TRACKERS`
(it lives with the run's settings, which check the names). Each entry names its class as
``"module:Class"``, imported only when a run uses it, with the optional package that class
needs, so that :meth:`wae_toolkit.RunConfig.validate` can name a missing package before anything
is trained. Adding a tracker is one module in this package (a subclass of
``wae_toolkit.trackers.base._Tracker``) and one line in that table.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from wae_toolkit.config.trackers import DEFAULT_EXPERIMENT, TRACKERS, TrackerSpec

if TYPE_CHECKING:
    from wae_toolkit.trackers.base import Callback

__all__ = [
    "TRACKERS",
    "TrackerSpec",
    "DEFAULT_EXPERIMENT",
    "make_trackers",
    "tracker_class",
    "with_trackers",
]


def _unknown(name: Any) -> Exception:
    from wae_toolkit.errors import UsageError, short_repr

    return UsageError(f"Unknown tracker {short_repr(name)}; trackers: {', '.join(TRACKERS)}.")


def tracker_class(name: str) -> type[Callback]:
    """The class of the tracker ``name`` of :data:`TRACKERS`, imported now.

    Raises:
        UsageError: ``name`` is no tracker, or its module cannot be imported (its package is
            missing).
    """
    spec = TRACKERS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise _unknown(name)
    module, _, attr = spec.target.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        from wae_toolkit.errors import UsageError, setting

        text = str(exc).strip().splitlines()
        raise UsageError(
            f"{setting('track', name)} needs {spec.label}, which cannot be imported "
            f"({text[0] if text else type(exc).__name__}): "
            f"pip install 'wae-toolkit[{spec.extra}]'."
        ) from exc
    return found  # type: ignore[no-any-return]


def make_trackers(
    track: Iterable[str], tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT
) -> list[Callback]:
    """The trackers ``track`` names, each once, in its order (nothing is opened yet).

    Raises:
        UsageError: a name is no tracker of :data:`TRACKERS` (before any tracker is made).
    """
    names = list(dict.fromkeys(track))
    for name in names:
        if not isinstance(name, str) or name not in TRACKERS:
            raise _unknown(name)
    return [
        tracker_class(name)(tracking_uri=tracking_uri, experiment=experiment)  # type: ignore[call-arg]
        for name in names
    ]


def with_trackers(callback: Callback, config: Any) -> Callback:
    """``callback`` followed by the trackers ``config.track`` names (a
    :class:`~wae_toolkit.engine.callbacks.CallbackList`), once each has checked that it can log:
    an MLflow tracking URI that was given is opened, W&B's login is checked, before the run
    folder is written.

    ``config`` is a :class:`~wae_toolkit.RunConfig`, or any object with its ``track``,
    ``tracking_uri`` and ``experiment``.
    """
    from wae_toolkit.trackers.base import CallbackList

    trackers = make_trackers(
        config.track,
        getattr(config, "tracking_uri", None),
        getattr(config, "experiment", DEFAULT_EXPERIMENT),
    )
    for tracker in trackers:
        check = getattr(tracker, "check", None)
        if callable(check):
            check()
    return CallbackList([callback, *trackers])
