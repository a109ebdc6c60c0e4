"""The limits of a configuration file (size, nesting, values, integers) and their messages."""

from __future__ import annotations

import datetime
from typing import Any

from wae_toolkit.errors import UsageError
from wae_toolkit.errors import short_repr as _show

SUFFIXES = (".toml", ".json", ".yaml", ".yml")


#: Keys of a run folder's ``run`` section that describe that folder, not the experiment.
_PER_RUN = ("out", "overwrite")


#: The largest configuration file read (a run's settings take a few hundred bytes).
MAX_BYTES = 1 << 20


#: The deepest nesting of lists and tables (a run's settings need 3: ``lr_schedule`` pairs).
MAX_DEPTH = 32


#: The most values (scalars, lists and tables, YAML aliases expanded) in one file.
MAX_VALUES = 100_000


_PLAIN = (str, int, float, bool, type(None))


#: The largest integer a file may hold: torch, NumPy and checkpoints count in 64 bits.
_INT64 = (1 << 63) - 1


#: YAML key tags that construct text keys (``<<`` merges a table, ``=`` is a text key).
_TEXT_KEY_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


class _HugeInteger(Exception):
    """Raised by the JSON reader for an integer with more digits than Python converts."""


def _too_big(name: str) -> None:
    raise UsageError(
        f"The configuration file {name} is larger than {MAX_BYTES // (1 << 20)} MiB, the most "
        "a configuration file may be (a run's settings take a few hundred bytes)."
    )


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc)).rstrip(".") or type(exc).__name__


def _too_deep(name: str) -> UsageError:
    return UsageError(
        f"{name} nests lists or tables more than {MAX_DEPTH} levels deep, the most allowed "
        "(run settings need 3)."
    )


def _too_many(name: str) -> UsageError:
    return UsageError(
        f"{name} holds more than {MAX_VALUES} values (YAML aliases counted each time they are "
        "used), the most allowed (run settings take a few dozen)."
    )


def _huge_integer(name: str, where: str = "") -> UsageError:
    """An integer too long for Python to read (over 4300 digits), or beyond 64 bits."""
    what = "beyond 64 bits" if where else "too long to read (thousands of digits)"
    return UsageError(
        f"{name} holds an integer {what}{where}; settings and options take integers from "
        f"{-_INT64 - 1} to {_INT64}."
    )


def _is_huge_integer_error(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "integer string conversion" in str(exc)


def _at(path: tuple[Any, ...]) -> str:
    """`` at penalty_opts.hidden`` or `` at lr_schedule[0][1]``; empty at the top level."""
    text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
    return f" at {_clip(text, 80)}" if path else ""


def _kind(value: Any) -> str:
    kinds = {
        dict: "table",
        list: "list",
        str: "text",
        bool: "boolean",
        int: "integer",
        float: "number",
        bytes: "binary value",
        set: "set",
        tuple: "list of pairs",
        datetime.datetime: "date and time",
        datetime.date: "date",
        datetime.time: "time of day",
    }
    return kinds.get(type(value), type(value).__name__)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _first_line(exc: BaseException) -> str:
    """A parser's message on one line, without its final full stop; a YAML error says what is
    wrong and where (its first line only says what was being parsed)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        text = f"{context}: " if context else ""
        text += f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    else:
        text = next((line for line in str(exc).splitlines() if line.strip()), "")
    return _clip(text or type(exc).__name__, 300).rstrip(".")


def _clip(text: str, limit: int) -> str:
    """``text`` on one line of printable characters (others escaped), cut to ``limit``."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_values(name: str, data: Any) -> None:
    """Refuse values nested too deep, too many values, keys that are not text, values of types
    no setting takes (dates, sets, bytes) and integers too long to print, naming where."""
    count = 0
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(data, 0, ())]
    while stack:
        value, level, path = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise _too_many(name)
        if isinstance(value, dict | list):
            if level >= MAX_DEPTH:
                raise _too_deep(name)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                if isinstance(value, dict) and not isinstance(k, str):
                    raise UsageError(
                        f"{name} has a key that is not text ({_show(k, 40)}){_at(path)}; "
                        "names of settings and options are text."
                    )
                stack.append((v, level + 1, (*path, k)))
        elif not isinstance(value, _PLAIN):
            raise UsageError(
                f"{name} holds {_a(_kind(value))}{_at(path)}; settings take text, numbers, "
                "true or false, null, lists and tables."
            )
        elif isinstance(value, int) and not -_INT64 - 1 <= value <= _INT64:
            raise _huge_integer(name, _at(path) or " at the top level")
