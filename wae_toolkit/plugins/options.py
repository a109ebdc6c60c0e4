"""Plugin options: read from a plugin's constructor, converted from CLI text, checked.

A plugin's options are its constructor's keyword arguments. Their type annotations say how text
such as ``--penalty-opt scales=0.5,1,2`` is converted; their defaults are recorded in the run
configuration; the ``Args:`` section of the class docstring gives each option's help line.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from wae_toolkit.errors import PluginOptionError, UsageError, did_you_mean
from wae_toolkit.errors import short_repr as _show

__all__ = ["OptionSpec", "plugin_options", "bind_options", "parse_assignments", "convert"]

_NO_DEFAULT = inspect.Parameter.empty
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


@dataclass(frozen=True)
class OptionSpec:
    """One constructor option of a plugin."""

    name: str
    annotation: Any
    default: Any
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)


def type_name(annotation: Any) -> str:
    """Readable name of an annotation: ``float``, ``tuple[float, ...]``, ``'a' | 'b'``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin in (tuple, list):
        inner = type_name(args[0]) if args else "any"
        return f"{origin.__name__}[{inner}, ...]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _arg_docs(cls: type) -> dict[str, str]:
    """Parse the Google-style ``Args:`` section of the class (or ``__init__``) docstring."""
    docs: dict[str, str] = {}
    init = getattr(cls, "__init__")  # noqa: B009 - mypy rejects cls.__init__
    for doc in (cls.__doc__, init.__doc__):
        if not doc:
            continue
        lines = inspect.cleandoc(doc).splitlines()
        inside, current = False, None
        for line in lines:
            if re.match(r"^(Args|Arguments|Parameters|Options):\s*$", line.strip()):
                inside = True
                continue
            if inside:
                if line and not line.startswith(" "):
                    inside = False
                    continue
                m = re.match(r"^\s{2,8}(\w+)(\s*\([^)]*\))?:\s*(.*)$", line)
                if m:
                    current = m.group(1)
                    docs[current] = m.group(3).strip()
                elif current and line.strip():
                    docs[current] += " " + line.strip()
    return docs


def plugin_options(cls: type) -> list[OptionSpec]:
    """The options a plugin class accepts, in constructor order."""
    init = getattr(cls, "__init__")  # noqa: B009 - mypy rejects cls.__init__
    sig = inspect.signature(init)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an unresolvable annotation: resolve the others one by one
        hints = {p.name: _resolved(p.annotation, init) for p in sig.parameters.values()}
    docs = _arg_docs(cls)
    specs = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(p.name, p.annotation)
        specs.append(OptionSpec(p.name, ann, p.default, docs.get(p.name, "")))
    return specs


def _resolved(annotation: Any, function: Any) -> Any:
    """An annotation written as text (``from __future__ import annotations``) evaluated in its
    function's module, as :func:`typing.get_type_hints` does; the text when it names something
    that module does not have."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, dict(getattr(function, "__globals__", {})))
    except Exception:
        return annotation


def parse_assignments(items: list[str] | tuple[str, ...] | None, flag: str) -> dict[str, str]:
    """Turn ``["a=1", "b=x"]`` (a repeatable CLI flag) into ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"{flag} expects NAME=VALUE (for example {flag} scale=0.05); got {item!r}."
            )
        out[key.replace("-", "_")] = value.strip()
    return out


#: The integers an option may hold: what torch sizes, seeds and checkpoints can hold (64 bits).
_INT64 = (-(2**63), 2**63 - 1)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("expected an integer")


def _in_int64(value: int) -> int:
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError("expected an integer from -2^63 to 2^63 - 1 (64 bits)")
    return value


def convert(value: Any, annotation: Any) -> Any:
    """Convert ``value`` (CLI text or a Python value) to ``annotation``; raise ``ValueError``."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))
        ):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return convert(value, a)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else f"expected {type_name(annotation)}")
    if origin is Literal:
        for a in args:
            if value == a or (isinstance(value, str) and str(a) == value.strip()):
                return a
        raise ValueError(f"expected one of {', '.join(repr(a) for a in args)}")
    if origin in (tuple, list):
        inner = args[0] if args else Any
        if isinstance(value, str):
            text = value.strip().strip("()[]")
            items: list[Any] = [v for v in (s.strip() for s in text.split(",")) if v]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            items = [value]
        converted = [convert(v, inner) for v in items]
        return tuple(converted) if origin is tuple else converted
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected a boolean (true or false)")
    if annotation is int:
        return _in_int64(_to_int(value))
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                return float(value.strip())
        except (ValueError, OverflowError):  # text, or an integer too large for a float
            pass
        raise ValueError("expected a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError("expected text")
    return value


def bind_options(cls: type, options: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """Check ``options`` against ``cls``'s constructor and convert them to the declared types.

    Raises:
        PluginOptionError: an unknown option (with a suggestion and the list of valid ones) or a
            value that cannot be converted (saying which type is allowed).
    """
    specs = {s.name: s for s in plugin_options(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key not in specs:
            allowed = ", ".join(specs) or "none"
            raise PluginOptionError(
                f"The {kind} '{name}' has no option '{key}'.{did_you_mean(key, specs)} "
                f"Options: {allowed}."
            )
        spec = specs[key]
        try:
            kwargs[key] = convert(value, spec.annotation)
        except ValueError as exc:
            raise PluginOptionError(
                f"Bad value {_show(value)} for option '{key}' of {kind} '{name}': {exc} "
                f"(type {spec.type_name})."
            ) from None
    return kwargs


def resolved_options(obj: Any) -> dict[str, Any]:
    """The full option set of a plugin instance: its constructor's options with current values.

    Plugins keep each option as an attribute of the same name (the convention every built-in
    follows); options without such an attribute are recorded with their default.
    """
    out: dict[str, Any] = {}
    for spec in plugin_options(type(obj)):
        value = getattr(obj, spec.name, spec.default)
        if value is _NO_DEFAULT:
            continue
        out[spec.name] = list(value) if isinstance(value, tuple) else value
    return out
