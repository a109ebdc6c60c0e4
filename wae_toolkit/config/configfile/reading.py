"""Reading a configuration file: a regular file of bounded size, TOML, JSON or YAML, checked."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from wae_toolkit.config.configfile.file_limits import (
    _PER_RUN,
    MAX_BYTES,
    MAX_DEPTH,
    SUFFIXES,
    _a,
    _check_values,
    _clip,
    _first_line,
    _huge_integer,
    _HugeInteger,
    _is_huge_integer_error,
    _kind,
    _reason,
    _too_big,
    _too_deep,
)
from wae_toolkit.config.configfile.yaml_reader import (
    _parse_yaml,
)
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError, did_you_mean, on_cli
from wae_toolkit.errors import short_repr as _show


def read_config_file(path: str | Path, *, sweep: bool = False) -> dict[str, Any]:
    """The settings in ``path``, keyed like :class:`RunConfig` (plus ``preset``; with ``sweep``,
    also the ``[sweep]`` table that ``wae sweep`` reads, which a single run refuses).

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
        what = "--config expects" if on_cli() else "A configuration file must be"
        raise UsageError(f"{what} a .toml, .json or .yaml file; got {name} ({suffix}).")
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
    if "sweep" in data and not sweep:
        raise UsageError(
            f"{name} holds a [sweep] table, which describes a hyper-parameter search: run it "
            f"with 'wae sweep run {_clip(str(p), 200)}', or remove the table to train one run."
        )
    allowed = [f.name for f in dataclasses.fields(RunConfig)] + ["preset"] + ["sweep"] * sweep
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
