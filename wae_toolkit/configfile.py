"""Run settings from a file: ``wae run --config exp.toml`` (TOML, JSON, or YAML when installed).

A file holds the same keys as :class:`~wae_toolkit.config.RunConfig` (and as the ``run`` section
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
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from wae_toolkit.config import RunConfig
from wae_toolkit.errors import UsageError, did_you_mean

__all__ = ["read_config_file", "SUFFIXES"]

SUFFIXES = (".toml", ".json", ".yaml", ".yml")
#: Keys of a run folder's ``run`` section that describe that folder, not the experiment.
_PER_RUN = ("out", "overwrite")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in ``path``, keyed like :class:`RunConfig` (plus ``preset``).

    Raises:
        UsageError: a missing or unreadable file, a syntax error (with its line), a key that is
            not a run setting (with a suggestion), or a file that is not a table of settings.
    """
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise UsageError(
            f"--config expects a .toml, .json or .yaml file; got '{p}' ({p.suffix or 'no suffix'})."
        )
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"The configuration file '{p}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the configuration file '{p}': {exc}.") from None
    data = _parse(p, text)
    if not isinstance(data, dict):
        raise UsageError(f"'{p}' must hold a table of run settings; got {type(data).__name__}.")
    if isinstance(data.get("run"), dict) and "data" in data:  # a run folder's config.json
        data = {k: v for k, v in data["run"].items() if k not in _PER_RUN}
    if "lambda" in data:
        if "lam" in data:
            raise UsageError(f"'{p}' sets both lambda and lam; keep one.")
        data["lam"] = data.pop("lambda")
    allowed = [f.name for f in dataclasses.fields(RunConfig)] + ["preset"]
    for key in data:
        if key not in allowed:
            raise UsageError(
                f"'{p}' has an unknown setting '{key}'.{did_you_mean(key, allowed)} "
                f"Allowed: {', '.join(sorted(allowed))}."
            )
    if data.get("preset") is not None and not isinstance(data["preset"], str):
        raise UsageError(f"'{p}': preset must be a preset's name; got {data['preset']!r}.")
    return data


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"'{path}' is not valid TOML: {exc}.") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise UsageError(f"'{path}' is not valid JSON: {exc}.") from None
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"Reading '{path}' needs PyYAML (pip install pyyaml); or write the file as TOML."
        ) from None
    try:
        return yaml.safe_load(text)  # never yaml.load: no Python objects from a file
    except yaml.YAMLError as exc:
        raise UsageError(f"'{path}' is not valid YAML: {str(exc).splitlines()[0]}.") from None
