"""Run settings from a file: ``wae run --config exp.toml`` (TOML, JSON, or YAML when installed).

A file holds the same keys as :class:`~wae_toolkit.RunConfig` (and as the ``run`` section
of a run folder's ``config.json``), plugin options as tables, and optionally a ``preset``::

    preset = "digits-gan"          # optional: start from a preset
    penalty = "gan-js"
    lambda = 3.0                   # "lambda" or "lam"
    epochs = 100

    [penalty_opts]
    hidden = 256
    layers = 4

A run folder's ``config.json`` is accepted as it is: its ``run`` section is read, without the
folder and the overwrite flag, so ``wae run --config runs/old/config.json`` repeats that run into
a new folder. Values are checked by the same validation as command-line flags.

A file is read only when it is a regular file of at most :data:`MAX_BYTES`; its values may nest
at most :data:`MAX_DEPTH` lists or tables deep and number at most :data:`MAX_VALUES` (YAML
aliases counted as often as they are used, so an alias bomb is refused before it is expanded).
Keys must be text and values text, numbers, booleans, null, lists or tables.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError, did_you_mean
from wae_toolkit.errors import short_repr as _show

__all__ = ["read_config_file", "SUFFIXES", "MAX_BYTES", "MAX_DEPTH", "MAX_VALUES"]

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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in ``path``, keyed like :class:`RunConfig` (plus ``preset``).

    Raises:
        UsageError: a missing, unreadable, too large or not regular file, a syntax error (with
            its line), values nested too deep, too many values (a YAML alias bomb), a key that
            is not text, a value of a type no setting takes, a key that is not a run setting
            (with a suggestion), or a file that is not a table of settings.
    """
    p = Path(path)
    name = quoted_path(p)
    if p.suffix.lower() not in SUFFIXES:
        suffix = _show(p.suffix) if p.suffix else "no suffix"
        raise UsageError(f"--config expects a .toml, .json or .yaml file; got {name} ({suffix}).")
    data = _parse(p, name, _read_text(p, name))
    if not isinstance(data, dict):
        got = "nothing" if data is None else _a(_kind(data))
        raise UsageError(f"{name} must hold a table of run settings; got {got}.")
    _check_values(name, data)
    if isinstance(data.get("run"), dict) and "data" in data:  # a run folder's config.json
        data = {k: v for k, v in data["run"].items() if k not in _PER_RUN}
    if "lambda" in data:
        if "lam" in data:
            raise UsageError(f"{name} sets both lambda and lam; keep one.")
        data["lam"] = data.pop("lambda")
    allowed = [f.name for f in dataclasses.fields(RunConfig)] + ["preset"]
    for key in data:
        if key not in allowed:
            raise UsageError(
                f"{name} has an unknown setting {_show(key)}.{did_you_mean(key, allowed)} "
                f"Allowed: {', '.join(sorted(allowed))}."
            )
    if data.get("preset") is not None and not isinstance(data["preset"], str):
        raise UsageError(f"{name}: preset must be a preset's name; got {_show(data['preset'])}.")
    return data


def quoted_path(p: str | Path) -> str:
    """A file's name quoted for a message, on one line whatever characters it holds."""
    return f"'{_clip(str(p), 200)}'"


def _read_text(p: Path, name: str) -> str:
    """The file's text; only a regular file of at most MAX_BYTES is opened (a FIFO or a device
    such as /dev/zero would block or never end)."""
    try:
        info = p.stat()
    except FileNotFoundError:
        raise UsageError(f"The configuration file {name} does not exist.") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        raise UsageError(f"Cannot read the configuration file {name}: {_reason(exc)}.") from None
    _check_regular(name, info)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            _check_regular(name, os.fstat(f.fileno()))  # replaced since stat()
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"Cannot read the configuration file {name}: {_reason(exc)}.") from None
    if len(raw) > MAX_BYTES:
        _too_big(name)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save it as UTF-8."
        ) from None


def _check_regular(name: str, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"The configuration file {name} is a folder; name a file in it.")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"The configuration file {name} is not a regular file (a pipe or a device, say); "
            "name a .toml, .json or .yaml file."
        )
    if info.st_size > MAX_BYTES:
        _too_big(name)


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


def _parse(path: Path, name: str, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        _check_toml_nesting(name, text)
        try:
            return tomllib.loads(text)
        except RecursionError:
            raise _too_deep(name) from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{name} is not valid TOML: {_first_line(exc)}.") from None
        except ValueError as exc:  # int() of a number beyond Python's digit limit
            if _is_huge_integer_error(exc):
                raise _huge_integer(name) from None
            raise UsageError(f"{name} is not valid TOML: {_first_line(exc)}.") from None
    if suffix == ".json":
        try:
            return json.loads(text, parse_int=_json_int)
        except RecursionError:
            raise _too_deep(name) from None
        except _HugeInteger:
            raise _huge_integer(name) from None
        except ValueError as exc:
            raise UsageError(f"{name} is not valid JSON: {_first_line(exc)}.") from None
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"Reading {name} needs PyYAML (pip install pyyaml); or write the file as TOML."
        ) from None
    return _parse_yaml(name, text, yaml)


