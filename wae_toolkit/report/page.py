"""The report page: the single-run and comparison bodies, the style sheet, and writing it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from wae_toolkit._version import __version__
from wae_toolkit.errors import UsageError, setting
from wae_toolkit.report.comparison import config_diff, metrics_compare, runs_table
from wae_toolkit.report.curves import curves_section
from wae_toolkit.report.embed import figures_compare, figures_single
from wae_toolkit.report.markup import esc
from wae_toolkit.report.run_paths import SkippedPathWarning, find_runs
from wae_toolkit.report.sections import (
    config_section,
    epoch_table,
    final_section,
    header_facts,
)
from wae_toolkit.runs.names import REPORT_FILE
from wae_toolkit.runs.read import RunFolder
from wae_toolkit.runs.safe_io import write_text

#: The content of the page's ``<meta name="generator">``; a file holding it may be replaced.
GENERATOR = f"wae-toolkit {__version__}"
_MARKER = b'<meta name="generator" content="wae-toolkit'
#: Where the comparison of several runs goes by default, in the current folder.
COMPARISON_FILE = "wae-report.html"


def read_runs(run_dirs: Sequence[str | Path]) -> list[RunFolder]:
    """The runs to report on (:func:`~wae_toolkit.report.run_paths.find_runs`): run folders,
    or folders of runs; a path among several that holds no run is left out with a
    :class:`~wae_toolkit.report.run_paths.SkippedPathWarning`.

    Raises:
        UsageError: no run, a path given twice, a path that does not exist, or a single path
            that is not a readable run folder (one sentence).
    """
    return _read(run_dirs)[0]


def _read(run_dirs: Sequence[str | Path]) -> tuple[list[RunFolder], list[str]]:
    runs, skipped = find_runs(run_dirs)
    if skipped:
        warnings.warn(_left_out(skipped), SkippedPathWarning, stacklevel=3)
    return runs, skipped


def _left_out(skipped: list[str]) -> str:
    return f"Left out {len(skipped)} path(s) that hold no run: {', '.join(skipped)}."


def _notes(run: RunFolder, prefix: str = "") -> str:
    return "".join(f'<p class="note warn">{esc(prefix + n)}.</p>' for n in run.notes)


def _single_body(run: RunFolder) -> tuple[str, str]:
    facts = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in header_facts(run))
    header = (
        f'<header><p class="kicker">wae-toolkit run report</p><h1>{esc(run.label)}</h1>'
        f'<dl class="facts">{facts}</dl>{_notes(run)}</header>'
    )
    sections = [
        ("configuration", "Configuration", config_section(run)),
        (
            "evaluation",
            "Final evaluation" if run.finished else "Last evaluation",
            final_section(run),
        ),
        ("curves", "Loss curves", curves_section([run])),
        ("figures", "Figures", figures_single(run)),
        ("epochs", "Per-epoch metrics", epoch_table(run)),
    ]
    return header + _nav(sections) + _sections(sections), f"wae report: {run.label}"


def _nav(sections: list[tuple[str, str, str]]) -> str:
    links = " &middot; ".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    return f"<nav>{links}</nav>"


def _sections(sections: list[tuple[str, str, str]]) -> str:
    return "".join(
        f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'
        for sid, title, body in sections
    )


def _compare_body(runs: list[RunFolder]) -> tuple[str, str]:
    notes = "".join(_notes(r, f"{r.label}: ") for r in runs)
    header = (
        f'<header><p class="kicker">wae-toolkit comparison</p><h1>{len(runs)} runs compared</h1>'
        f"{runs_table(runs)}{notes}</header>"
    )
    sections = [
        ("configuration", "Settings that differ", config_diff(runs)),
        ("metrics", "Final metrics", metrics_compare(runs)),
        ("curves", "Loss curves", curves_section(runs)),
        ("figures", "Figures", figures_compare(runs)),
    ]
    title = "wae report: " + ", ".join(r.label for r in runs)
    return header + _nav(sections) + _sections(sections), title


_CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--head:#f6f8fa;--best:#dafbe1;--warn:#9a6700}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:#fff;margin:0 auto;max-width:1280px;padding:24px 32px 48px}
h1{font-size:26px;margin:2px 0 12px;overflow-wrap:anywhere}
h2{font-size:19px;border-bottom:1px solid var(--line);padding-bottom:4px;margin:34px 0 12px}
h3{font-size:15px;margin:18px 0 6px}
.kicker{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.06em;font-size:12px}
nav{margin:16px 0 0;padding:8px 0;border-top:1px solid var(--line);
border-bottom:1px solid var(--line)}
a{color:#0969da;text-decoration:none}
.facts{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0}
.facts div{min-width:0}.facts dt{font-size:12px;color:var(--muted)}.facts dd{margin:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:4px 0}
th,td{border-bottom:1px solid var(--line);padding:3px 10px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
th.group{background:#fff;color:var(--muted);font-weight:600;font-size:12px;padding-top:10px}
.num{text-align:right;white-space:nowrap}
td.key{white-space:nowrap}td.src,.muted{color:var(--muted)}
td code{overflow-wrap:anywhere}
.diff td code{overflow-wrap:normal}.pm{white-space:nowrap}
.runs-of{font-weight:400;font-size:12px;white-space:normal}
.opt{color:var(--muted)}
.best{background:var(--best);font-weight:600}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12.5px}
.badge{display:inline-block;padding:0 9px;border-radius:10px;font-size:12.5px;font-weight:600}
.badge.finished{background:#dafbe1;color:#1a7f37}.badge.stopped{background:#fff8c5;color:#9a6700}
.note{color:var(--muted);font-size:13px;margin:6px 0;max-width:900px}
.warn{color:var(--warn)}
.missing{border:1px dashed var(--line);border-radius:6px;color:var(--muted);padding:14px;
margin:4px 0;font-size:13px}
.scroll{overflow-x:auto}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:4px 28px;
align-items:start}
.cols table{width:100%}
.runs td:nth-child(-n+5){white-space:nowrap}
.figs{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.side{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:20px;
align-items:start}
figure{margin:0;max-width:100%}
figcaption{font-size:13px;margin-bottom:6px;max-width:520px}
img{max-width:100%;height:auto;display:block}
img.pixels{image-rendering:pixelated}
img.curves{width:100%}
details{margin:8px 0}summary{cursor:pointer;color:#0969da}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.c0{background:#1f77b4}.c1{background:#ff7f0e}.c2{background:#2ca02c}.c3{background:#d62728}
.c4{background:#9467bd}.c5{background:#8c564b}.c6{background:#e377c2}.c7{background:#7f7f7f}
.c8{background:#bcbd22}.c9{background:#17becf}
footer{margin-top:40px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);
padding-top:8px}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def build_report(run_dirs: Sequence[str | Path]) -> str:
    """The HTML page about one run, or comparing several runs, as a string (see
    :func:`read_runs` for the paths it takes).

    Raises:
        UsageError: no run, a path given twice, a path that does not exist, or a single path
            that is not a readable run folder (one sentence).
    """
    return _page(*_read(run_dirs))


def _page(runs: list[RunFolder], skipped: Sequence[str] = ()) -> str:
    body, title = _single_body(runs[0]) if len(runs) == 1 else _compare_body(runs)
    if skipped:
        note = f'<p class="note warn">{esc(_left_out(list(skipped)))}</p>'
        body = body.replace("</header>", f"{note}</header>", 1)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="generator" content="{esc(GENERATOR)}">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<footer>Written by {esc(GENERATOR)} (wae report). Everything is in this one file; "
        "figures are embedded.</footer>\n</body>\n</html>\n"
    )


def default_report_path(run_dirs: Sequence[str | Path]) -> Path:
    """``RUN/report.html`` for one run, ``./wae-report.html`` for several."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / REPORT_FILE
    return Path(COMPARISON_FILE)


