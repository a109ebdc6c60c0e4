"""How a run setting appears on the command line, declared once, beside the setting.

Every field of :class:`~wae_toolkit.config.settings.RunConfig` carries a :class:`CliOption` in
its ``dataclasses.field(metadata=...)`` (written with :func:`cli`); ``wae run`` builds its options
from them (:mod:`wae_toolkit.cli.run_cmd`), so a new setting is one field with its metadata and
its checks in ``RunConfig.problems``. This is plain data: the configuration never imports the
command line (or Typer); the command line turns it into options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wae_toolkit.errors import UsageError, setting_name, short_repr

__all__ = [
    "CliOption",
    "cli",
    "cli_option",
    "default_text",
    "PARSERS",
    "plain_value",
    "settings_values",
]

#: How the text of an option becomes the setting's value:
#:
#: - ``value``: one value of the field's type (text, integer, number; a boolean field is a
#:   ``--name/--no-name`` flag);
#: - ``assignments``: a repeatable ``NAME=VALUE`` option, collected into a mapping (plugin
#:   options);
#: - ``names``: a repeatable option whose values may also be comma-separated names, kept in
#:   order, each once, lower-cased;
#: - ``schedule``: ``EPOCH:FACTOR,...``, ``paper`` or ``none``
#:   (:func:`parse_schedule`).
Parse = Literal["value", "assignments", "names", "schedule"]
PARSERS: tuple[Parse, ...] = ("value", "assignments", "names", "schedule")

#: The key of :class:`CliOption` in a field's metadata.
KEY = "cli"


@dataclass(frozen=True)
class CliOption:
    """The ``wae run`` option of one run setting.

    Attributes:
        help: one or two sentences for ``wae run --help``, plain text (no markup); the default
            is added after it as ``[default: ...]``.
        flags: the option's names, e.g. ``("--epochs", "-e")``; empty means ``--field-name``
            (underscores as hyphens). A boolean field gets ``--name/--no-name`` from its first
            long name.
        default_help: what ``[default: ...]`` says, when the field's default alone would not
            tell (``None`` values, defaults that depend on the data or the machine); by default
            the field's default itself (``no``/``yes`` for booleans, ``none`` for an empty list,
            nothing for an empty mapping or ``None``).
        metavar: the placeholder of the value in the help (``FILE``, ``NAME``...); by default
            the value's type.
        panel: the help panel the option is listed in; ``None`` is the common ``Options``.
        complete: what completes the value in the shell: a plugin kind (``cost``,
            ``penalty``, ``prior``, ``network``: the installed names) or ``trackers``.
        parse: how the option's text becomes the value (see :data:`Parse`).
    """

    help: str
    flags: tuple[str, ...] = ()
    default_help: str | None = None
    metavar: str | None = None
    panel: str | None = None
    complete: str | None = None
    parse: Parse = "value"

    def __post_init__(self) -> None:
        if self.parse not in PARSERS:
            raise ValueError(f"parse must be one of {', '.join(PARSERS)}; got {self.parse!r}")
        bad = [f for f in self.flags if not f.startswith("-")]
        if bad:
            raise ValueError(f"flags must start with '-' or '--'; got {bad}")


def cli(
    help: str,
    *flags: str,
    default_help: str | None = None,
    metavar: str | None = None,
    panel: str | None = None,
    complete: str | None = None,
    parse: Parse = "value",
) -> dict[str, CliOption]:
    """The metadata of a run setting: ``field(default=..., metadata=cli("Help.", "--flag"))``."""
    option = CliOption(help, flags, default_help, metavar, panel, complete, parse)
    return {KEY: option}


def cli_option(f: dataclasses.Field[Any]) -> CliOption | None:
    """The :class:`CliOption` a dataclass field declares, or ``None`` when it has none."""
    metadata: Mapping[str, Any] = f.metadata
    option = metadata.get(KEY)
    return option if isinstance(option, CliOption) else None


def default_text(f: dataclasses.Field[Any], option: CliOption) -> str | None:
    """What ``[default: ...]`` says for field ``f``; ``None`` to say nothing."""
    if option.default_help is not None:
        return option.default_help
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return None
    if value is None or value == {}:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple) and not value:
        return "none"
    return str(value)


def parse_schedule(text: str) -> list[tuple[int, float]] | None:
    """Parse ``"30:0.5,50:0.1"`` into ``[(30, 0.5), (50, 0.1)]``; ``"none"`` is ``[]`` (constant)
    and ``"paper"`` is ``None`` (the paper's proportions)."""
    if text.strip().lower() in ("none", "constant", ""):
        return []
    if text.strip().lower() == "paper":
        return None
    out: list[tuple[int, float]] = []
    for part in (s.strip() for s in text.split(",")):
        if not part:
            continue
        epoch, sep, factor = part.partition(":")
        try:
            if not sep:
                raise ValueError
            out.append((int(epoch), float(factor)))
        except ValueError:
            raise UsageError(
                f"{setting_name('lr_schedule')} expects EPOCH:FACTOR pairs separated by commas "
                f"(such as 30:0.5,50:0.1), 'paper' or 'none'; got '{part}'."
            ) from None
    return out


def plain_value(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (tuples and lists item by item); anything
    else as it is."""
    if isinstance(value, tuple | list) and any(type(v).__module__ == "numpy" for v in value):
        return type(value)(plain_value(v) for v in value)
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item) and getattr(value, "ndim", 1) == 0:
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def settings_values(d: Any, names: set[str]) -> dict[str, Any]:
    """The keyword arguments ``RunConfig.from_dict`` builds a config with: ``d`` checked to be a
    mapping of setting ``names``, and the schedule's pairs as tuples.

    Raises:
        UsageError: ``d`` is not a mapping, or has keys that are no run setting.
    """
    if not isinstance(d, dict):
        raise UsageError(
            "The run settings must be a mapping (a JSON object) of setting names to values; "
            f"got {short_repr(d)}."
        )
    unknown = sorted((k for k in d if k not in names), key=str)
    if unknown:
        raise UsageError(
            f"Unknown run setting(s) {', '.join(short_repr(k) for k in unknown)}; "
            f"allowed: {', '.join(sorted(names))}."
        )
    d = dict(d)
    if "lr_schedule" in d and isinstance(d["lr_schedule"], list):
        d["lr_schedule"] = [tuple(x) if isinstance(x, list) else x for x in d["lr_schedule"]]
    return d
