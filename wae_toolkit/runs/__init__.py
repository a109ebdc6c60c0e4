"""Run folders: writing them safely (:mod:`~wae_toolkit.runs.safe_io`,
:mod:`~wae_toolkit.runs.folder`), the figures a run writes (:mod:`~wae_toolkit.runs.figures`,
:mod:`~wae_toolkit.runs.outputs`), reading them back (:func:`read_run`, in
:mod:`~wae_toolkit.runs.read`) and loading a run's model (:func:`load_run`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.runs.read import RunFolder, read_run, read_run_config
    from wae_toolkit.runs.restore import LoadedRun, load_run

__all__ = ["load_run", "LoadedRun", "read_run", "RunFolder", "read_run_config"]
__getattr__ = lazy_getattr(
    "wae_toolkit.runs",
    {
        "load_run": "restore",
        "LoadedRun": "restore",
        "read_run": "read",
        "RunFolder": "read",
        "read_run_config": "read",
    },
)
