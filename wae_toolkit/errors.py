"""The toolkit's errors. Every error the toolkit raises on purpose derives from :class:`WaeError`.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``: 2 for usage errors
(the input was wrong and the message says what is allowed), 1 for failures.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable


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