#: What the TOML pre-scan looks at: strings and comments (skipped whole), dots, brackets, and
#: the characters that end a dotted key.
_TOML_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""'  # a multi-line basic string
    r"|'''[\s\S]*?'''"  # a multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # a basic string
    r"|'[^'\n]*'"  # a literal string
    r"|#[^\n]*"  # a comment
    r"|[.\[\]{}=,\n]"
)


def _check_toml_nesting(name: str, text: str) -> None:
    """Refuse brackets or dotted keys (``a.b.c = 1``, ``[a.b.c]``) nested deeper than MAX_DEPTH
    before tomllib reads them: its recursion and its handling of long dotted keys (time and
    memory growing with the square of the length) must never see them."""
    brackets = dots = 0
    for match in _TOML_TOKENS.finditer(text):
        c = match.group()[0]
        if c == ".":
            dots += 1
            if dots >= MAX_DEPTH:
                raise _too_deep(name)
            continue
        if c in "[{":
            brackets += 1
            if brackets > MAX_DEPTH + 1:  # + 1: the brackets of an [[array of tables]]
                raise _too_deep(name)
        elif c in "]}":
            brackets = max(0, brackets - 1)
        elif c in "\"'#":
            continue  # a string (in a dotted key: one part) or a comment
        dots = 0


def _json_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _HugeInteger from None


def _parse_yaml(name: str, text: str, yaml: Any) -> Any:
    """YAML through a safe loader (never ``yaml.load``: no Python objects from a file), in three
    steps: the parser's events are counted (values with aliases expanded, nesting depth) before
    anything is built, so an alias bomb or a deep nest costs a few kilobytes to refuse; then the
    node graph is composed and its keys checked; then the values are constructed."""
    loader_class = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader  # libyaml when built
    try:
        _check_yaml_events(name, yaml.parse(text, Loader=loader_class), yaml)
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml's own limit (1000), met while reading ahead
            raise _too_deep(name) from None
        raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise _too_deep(name) from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
        if node is None:
            return None
        _check_yaml_keys(name, node, yaml)
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise _too_deep(name) from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
        except (ValueError, TypeError, OverflowError) as exc:  # int(), a date out of range
            if _is_huge_integer_error(exc):
                raise _huge_integer(name) from None
            raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
    finally:
        loader.dispose()


def _check_yaml_events(name: str, events: Any, yaml: Any) -> None:
    """Refuse a YAML stream that expands to more than MAX_VALUES values (an alias counts the
    values of the anchored one), nests deeper than MAX_DEPTH, or uses an alias inside the value
    it names; stops at the first event past a limit."""
    total = 0
    sizes: dict[str, int] = {}  # anchor -> values in the anchored value, aliases expanded
    stack: list[tuple[int, str | None]] = []  # open collections: (total before, anchor)
    for event in events:
        if isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append((total, event.anchor))
            total += 1
            if len(stack) > MAX_DEPTH:
                raise _too_deep(name)
        elif isinstance(event, yaml.CollectionEndEvent) and stack:
            before, anchor = stack.pop()
            if anchor is not None:
                sizes[anchor] = total - before
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for _, anchor in stack):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise UsageError(
                    f"{name} uses the alias *{_clip(str(event.anchor), 40)} inside the value it "
                    f"names (line {line}), which would never end; copy the value instead."
                )
            total += sizes.get(event.anchor, 1)
        if total > MAX_VALUES:
            raise _too_many(name)


def _check_yaml_keys(name: str, root: Any, yaml: Any) -> None:
    """Refuse a mapping key that is not text (``1``, ``null``, ``true``, a list), naming it and
    its line; each node is visited once, however often aliases use it."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if not (isinstance(k, yaml.ScalarNode) and k.tag in _TEXT_KEY_TAGS):
                    raise UsageError(
                        f"{name}: the key {_yaml_key(k, yaml)} on line {k.start_mark.line + 1} "
                        "is not text; names of settings and options are text (quote them)."
                    )
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_key(node: Any, yaml: Any) -> str:
    """``1 (an integer)``, ``null``, ``(a list)``: a key node as the message names it."""
    if isinstance(node, yaml.ScalarNode):
        kind = node.tag.rsplit(":", 1)[-1]
        kinds = {"int": "an integer", "float": "a number", "bool": "a boolean", "null": "null"}
        return f"{_clip(node.value, 40) or '~'} ({kinds.get(kind, _a(kind))})"
    return "(a list)" if isinstance(node, yaml.SequenceNode) else "(a table)"


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