def is_report(path: Path) -> bool:
    """Whether ``path`` is a page written by :func:`write_report` (it carries the marker)."""
    try:
        with open(path, "rb") as fh:
            return _MARKER in fh.read(4096)
    except OSError:
        return False


def _check_target(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"The report's file name must end in .html or .htm; got '{path}'.")
    if path.is_dir():
        raise UsageError(f"'{path}' is a folder; give a file name ending in .html for the report.")
    if path.exists() and not overwrite and not is_report(path):
        raise UsageError(
            f"'{path}' exists and is not a report written by wae report; choose another "
            f"{setting('out')}, or pass {setting('overwrite', True)} to replace it."
        )
    if not path.parent.is_dir():
        raise UsageError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")


def write_report(
    run_dirs: Sequence[str | Path], out: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write the report of ``run_dirs`` (see :func:`build_report`) and return its path.

    Args:
        run_dirs: one run folder, several to compare, or folders of runs (``runs/``: each
            run in it); among several paths, one that holds no run is left out with a note.
        out: the ``.html`` file; by default :func:`default_report_path`.
        overwrite: replace ``out`` even when it is not a report written here. A report written
            here earlier (it carries ``<meta name="generator" content="wae-toolkit ...">``) is
            replaced without it.

    Raises:
        UsageError: a bad run folder, or an output path that may not be written (one sentence).
    """
    runs, skipped = _read(run_dirs)
    path = Path(out) if out is not None else default_report_path([r.path for r in runs])
    _check_target(path, overwrite)
    write_text(path, _page(runs, skipped))  # atomic, never through a link; one sentence on failure
    return path
