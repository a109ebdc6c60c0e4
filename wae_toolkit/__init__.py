"""wae-toolkit: Wasserstein Auto-Encoders in PyTorch, with every part a plugin.

Importing this package is cheap: torch and the plugins load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "WaeError",
    "RunConfig",
    "train",
    "load_run",
    "resolve_config",
    "evaluate_run",
    "compare_runs",
    "create",
    "list_plugins",
]

from wae_toolkit.errors import WaeError
from wae_toolkit.registry import create, list_plugins

if TYPE_CHECKING:
    from wae_toolkit.config import RunConfig
    from wae_toolkit.metrics import compare_runs, evaluate_run
    from wae_toolkit.presets import resolve_config
    from wae_toolkit.runs import load_run
    from wae_toolkit.train import train

_LAZY = {
    "RunConfig": "wae_toolkit.config",
    "train": "wae_toolkit.train",
    "load_run": "wae_toolkit.runs",
    "resolve_config": "wae_toolkit.presets",
    "evaluate_run": "wae_toolkit.metrics",
    "compare_runs": "wae_toolkit.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wae_toolkit' has no attribute {name!r}")
