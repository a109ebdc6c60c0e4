"""``wae run``'s options, built from the run settings' declarations.

Each field of :class:`~wae_toolkit.config.settings.RunConfig` declares its option in its
metadata (:class:`~wae_toolkit.config.fields.CliOption`: help, flags, metavar, panel, completion,
parsing); this module turns those into Typer options (:func:`field_options`) and the options'
values back into settings (:func:`given_settings`). A new setting needs nothing here.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import typer
from rich.markup import escape

from wae_toolkit.config.fields import Parse, cli_option, default_text

__all__ = ["Completer", "FieldOption", "field_options", "given_settings"]

#: A shell completion function: the text typed so far -> the candidates.
Completer = Callable[[str], list[str]]

#: The value types a ``value`` option may have (the field's type, ``None`` left out).
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class FieldOption:
    """One run setting as a ``wae run`` option.

    Attributes:
        name: the setting (the field's name, also the command function's parameter).
        flag: the option's long name, as messages name it (``--lambda``, ``--cost-opt``).
        parse: how its text becomes the setting's value.
        parameter: the command function's parameter, a ``typer.Option`` as its default.
    """

    name: str
    flag: str
    parse: Parse
    parameter: inspect.Parameter


def field_options(
    config_cls: type, complete: Mapping[str, Completer] | None = None
) -> list[FieldOption]:
    """The options of ``config_cls``'s fields that declare one, in the order of the fields.

    Args:
        config_cls: a dataclass whose fields carry :func:`~wae_toolkit.config.fields.cli`
            metadata (:class:`~wae_toolkit.config.settings.RunConfig`).
        complete: the completion functions the fields may name (``complete="trackers"``...).

    Raises:
        TypeError: a field's declaration cannot become an option (a type the command line
            cannot give, an unknown completion).
    """
    complete = complete or {}
    hints = typing.get_type_hints(config_cls)
    options = []
    for f in dataclasses.fields(config_cls):
        option = cli_option(f)
        if option is None:  # not on the command line (see tests/test_cli_fields.py)
            continue
        where = f"{config_cls.__name__}.{f.name}"
        kind = _option_type(hints[f.name], option.parse, where)
        names = option.flags or ("--" + f.name.replace("_", "-"),)
        flag = next((n for n in names if n.startswith("--")), names[0])
        if kind is bool:  # --name/--no-name; None (not given) leaves the setting to the layers
            names = tuple(f"{n}/--no-{n[2:]}" if n == flag else n for n in names)
        if option.complete is not None and option.complete not in complete:
            raise TypeError(
                f"{where}: no completion called {option.complete!r}; "
                f"known: {', '.join(sorted(complete))}."
            )
        shown = default_text(f, option)
        help_text = escape(option.help) + (f" \\[default: {escape(shown)}]" if shown else "")
        info = typer.Option(
            None,
            *names,
            help=help_text,
            metavar=option.metavar,
            rich_help_panel=option.panel,
            autocompletion=complete[option.complete] if option.complete else None,
        )
        parameter = inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind
        )
        options.append(FieldOption(f.name, flag, option.parse, parameter))
    return options


def _option_type(hint: Any, parse: Parse, where: str) -> Any:
    """The type Typer parses the option's text as."""
    if parse in ("assignments", "names"):
        return list[str]
    if parse == "schedule":
        return str
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if str in rest:  # a name or path on the command line; objects only from Python
            rest = [str]
        hint = rest[0] if len(rest) == 1 else hint
    if hint not in _SCALARS:
        raise TypeError(
            f"{where}: the command line gives {', '.join(t.__name__ for t in _SCALARS)} values; "
            f"declare how to parse a {hint} (parse=...)."
        )
    return hint


def given_settings(values: Mapping[str, Any], options: Iterable[FieldOption]) -> dict[str, Any]:
    """The settings the command line gives, parsed: only the options given, so that the lower
    layers (defaults, preset, file) keep the others.

    Raises:
        UsageError: an option's text does not parse (``--cost-opt`` without ``=``...).
    """
    given: dict[str, Any] = {}
    for option in options:
        raw = values.get(option.name)
        if raw is None or (isinstance(raw, list | tuple) and not raw):
            continue
        given[option.name] = _PARSERS[option.parse](raw, option.flag)
    return given


def _assignments(items: list[str], flag: str) -> dict[str, str]:
    from wae_toolkit.plugins.options import parse_assignments

    return parse_assignments(items, flag)


def _names(items: list[str], flag: str) -> list[str]:
    """Values repeated and/or comma-separated, in order, each once (``""`` gives none)."""
    names = [n.strip().lower() for item in items for n in item.split(",")]
    return list(dict.fromkeys(n for n in names if n))


def _schedule(text: str, flag: str) -> list[tuple[int, float]] | None:
    from wae_toolkit.config.settings import parse_schedule

    return parse_schedule(text)  # None: the paper's proportions, given explicitly


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "value": lambda raw, flag: raw,
    "assignments": _assignments,
    "names": _names,
    "schedule": _schedule,
}
