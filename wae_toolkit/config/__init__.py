"""The run definition: every setting of a run (:mod:`~wae_toolkit.config.settings`, the
:class:`RunConfig` dataclass), and where settings come from: presets
(:mod:`~wae_toolkit.config.presets`), files (:mod:`~wae_toolkit.config.configfile`) and the command
line, combined by :func:`~wae_toolkit.config.presets.resolve_config`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.config.configfile import read_config_file
    from wae_toolkit.config.presets import PRESETS, resolve_config
    from wae_toolkit.config.settings import RunConfig, parse_schedule

__all__ = ["RunConfig", "parse_schedule", "resolve_config", "PRESETS", "read_config_file"]
__getattr__ = lazy_getattr(
    "wae_toolkit.config",
    {
        "RunConfig": "settings",
        "parse_schedule": "settings",
        "resolve_config": "presets",
        "PRESETS": "presets",
        "read_config_file": "configfile",
    },
)
