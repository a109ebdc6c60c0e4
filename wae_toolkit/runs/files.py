"""Reading one file of a run folder, never raising: the base of :mod:`wae_toolkit.runs.read`.

Each reader says why a file could not be used instead of raising: a link is followed, but a
file that is not a plain file, too large, not UTF-8 or not JSON reads as missing, with a few
words saying why. Integers too long for a float are read as floats.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from wae_toolkit.runs.names import METRICS, WEIGHTS

__all__ = [
    "RunFileWarning",
    "UnreadableFile",
    "check_plain_file",
    "parse_json",
    "read_json_file",
    "read_json_object",
    "read_json",
    "as_object",
    "file_problem",
    "read_metrics_file",
    "read_metrics",
    "read_png",
    "weights_hash",
]


class RunFileWarning(UserWarning):
    """A file of a run folder that using its model does not need (``summary.json``) could not
    be read; it was treated as missing."""


#: The largest JSON file of a run folder that is read (config.json, summary.json, eval.json).
MAX_JSON_BYTES = 64 * 2**20
#: A larger figure file is not read (wae run's figures are well under 1 MB).
MAX_PNG_BYTES = 32 * 2**20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _parse_int(text: str) -> int | float:
    """A JSON integer; beyond 18 digits a float (``inf`` past a float's range). Run files never
    hold such integers, and a float cannot overflow where the value is drawn or formatted."""
    return int(text) if len(text) <= 19 else float(text)


class _TooDeep(ValueError):
    """JSON nested deeper than Python's recursion allows."""


def parse_json(text: str | bytes) -> Any:
    """JSON text as Python values; integers too long for a float are read as floats.

    Raises:
        ValueError: not JSON, or nested too deeply.
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise _TooDeep("nested too deeply") from None


class UnreadableFile(Exception):
    """Why a run file cannot be read: a few words that follow "could not be read"."""


def check_plain_file(path: Path, limit: int | None = MAX_JSON_BYTES) -> None:
    """Check that ``path`` is a plain file that can be read (a link is followed; nothing is
    changed).

    Raises:
        FileNotFoundError: there is no entry of that name (not even a broken link).
        UnreadableFile: a broken link, a link loop, not a plain file, larger than ``limit`` bytes.
    """
    if not os.path.lexists(path):
        raise FileNotFoundError(path)
    try:
        st = path.stat()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            raise UnreadableFile("a symbolic link to nothing") from None
        raise UnreadableFile(exc.strerror or type(exc).__name__) from None
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile("not a plain file")
    if limit is not None and st.st_size > limit:
        raise UnreadableFile(f"larger than {limit // 2**20} MB")


def read_json(path: Path) -> tuple[Any, str | None, str]:
    """The JSON value in ``path``, why it could not be read (``None`` when it could, or is
    absent), and how it went: ``"read"``, ``"absent"``, ``"unreadable"`` (its bytes could not be
    read) or ``"invalid"`` (not UTF-8, not JSON, nested too deeply)."""
    try:
        check_plain_file(path)
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None, None, "absent"
    except UnreadableFile as exc:
        return None, str(exc), "unreadable"
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__, "unreadable"
    except UnicodeDecodeError:
        return None, "not UTF-8 text", "invalid"
    try:
        return parse_json(text), None, "read"
    except _TooDeep as exc:
        return None, str(exc), "invalid"
    except ValueError as exc:
        return None, type(exc).__name__, "invalid"


def as_object(value: Any, why: str | None, how: str) -> tuple[dict[str, Any] | None, str | None]:
    """A value of :func:`read_json` that must be a JSON object, and why it is not one."""
    if how == "read" and not isinstance(value, dict):
        return None, "not a JSON object"
    return value, why


def read_json_file(path: str | Path) -> tuple[Any, str | None]:
    """The JSON value in ``path``, and ``None``; ``(None, None)`` when there is no such entry;
    ``(None, why)`` when it cannot be read or is not JSON (``why``: a few words, such as
    ``"JSONDecodeError"`` or ``"Permission denied"``). Links are followed; nothing is changed.
    Never raises."""
    value, why, _ = read_json(Path(path))
    return value, why


def read_json_object(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """Like :func:`read_json_file`, for a file that must hold a JSON object (``summary.json``,
    ``eval.json``); any other JSON value gives ``(None, "not a JSON object")``."""
    return as_object(*read_json(Path(path)))


def file_problem(name: str, why: str) -> str:
    """``"summary.json could not be read (JSONDecodeError)"``: ``why`` from
    :func:`read_json_object` in words, without a final period."""
    if why == "not a JSON object":
        return f"{name} is not a JSON object"
    return f"{name} could not be read ({why})"


def read_metrics_file(path: str | Path) -> tuple[list[dict[str, Any]], int, str | None]:
    """The records of a ``metrics.jsonl`` file: its lines that are JSON objects, how many other
    lines were skipped, and why the file could not be read at all (``None`` when it could, or
    is absent). Bytes that are not UTF-8 are replaced. Never raises."""
    path = Path(path)
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        check_plain_file(path, limit=None)
        with open(path, "rb") as fh:
            for raw in fh:
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    record = parse_json(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict):
                    records.append(record)
                else:
                    bad += 1
    except FileNotFoundError:
        return [], 0, None
    except UnreadableFile as exc:
        return [], 0, str(exc)
    except OSError as exc:
        return records, bad, exc.strerror or type(exc).__name__
    return records, bad, None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``: its lines that are JSON objects (the others
    are skipped; an absent or unreadable file has none). Never raises."""
    return read_metrics_file(Path(run_dir) / METRICS)[0]


def weights_hash(run_dir: str | Path) -> str:
    """SHA-256 of the run's ``model.safetensors``.

    Raises:
        OSError: the file cannot be read.
    """
    return hashlib.sha256((Path(run_dir) / WEIGHTS).read_bytes()).hexdigest()


def read_png(path: Path) -> tuple[bytes | None, str | None]:
    """The bytes of a PNG figure, or why there are none."""
    if not path.is_file():
        return None, None
    try:
        if path.stat().st_size > MAX_PNG_BYTES:
            return None, f"{path.name} is larger than {MAX_PNG_BYTES // 2**20} MB"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path.name} could not be read ({exc.strerror or exc})"
    if not data.startswith(_PNG_SIGNATURE):
        return None, f"{path.name} is not a PNG file"
    return data, None
