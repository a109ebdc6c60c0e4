"""What a plugin class declares besides its methods: the interface version it was written for
and constructor arguments that can be options. The registry refuses a plugin that gets them
wrong when it loads (the plugin's fault, said before any option is given); the conformance kit
checks them too, with the class docstring.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, Union

from wae_toolkit.errors import setting
from wae_toolkit.plugins.options import plugin_options

__all__ = [
    "OPTION_TYPES",
    "convertible",
    "declaration_problems",
    "declaration_message",
    "interface_version_supported",
]

#: The types an option may be annotated with, as a sentence names them.
OPTION_TYPES = "bool, int, float, str, Literal[...], tuple[float, ...] or X | None"
_SCALARS: tuple[Any, ...] = (bool, int, float, str, type(None))
_EMPTY = inspect.Parameter.empty


def convertible(annotation: Any) -> bool:
    """Whether an option's text converts to ``annotation``: one of :data:`OPTION_TYPES`, or a
    union, tuple or list of them."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in _SCALARS or origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return all(convertible(a) for a in args)
    if origin in (tuple, list):
        return bool(args) and all(convertible(a) for a in args if a is not Ellipsis)
    return False


def declaration_problems(cls: type, kind: str) -> list[str]:
    """What keeps ``cls``'s constructor arguments from being options set by name, one phrase
    per argument (``"'scale' has no default and no type annotation"``); empty when none.

    Every argument needs a default (a prior's ``dim`` excepted: the toolkit fills it in) and a
    type annotation: without them ``--penalty-opt scale=1`` could not be converted and would
    hand the plugin the text ``"1"``. Annotations other than :data:`OPTION_TYPES` are left to
    the conformance kit (a value given in Python works with them).
    """
    problems = []
    for spec in plugin_options(cls):
        if kind == "prior" and spec.name == "dim":
            continue
        ann = spec.annotation
        untyped = ann is _EMPTY or ann is Any
        if isinstance(ann, str):
            problems.append(
                f"'{spec.name}' is annotated '{ann}', which cannot be resolved when the plugin "
                "is imported"
            )
        elif spec.required and untyped:
            problems.append(f"'{spec.name}' has no default and no type annotation")
        elif spec.required:
            problems.append(f"'{spec.name}' has no default")
        elif untyped:
            problems.append(f"'{spec.name}' has no type annotation")
    return problems


def declaration_message(cls: type, kind: str, plugin: str) -> str | None:
    """The sentence refusing ``cls`` (described as ``plugin``: "The penalty plugin 'x' from
    wae-x (module:Class)") when :func:`declaration_problems` finds any; ``None`` otherwise, and
    for a data source that overrides ``from_options`` (it reads its options its own way)."""
    from wae_toolkit.plugins.interfaces import DataSource

    reader = getattr(getattr(cls, "from_options", None), "__func__", None)
    if kind == "data" and reader is not getattr(DataSource.from_options, "__func__", None):
        return None  # a data source that reads its options its own way
    problems = declaration_problems(cls, kind)
    if not problems:
        return None
    first = problems[0].split("'")[1]
    return (
        f"{plugin} cannot take its options: in its constructor {'; '.join(problems)}. Give "
        f"every argument a default and a type annotation ({OPTION_TYPES}), for example "
        f"'{first}: float = 1.0', so that {setting(f'{kind}_opts', f'{first}=...')} is "
        "converted to that type."
    )


def interface_version_supported(declared: object) -> bool:
    """Whether a plugin written for interface ``declared`` (``"MAJOR.MINOR"``) loads with this
    wae-toolkit: the same major version, a minor version not newer than
    :data:`~wae_toolkit.plugins.interfaces.INTERFACE_VERSION`'s."""
    from wae_toolkit.plugins.interfaces import INTERFACE_VERSION

    ours = tuple(int(p) for p in INTERFACE_VERSION.split("."))
    try:
        theirs = tuple(int(p) for p in str(declared).split("."))
    except ValueError:
        return False
    return len(theirs) == 2 and theirs[0] == ours[0] and theirs[1] <= ours[1]
