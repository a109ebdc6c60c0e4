"""``wae report``: one self-contained HTML page about a run, or comparing several runs.

The runs are named by their folders, or by a folder of runs (``runs/``: every run in it); among
several paths (``runs/*``), one that holds no run (the MLflow store ``runs/mlartifacts``) is left
out with a :class:`SkippedPathWarning` and a note on the page. Runs that differ only by their
seed share one column of the comparison, their metrics as mean ± standard deviation.

The page is built from what the run folders hold, read by
:func:`wae_toolkit.runs.read.read_run` as JSON and PNG only (nothing is unpickled, no model is
loaded):

- ``config.json``: the settings (with where each came from, when recorded), the plugins and the
  versions;
- ``summary.json``: the final evaluation; a run that was stopped has none, and the page shows the
  last held-out evaluation logged in ``metrics.jsonl`` instead;
- ``metrics.jsonl``: the per-epoch table and the loss curves, drawn here with matplotlib (several
  runs overlaid in a comparison);
- ``eval.json`` (``wae eval``), when it matches the run's current weights: the offline metrics;
- the figures ``wae run`` wrote (``samples.png``, ``reconstructions.png``,
  ``interpolations.png``, ``data.png``, ``latent.png``), embedded as they are.

Everything is inside the one file: images are ``data:`` URIs, the style sheet is inline, no
script is needed and a Content-Security-Policy forbids loading anything else. Every string taken
from a run is HTML-escaped. The page carries ``<meta name="generator" content="wae-toolkit ...">``:
:func:`write_report` replaces a file carrying it (a report written earlier) but no other file
unless ``overwrite`` is True.

Nothing here prints.
"""

from __future__ import annotations

from wae_toolkit.report.page import (
    COMPARISON_FILE,
    GENERATOR,
    build_report,
    default_report_path,
    is_report,
    write_report,
)
from wae_toolkit.report.run_paths import SkippedPathWarning
from wae_toolkit.runs.names import REPORT_FILE

__all__ = [
    "GENERATOR",
    "REPORT_FILE",
    "COMPARISON_FILE",
    "build_report",
    "default_report_path",
    "is_report",
    "write_report",
    "SkippedPathWarning",
]
