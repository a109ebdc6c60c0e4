"""The toolkit's errors. Every error the toolkit raises on purpose derives from :class:`WaeError`.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``: 2 for usage errors
(the input was wrong and the message says what is allowed), 1 for failures.

A message that tells the user which setting to change names it as the reader gives it:
:func:`setting` writes ``out=`` / ``overwrite=True`` / ``data_opts={"limit": N}`` for Python
(:func:`wae_toolkit.fit`, :func:`wae_toolkit.train`, the library), and ``--out`` /
``--overwrite`` / ``--data-opt limit=N`` inside :func:`cli_wording`, which the ``wae`` command
holds around everything it runs.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator


class WaeError(Exception):
    """Root of all wae-toolkit errors."""

    exit_code = 1


class UsageError(WaeError, ValueError):
    """The user asked for something that is not allowed; the message says what is."""

    exit_code = 2


class UnknownPluginError(UsageError, KeyError):
    """No installed plugin of that kind has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginOptionError(UsageError):
    """A plugin option does not exist or has a value of the wrong type."""


class DataError(UsageError):
    """A data set could not be found, read, or used with the chosen network."""


class RunExistsError(UsageError):
    """The output folder already holds a run."""


class PluginLoadError(WaeError):
    """An installed plugin failed to import, or does not follow its interface."""


class PluginVersionWarning(UserWarning):
    """A saved run is loaded with plugins from other distributions or versions than it was
    trained with."""


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close.

    Only text is compared: a word that is not text (a YAML key such as ``1`` or ``null``) or is
    very long gets no suggestion, and choices that are not text are skipped.
    """
    if not isinstance(word, str) or len(word) > 200:  # difflib is quadratic in the length
        return ""
    names = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, on one line, so that a message about a huge
    or nested value stays one readable line."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails (an int beyond Python's digit limit, an odd object)
        if isinstance(value, int):
            text = f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        else:
            text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Naming a setting in a message: ``--out`` on the command line, ``out=`` in Python

#: Whether messages are being written for the command line (:func:`cli_wording`).
_WORDING = {"cli": False}
#: Settings whose flag is not ``--`` + the name with hyphens.
_FLAGS = {"lam": "--lambda"}
#: Settings that take a list in Python and a repeatable flag on the command line.
_LISTS = ("track",)
#: A placeholder in a message (``N``, ``FILE``, ``NAME``, ``...``): written as it is.
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*|\.\.\.|-?[0-9][0-9.e+-]*")
_UNSET = object()


@contextlib.contextmanager
def cli_wording() -> Iterator[None]:
    """Within it, :func:`setting` names settings by their command-line flags (what ``wae``
    holds around a command); outside it, by their Python names."""
    before = _WORDING["cli"]
    _WORDING["cli"] = True
    try:
        yield
    finally:
        _WORDING["cli"] = before


def on_cli() -> bool:
    """Whether messages are being written for the command line (see :func:`cli_wording`)."""
    return _WORDING["cli"]


def setting(name: str, value: object = _UNSET) -> str:
    """The run setting ``name`` (a :class:`~wae_toolkit.RunConfig` field), with ``value`` when
    given, as the reader of the message gives it.

    ``value`` is what follows the flag on the command line: ``setting("out")`` is ``--out`` or
    ``out=``; ``setting("overwrite", True)`` is ``--overwrite`` or ``overwrite=True``;
    ``setting("encoder", "gaussian")`` is ``--encoder gaussian`` or ``encoder="gaussian"``;
    ``setting("data_opts", "limit=N")`` is ``--data-opt limit=N`` or ``data_opts={"limit": N}``.
    Placeholders (``N``, ``FILE``, ``...``) and numbers are written as they are.
    """
    opts = name.endswith("_opts")
    if _WORDING["cli"]:
        flag = _FLAGS.get(name) or "--" + (name[:-1] if opts else name).replace("_", "-")
        if value is _UNSET or value is True:
            return flag
        if value is False:
            return f"--no-{flag[2:]}"
        return f"{flag} {value}"
    if value is _UNSET:
        return f"{name}="
    if opts and isinstance(value, str) and "=" in value:
        key, _, v = value.partition("=")
        return f"{name}={{{json.dumps(key)}: {_python_value(v)}}}"
    shown = _python_value(value)
    return f"{name}=[{shown}]" if name in _LISTS else f"{name}={shown}"


def setting_name(name: str) -> str:
    """The run setting ``name`` as the subject of a sentence: ``--device`` on the command line,
    ``device`` in Python (``"--device must be ..."``, ``"device must be ..."``)."""
    return setting(name) if _WORDING["cli"] else name


def _python_value(value: object) -> str:
    if isinstance(value, str):
        return value if _PLACEHOLDER.fullmatch(value) else json.dumps(value)
    return repr(value)
