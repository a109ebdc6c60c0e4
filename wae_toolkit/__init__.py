"""wae-toolkit: Wasserstein Auto-Encoders in PyTorch, with every part a plugin.

Importing this package is cheap: torch and the plugins load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "WaeError",
    "RunConfig",
    "train",
    "Callback",
    "RunResult",
    "fit",
    "load",
    "load_run",
    "resolve_config",
    "evaluate_run",
    "compare_runs",
    "export_model",
    "create",
    "list_plugins",
]

from wae_toolkit._lazy import lazy_getattr
from wae_toolkit.errors import WaeError
from wae_toolkit.registry import create, list_plugins

if TYPE_CHECKING:
    from wae_toolkit.api import fit, load
    from wae_toolkit.config import RunConfig
    from wae_toolkit.export import export_model
    from wae_toolkit.metrics import compare_runs, evaluate_run
    from wae_toolkit.presets import resolve_config
    from wae_toolkit.runs import load_run
    from wae_toolkit.training import Callback, RunResult, train

__getattr__ = lazy_getattr(
    "wae_toolkit",
    {
        "RunConfig": "config",
        "train": "training",
        "Callback": "training",
        "RunResult": "training",
        "fit": "api",
        "load": "api",
        "load_run": "runs",
        "resolve_config": "presets",
        "evaluate_run": "metrics",
        "compare_runs": "metrics",
        "export_model": "export",
    },
)
