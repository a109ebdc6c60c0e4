"""The check that a plugin's options read back and rebuild it (every kind's conformance ends
with it); :mod:`wae_toolkit.plugins.testing` exports it."""

from __future__ import annotations

import json
from typing import Any

from wae_toolkit.plugins.interfaces import Prior
from wae_toolkit.plugins.options import bind_options, plugin_options, resolved_options

__all__ = ["check_options"]


def check_options(obj: Any) -> None:
    """The plugin's options can be read back and rebuild an identical plugin.

    Every constructor argument has a default (a prior's ``dim`` excepted) and a type annotation,
    every option is stored under its own name, and the options survive the trip a run
    configuration makes: to JSON text and back, then through the constructor.
    """

    cls = type(obj)
    for spec in plugin_options(cls):
        if isinstance(obj, Prior) and spec.name == "dim":
            continue
        assert not spec.required, f"{cls.__name__}: option '{spec.name}' needs a default"
        assert spec.type_name != "any", (
            f"{cls.__name__}: option '{spec.name}' needs a type annotation"
        )
    specs = plugin_options(cls)
    missing = [s.name for s in specs if not hasattr(obj, s.name) and s.name != "dim"]
    assert not missing, (
        f"{cls.__name__}: store each option under its own name (self.{missing[0]} = ...), so "
        "runs can record it"
    )
    try:
        text = json.dumps(resolved_options(obj))
    except TypeError as exc:
        raise AssertionError(f"{cls.__name__}: options must be JSON values: {exc}") from None
    opts = json.loads(text)
    if isinstance(obj, Prior):
        opts["dim"] = obj.dim

    rebuilt = cls(**bind_options(cls, opts, "plugin", cls.__name__))
    assert resolved_options(rebuilt) == resolved_options(obj), (
        f"{cls.__name__}: rebuilding from the saved options changed them: "
        f"{resolved_options(obj)} -> {resolved_options(rebuilt)}"
    )
