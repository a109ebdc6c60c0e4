"""wae-toolkit: Wasserstein Auto-Encoders in PyTorch, with every part a plugin.

Importing this package is cheap: torch and the plugins load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

import sys

from wae_toolkit._lazy import MovedModules, lazy_getattr
from wae_toolkit._version import __version__
from wae_toolkit.errors import WaeError
from wae_toolkit.plugins.registry import create, list_plugins

#: Where the plugin-facing modules of wae-toolkit 0.1 live now; their old names keep working.
MOVED = {
    f"wae_toolkit.{old}": f"wae_toolkit.{new}"
    for old, new in {
        "interfaces": "plugins.interfaces",
        "registry": "plugins.registry",
        "options": "plugins.options",
        "testing": "plugins.testing",
        "kernels": "numerics.kernels",
    }.items()
}
if not any(isinstance(f, MovedModules) for f in sys.meta_path):
    sys.meta_path.append(MovedModules(MOVED))

if TYPE_CHECKING:
    from wae_toolkit.api import fit, load, train
    from wae_toolkit.config.presets import resolve_config
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.engine.callbacks import Callback, RunResult
    from wae_toolkit.export import export_model
    from wae_toolkit.metrics import compare_runs, evaluate_run
    from wae_toolkit.runs.folder import load_run

__getattr__ = lazy_getattr(
    "wae_toolkit",
    {
        "RunConfig": "config.settings",
        "train": "api",
        "Callback": "engine.callbacks",
        "RunResult": "engine.callbacks",
        "fit": "api",
        "load": "api",
        "load_run": "runs.folder",
        "resolve_config": "config.presets",
        "evaluate_run": "metrics",
        "compare_runs": "metrics",
        "export_model": "export",
    },
)
