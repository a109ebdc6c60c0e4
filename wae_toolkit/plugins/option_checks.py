"""The checks of what a plugin class declares (every kind's conformance ends with them):
its docstring, its interface version, and options that read back and rebuild it;
:mod:`wae_toolkit.plugins.testing` exports :func:`check_options`."""

from __future__ import annotations

import json
from typing import Any

from wae_toolkit.plugins.declarations import OPTION_TYPES, convertible, interface_version_supported
from wae_toolkit.plugins.interfaces import INTERFACE_VERSION, Prior
from wae_toolkit.plugins.options import bind_options, plugin_options, resolved_options

__all__ = ["check_options", "check_declarations", "instance_of"]


def instance_of(obj: Any, iface: type, check: str) -> None:
    """Fail unless ``obj`` is an instance of ``iface``; a class given instead is told to be
    instantiated (``check`` is the name of the check that was called)."""
    if isinstance(obj, type):
        args = "dim=2" if issubclass(obj, Prior) else ""
        raise AssertionError(
            f"{check} takes a plugin instance, not the class {obj.__name__}: pass an instance, "
            f"{check}({obj.__name__}({args}))"
        )
    assert isinstance(obj, iface), (
        f"{type(obj).__name__} must subclass wae_toolkit.plugins.{iface.__name__}"
    )


def check_declarations(cls: type) -> None:
    """The class says what ``wae plugins list`` and ``show`` print and which interface it was
    written for: a docstring of its own (its first line is the description), an ``Args:`` line
    for every option, and an ``interface_version`` this wae-toolkit loads."""
    name = cls.__name__
    doc = (cls.__dict__.get("__doc__") or "").strip()
    assert doc, (
        f"{name} has no docstring: its first line is the description 'wae plugins list' shows "
        "and its Args: section the option help 'wae plugins show' prints; add one"
    )
    declared = getattr(cls, "interface_version", INTERFACE_VERSION)
    assert interface_version_supported(declared), (
        f"{name} declares interface_version = {declared!r}, which this wae-toolkit (interface "
        f"{INTERFACE_VERSION}) does not load; declare the version it was written for, such as "
        f"interface_version = {INTERFACE_VERSION!r}"
    )
    for spec in plugin_options(cls):
        if issubclass(cls, Prior) and spec.name == "dim":
            continue
        assert convertible(spec.annotation), (
            f"{name}: option '{spec.name}' is annotated {spec.type_name}, which option text "
            f"cannot be converted to; use {OPTION_TYPES}"
        )
        assert spec.help, (
            f"{name}: option '{spec.name}' is not documented; describe it in the Args: section "
            "of the class docstring ('wae plugins show' prints it)"
        )


def check_options(obj: Any) -> None:
    """The plugin's options can be read back and rebuild an identical plugin, and its class
    declares what the toolkit reads from it.

    Every constructor argument has a default (a prior's ``dim`` excepted) and a type annotation,
    every option is stored under its own name, and the options survive the trip a run
    configuration makes: to JSON text and back, then through the constructor. Then
    :func:`check_declarations`: the class docstring, an ``Args:`` line per option, and an
    ``interface_version`` this wae-toolkit loads.
    """
    instance_of(obj, object, "check_options")
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
    check_declarations(cls)
