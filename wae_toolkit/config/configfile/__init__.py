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

from wae_toolkit.config.configfile.file_limits import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_VALUES,
    SUFFIXES,
)
from wae_toolkit.config.configfile.reading import (
    quoted_path,
    read_config_file,
)

__all__ = [
    "read_config_file",
    "quoted_path",
    "SUFFIXES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
]
