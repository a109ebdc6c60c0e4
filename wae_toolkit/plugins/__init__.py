"""The plugin contract: what a cost, penalty, prior, network (or data source) implements, how
plugins are found and configured, and the kit that checks them.

- :mod:`~wae_toolkit.plugins.interfaces`: the interfaces; their docstrings are the contract.
- :mod:`~wae_toolkit.plugins.registry`: entry-point discovery, lazy loading, ``create``.
- :mod:`~wae_toolkit.plugins.options`: plugin options from constructor signatures.
- :mod:`~wae_toolkit.plugins.testing`: the conformance kit (``check_penalty`` and siblings).
- :mod:`~wae_toolkit.plugins.scaffold`: ``wae plugins new``, a ready-to-install package.

A plugin author needs one import: ``from wae_toolkit.plugins import LatentPenalty,
check_penalty``. The names are loaded on first use, so importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.plugins.interfaces import (
        INTERFACE_VERSION,
        Cost,
        DataSource,
        GaussianHead,
        LatentPenalty,
        Network,
        Prior,
        output_activation,
        prior_moments,
        stop_requested,
    )
    from wae_toolkit.plugins.registry import KINDS, create, get_plugin_class, list_plugins
    from wae_toolkit.plugins.testing import (
        check_cost,
        check_data_source,
        check_network,
        check_options,
        check_penalty,
        check_plugin,
        check_prior,
    )

__all__ = [
    "INTERFACE_VERSION",
    "Cost",
    "DataSource",
    "GaussianHead",
    "LatentPenalty",
    "Network",
    "Prior",
    "output_activation",
    "prior_moments",
    "stop_requested",
    "KINDS",
    "create",
    "get_plugin_class",
    "list_plugins",
    "check_cost",
    "check_data_source",
    "check_network",
    "check_options",
    "check_penalty",
    "check_plugin",
    "check_prior",
]

_HOMES = {
    "interfaces": (
        "INTERFACE_VERSION",
        "Cost",
        "DataSource",
        "GaussianHead",
        "LatentPenalty",
        "Network",
        "Prior",
        "output_activation",
        "prior_moments",
        "stop_requested",
    ),
    "registry": ("KINDS", "create", "get_plugin_class", "list_plugins"),
    "testing": (
        "check_cost",
        "check_data_source",
        "check_network",
        "check_options",
        "check_penalty",
        "check_plugin",
        "check_prior",
    ),
}
__getattr__ = lazy_getattr(
    "wae_toolkit.plugins", {name: home for home, names in _HOMES.items() for name in names}
)
