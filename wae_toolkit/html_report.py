"""``wae report``: one self-contained HTML page about a run, or comparing several runs.

The page is built from what the run folders hold, read as JSON and PNG only (nothing is
unpickled, no model is loaded):

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

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from wae_toolkit import __version__
from wae_toolkit.errors import UsageError
from wae_toolkit.runs import REPORT_FILE

__all__ = [
    "GENERATOR",
    "REPORT_FILE",
    "COMPARISON_FILE",
    "build_report",
    "default_report_path",
    "is_report",
    "write_report",
]

#: The content of the page's ``<meta name="generator">``; a file holding it may be replaced.
GENERATOR = f"wae-toolkit {__version__}"
_MARKER = b'<meta name="generator" content="wae-toolkit'
#: Where the comparison of several runs goes by default, in the current folder.
COMPARISON_FILE = "wae-report.html"
#: A per-epoch table longer than this shows evenly spaced rows (and every row in a fold).
MAX_ROWS = 40
#: Step losses beyond this many points are averaged in bins before they are drawn.
MAX_POINTS = 1500

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Settings that name the run folder rather than configure the run.
_NOT_SETTINGS = ("out", "overwrite")
_PLUGIN_KINDS = ("cost", "penalty", "prior", "network")
_GROUPS: dict[str, tuple[str, ...]] = {
    "Model": (
        "cost",
        "cost_opts",
        "penalty",
        "penalty_opts",
        "lam",
        "prior",
        "prior_opts",
        "latent_dim",
        "encoder",
        "network",
        "network_opts",
    ),
    "Data": ("data", "data_opts", "input_noise"),
    "Training": (
        "epochs",
        "batch_size",
        "lr",
        "beta1",
        "beta2",
        "lr_schedule",
        "seed",
        "pretrain_steps",
        "logvar_l1",
        "precision",
        "compile",
    ),
    "Running": (
        "device",
        "threads",
        "log_every",
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
        "skip_bad_steps",
    ),
}
#: Figure file -> (title, caption, drawn for: "image", "2d" or "latent").
FIGURES: dict[str, tuple[str, str, str]] = {
    "samples.png": ("Samples", "G(z) for codes z drawn from the prior.", "image"),
    "reconstructions.png": (
        "Reconstructions",
        "Rows of held-out images, each followed by the row of their reconstructions G(E(x)).",
        "image",
    ),
    "interpolations.png": (
        "Interpolations",
        "One row per pair of held-out images: decoded points on the straight line between "
        "their codes (the ends are the reconstructions).",
        "image",
    ),
    "data.png": (
        "Data, reconstructions and samples",
        "Held-out points, their reconstructions and samples G(z), z ~ prior.",
        "2d",
    ),
    "latent.png": (
        "Latent space",
        "Codes of held-out data against prior samples (the two leading principal components of "
        "the prior samples when the latent space has more than two dimensions).",
        "latent",
    ),
}
#: summary.json keys shown as metrics: name -> (label, which way is better, floor key).
_SUMMARY_METRICS: dict[str, tuple[str, str, str | None]] = {
    "test_cost": ("held-out cost", "lower", None),
    "test_mmd": ("MMD^2(codes, prior)", "lower, down to the floor", "prior_mmd"),
}
#: summary.json keys shown in the header, not as metrics.
_SUMMARY_INFO = (
    "run_dir",
    "steps",
    "epochs",
    "seconds",
    "samples_per_second",
    "device",
    "processes",
    "files",
    "prior_mmd",
)


def _e(value: Any) -> str:
    """``value`` as HTML text, escaped (quotes included, so it may go in an attribute)."""
    return html.escape(str(value), quote=True)


def _is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _value_text(v: Any) -> str:
    """A setting's value as text: strings as they are, anything else as JSON."""
    if isinstance(v, str):
        return v
    try:
        return json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(v)


def _num(v: Any, digits: int = 4) -> str:
    """A number as HTML: a short form shown, the exact value in a ``<data value>``."""
    if v is None:
        return '<span class="muted">&ndash;</span>'
    if not _is_number(v):
        return _e(v)
    shown = f"{v:.{digits}g}" if isinstance(v, float) else str(v)
    return f'<data value="{_e(json.dumps(v))}">{_e(shown)}</data>'


def _duration(seconds: Any) -> str:
    if not _is_number(seconds):
        return "&ndash;"
    s = float(seconds)
    if s < 60:
        return f"{s:.3g} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


# ---------------------------------------------------------------------------------------------
# Reading a run folder


@dataclass
class _Run:
    """What a run folder holds, read once."""

    path: Path
    label: str
    record: dict[str, Any]
    summary: dict[str, Any] | None
    records: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    status: str
    finished: bool
    step: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def run(self) -> dict[str, Any]:
        return self.record["run"]  # type: ignore[no-any-return]

    @property
    def last_eval(self) -> dict[str, Any] | None:
        evals = [r for r in self.records if r.get("kind") == "eval"]
        return evals[-1] if evals else None

    def final(self) -> tuple[dict[str, Any], str | None]:
        """The final metrics and, for a run without summary.json, where they come from."""
        if self.summary is not None:
            return self.summary, None
        last = self.last_eval
        if last is None:
            return {}, "no evaluation was logged before the run stopped"
        return last, (
            f"the last held-out evaluation in metrics.jsonl (after {last.get('epoch', '?')} "
            f"epochs, step {last.get('step', '?')}); the run did not finish"
        )

    def total_steps(self) -> int | None:
        """Steps of the whole run, from the first epoch's record."""
        epochs = self.run.get("epochs")
        first = next((r for r in self.records if r.get("kind") == "epoch"), None)
        if first is None or not _is_number(epochs):
            return None
        step, epoch = first.get("step"), first.get("epoch")
        if not (_is_number(step) and _is_number(epoch)) or epoch < 0:
            return None
        per_epoch = step / (int(epoch) + 1)
        return int(round(per_epoch * epochs)) if per_epoch else None


def _read_json(path: Path) -> tuple[Any, str | None]:
    """The JSON in ``path`` (None when absent) and a note when it could not be read."""
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"{path.name} could not be read ({type(exc).__name__}); it is left out"


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of ``metrics.jsonl``, skipping lines that are not JSON objects."""
    file = path / "metrics.jsonl"
    if not file.is_file():
        return [], ["metrics.jsonl is missing: no per-epoch table and no loss curves"]
    records, bad = [], 0
    try:
        with open(file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(rec, dict):
                    records.append(rec)
                else:
                    bad += 1
    except OSError as exc:
        return [], [f"metrics.jsonl could not be read ({exc.strerror or exc})"]
    notes = [f"{bad} line(s) of metrics.jsonl are not JSON records and were skipped"] * (bad > 0)
    return records, notes


def _read_evaluation(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``eval.json`` when it was computed on the run's current weights."""
    from wae_toolkit.metrics.record import EVAL_FILE, weights_hash

    record, note = _read_json(path / EVAL_FILE)
    if record is None:
        return None, note
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        return None, f"{EVAL_FILE} is not an evaluation record; it is left out"
    try:
        current = weights_hash(path)
    except OSError:
        current = None
    if record.get("weights_sha256") != current:
        return None, (
            f"{EVAL_FILE} was computed on other weights than the run's model.safetensors; it is "
            "left out (run 'wae eval' again)"
        )
    return record, None


def _read_run(path: Path, label: str) -> _Run:
    from wae_toolkit.metrics.record import check_run_folder
    from wae_toolkit.runs import _read_record

    if path.exists() and not path.is_dir():
        raise UsageError(f"'{path}' is a file; give a run folder written by 'wae run'.")
    check_run_folder(path)
    try:
        record = _read_record(path)
    except OSError as exc:
        raise UsageError(
            f"Cannot read '{path / 'config.json'}': {exc.strerror or exc}; give a readable run "
            "folder."
        ) from None
    notes: list[str] = []
    summary, note = _read_json(path / "summary.json")
    if note:
        notes.append(note)
    if summary is not None and not isinstance(summary, dict):
        summary = None
        notes.append("summary.json is not a JSON object; it is left out")
    records, more = _read_records(path)
    notes += more
    evaluation, note = _read_evaluation(path)
    if note:
        notes.append(note)
    step: int | None
    if summary is not None:
        status, finished = "finished", True
        step = summary.get("steps") if _is_number(summary.get("steps")) else None
    else:
        from wae_toolkit.checkpoint import latest_checkpoint

        finished = False
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            step = int(ckpt.stem.split("-")[1])
            status = f"stopped at step {step}"
        else:
            logged = [r["step"] for r in records if _is_number(r.get("step"))]
            step = max(logged) if logged else None
            status = "not finished, no checkpoint"
    return _Run(path, label, record, summary, records, evaluation, status, finished, step, notes)


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short names of the runs: the folder names, or the paths when names repeat."""
    names = [p.resolve().name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def _read_runs(run_dirs: Sequence[str | Path]) -> list[_Run]:
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise UsageError("Give at least one run folder to report on.")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise UsageError(f"The run '{p}' is given twice; name each run folder once.")
        seen[key] = p
    return [_read_run(p, label) for p, label in zip(paths, _labels(paths), strict=True)]


# ---------------------------------------------------------------------------------------------
# Pieces of the page


def _table(
    head: Sequence[str], rows: Sequence[Sequence[str]], num: Sequence[bool] = (), cls: str = ""
) -> str:
    """An HTML table from cells that are already HTML."""
    numeric = list(num) + [False] * (len(head) - len(num))
    out = [f'<div class="scroll"><table class="{cls}"><thead><tr>']
    out += [f"<th{' class=num' * n}>{h}</th>" for h, n in zip(head, numeric, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _td(html_text: str, numeric: bool = False, extra: str = "") -> str:
    classes = " ".join(c for c in ("num" * numeric, extra) if c)
    return f'<td class="{classes}">{html_text}</td>' if classes else f"<td>{html_text}</td>"


def _flat_settings(run: _Run) -> dict[str, Any]:
    """The run's settings, plugin and data options as ``penalty_opts.NAME`` (none for an empty
    set of options)."""
    flat: dict[str, Any] = {}
    for key, value in run.run.items():
        if key in _NOT_SETTINGS:
            continue
        if key.endswith("_opts") and isinstance(value, dict):
            for k, v in value.items():
                flat[f"{key}.{k}"] = v
        else:
            flat[key] = value
    return flat


def _plugin_note(run: _Run, kind: str) -> str:
    info = run.record.get("plugins", {}).get(kind)
    if not isinstance(info, dict):
        return ""
    who = " ".join(str(info[k]) for k in ("distribution", "version") if info.get(k))
    return f' <span class="muted">({_e(who)})</span>' if who else ""


def _config_section(run: _Run) -> str:
    sources = run.record.get("sources")
    sources = sources if isinstance(sources, dict) and sources else None
    settings = {k: v for k, v in run.run.items() if k not in _NOT_SETTINGS}
    placed = {k for keys in _GROUPS.values() for k in keys}
    groups = {**_GROUPS, "Other": tuple(k for k in settings if k not in placed)}
    blocks = []
    for group, keys in groups.items():
        rows = []
        for key in keys:
            if key not in settings:
                continue
            value = settings[key]
            if key.endswith("_opts") and isinstance(value, dict):
                if not value:
                    continue
                for k, v in value.items():
                    src = sources.get(f"{key}.{k}", "default") if sources else None
                    rows.append(
                        [
                            _td(f'<span class="opt">{_e(key)}.</span>{_e(k)}', extra="key"),
                            _td(f"<code>{_e(_value_text(v))}</code>"),
                        ]
                        + ([_td(_e(src), extra="src")] if sources else [])
                    )
                continue
            shown = f"<code>{_e(_value_text(value))}</code>"
            if key in _PLUGIN_KINDS:
                shown += _plugin_note(run, key)
            rows.append(
                [_td(_e(key), extra="key"), _td(shown)]
                + ([_td(_e(sources.get(key, "default")), extra="src")] if sources else [])
            )
        if rows:
            head = ["setting", "value"] + ["from"] * bool(sources)
            blocks.append(f"<div><h3>{_e(group)}</h3>{_table(head, rows, cls='config')}</div>")
    note = (
        '<p class="note">"from" says where each value came from: the default, a preset, a '
        "configuration file or the command line. Plugin options not given are the plugin's "
        "defaults.</p>"
        if sources
        else '<p class="note">This run does not record where its values came from.</p>'
    )
    data = run.record.get("data", {})
    desc = f'<p class="note">Data as loaded: {_e(data.get("description", ""))}</p>' * bool(
        data.get("description")
    )
    return f'<div class="cols">{"".join(blocks)}</div>{desc}{note}'


def _final_section(run: _Run) -> str:
    """The final evaluation (summary.json, or the last logged one) and eval.json's metrics."""
    values, origin = run.final()
    parts = []
    if origin:
        parts.append(f'<p class="note warn">Shown: {_e(origin)}.</p>')
    rows = []
    for name, (label, _, floor_key) in _SUMMARY_METRICS.items():
        if name in values:
            floor = values.get(floor_key) if floor_key else None
            rows.append(
                [
                    _td(_e(label)),
                    _td(_num(values[name], 6), True),
                    _td(_num(floor, 6), True),
                    _td(_e("2 prior samples" if floor_key else "-"), extra="muted"),
                ]
            )
    skip = set(_SUMMARY_INFO) | set(_SUMMARY_METRICS) | {"kind", "epoch", "step"}
    for name, v in values.items():
        if name not in skip and _is_number(v):
            rows.append([_td(_e(name)), _td(_num(v, 6), True), _td(_num(None), True), _td("")])
    if rows:
        head = ["metric", "value", "floor", "the floor is"]
        parts.append(_table(head, rows, num=[False, True, True], cls="metrics"))
    else:
        parts.append('<p class="missing">No evaluation to show.</p>')
    parts.append(
        '<p class="note">Held-out cost: mean cost of reconstructing held-out data. MMD^2: '
        "between the codes of held-out data and prior samples; its floor is the same statistic "
        "between two prior samples, reached by codes that match the prior.</p>"
    )
    parts.append(_eval_block(run))
    return "".join(parts)


def _eval_block(run: _Run) -> str:
    from wae_toolkit.metrics.record import HOW_TO_READ, METRICS

    ev = run.evaluation
    if ev is None and not (run.path / "model.safetensors").is_file():
        return (
            '<p class="note">No offline metrics: they need the trained weights '
            "(model.safetensors), written when the run finishes.</p>"
        )
    if ev is None:
        return (
            '<p class="note">No offline metrics: run <code>wae eval '
            f"{_e(run.path)}</code> (or <code>wae report --eval</code>) to add sample "
            "quality, W2 and Fr&eacute;chet distances.</p>"
        )
    rows = []
    for name, (label, floor_is, _) in METRICS.items():
        m = ev["metrics"].get(name)
        if isinstance(m, dict):
            rows.append(
                [
                    _td(_e(label)),
                    _td(_num(m.get("value")), True),
                    _td(_num(m.get("floor")), True),
                    _td(_e(floor_is), extra="muted"),
                ]
            )
    raw = ev.get("skipped")
    skipped = raw if isinstance(raw, dict) else {}
    for name, reason in skipped.items():
        rows.append(
            [_td(_e(name), extra="muted"), _td("skipped", True, "muted"), _td(""), _td(_e(reason))]
        )
    settings = ev.get("settings")
    seed = settings.get("seed", "?") if isinstance(settings, dict) else "?"
    title = f"<h3>Offline metrics (eval.json: {_e(ev.get('n', '?'))} samples, seed {_e(seed)})</h3>"
    head = ["metric", "value", "floor", "the floor is"]
    table = _table(head, rows, num=[False, True, True], cls="metrics")
    return title + table + f'<p class="note">{_e(HOW_TO_READ)}</p>'


def _epoch_rows(run: _Run) -> tuple[list[str], list[dict[str, Any]]]:
    """Per-epoch rows (keyed by epochs completed) and their training columns."""
    rows: dict[int, dict[str, Any]] = {}
    train_cols: list[str] = []
    for rec in run.records:
        kind, epoch = rec.get("kind"), rec.get("epoch")
        if not _is_number(epoch):
            continue
        if kind == "epoch":
            done = int(epoch) + 1
            row = rows.setdefault(done, {"epoch": done})
            for k, v in rec.items():
                if k not in ("kind", "epoch"):
                    row[k] = v
                    if k not in ("step", "lr") and k not in train_cols:
                        train_cols.append(k)
        elif kind == "eval":
            row = rows.setdefault(int(epoch), {"epoch": int(epoch)})
            row["step"] = rec.get("step", row.get("step"))
            for k, v in rec.items():
                if k not in ("kind", "epoch", "step"):
                    row[f"eval:{k}"] = v
    order = ["loss", "cost", "penalty"]
    train_cols.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    return train_cols, [rows[k] for k in sorted(rows)]


_EVAL_LABELS = {"test_cost": "held-out cost", "test_mmd": "MMD^2", "prior_mmd": "MMD^2 floor"}


def _epoch_table(run: _Run) -> str:
    train_cols, rows = _epoch_rows(run)
    if not rows:
        return '<p class="missing">No epoch was logged.</p>'
    eval_keys = ["test_cost", "test_mmd", "prior_mmd"]
    extra = sorted({k[5:] for r in rows for k in r if k.startswith("eval:")} - set(eval_keys))
    eval_cols = [k for k in eval_keys + extra if any(f"eval:{k}" in r for r in rows)]
    has_lr = any("lr" in r for r in rows)
    head = ["epoch", "step"] + [_e(c) for c in train_cols] + ["lr"] * has_lr
    head += [_e(_EVAL_LABELS.get(c, c)) for c in eval_cols]
    cols = ["epoch", "step", *train_cols, *(["lr"] * has_lr), *[f"eval:{c}" for c in eval_cols]]

    def render(selected: list[dict[str, Any]]) -> str:
        body = [[_td(_num(r.get(c)), True) for c in cols] for r in selected]
        return _table(head, body, num=[True] * len(head), cls="epochs")

    n_train = len(train_cols) + has_lr
    legend = (
        f'<p class="note">Epoch 0 is the evaluation before training. Columns 3 to '
        f"{2 + n_train}: training means over the epoch; the last {len(eval_cols)}: held-out "
        "evaluation, when one was made at that epoch (every eval_every epochs and at the end).</p>"
    )
    if len(rows) <= MAX_ROWS:
        return legend + render(rows)
    picks = sorted({round(i * (len(rows) - 1) / (MAX_ROWS - 1)) for i in range(MAX_ROWS)})
    return (
        legend
        + f'<p class="note">{len(picks)} of the {len(rows)} rows, evenly spaced; every row is in '
        "the fold below.</p>"
        + render([rows[i] for i in picks])
        + f"<details><summary>All {len(rows)} rows</summary>{render(rows)}</details>"
    )


def _png(path: Path) -> tuple[bytes | None, str | None]:
    """The bytes of a PNG figure, or why there are none."""
    if not path.is_file():
        return None, None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path.name} could not be read ({exc.strerror or exc})"
    if not data.startswith(_PNG_SIGNATURE):
        return None, f"{path.name} is not a PNG file"
    return data, None


def _figure_kind_applies(run: _Run, kind: str) -> tuple[bool, str]:
    """Whether ``wae run`` draws a figure of ``kind`` for this run, and why not."""
    shape = run.record.get("data", {}).get("sample_shape", [])
    image = len(shape) == 3
    if kind == "image":
        return image, f"the data are vectors of shape ({', '.join(map(str, shape))},), not images"
    if kind == "2d":
        size = math.prod(shape) if shape else 0
        return (not image and size == 2), (
            "the data are images" if image else f"the data have {size} dimensions, not 2"
        )
    dim = run.run.get("latent_dim")
    return (not _is_number(dim) or dim >= 2), "the latent space has 1 dimension"


def _figure_cell(run: _Run, name: str) -> tuple[str, str | None]:
    """A figure of a run as HTML (its PNG embedded, or a note saying why there is none) and,
    when ``wae run`` does not draw this figure for this run, why."""
    title, _, kind = FIGURES[name]
    applies, why_not = _figure_kind_applies(run, kind)
    data, problem = _png(run.path / name)
    if data is not None:
        pixels = ' class="pixels"' * (kind == "image")
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        alt = f"{title} of {run.label}"
        return f'<img{pixels} src="{uri}" alt="{_e(alt)}" data-file="{_e(name)}">', None
    if problem:
        why = problem
    elif not applies:
        return f'<p class="missing">Not drawn: {_e(why_not)}.</p>', why_not
    elif not run.finished:
        why = "not written: the run did not finish (figures are drawn at the end of training)"
    else:
        why = f"{name} is missing from the run folder"
    return f'<p class="missing">{_e(why[0].upper() + why[1:])}.</p>', None


def _figures_single(run: _Run) -> str:
    if not run.finished and not any((run.path / name).is_file() for name in FIGURES):
        return (
            '<p class="missing">No figures: the run did not finish (wae run draws them at the end '
            "of training).</p>"
        )
    cells: list[str] = []
    absent: dict[str, list[str]] = {}
    image = FIGURES["samples.png"][2]
    for name, (title, caption, kind) in FIGURES.items():
        cell, why_not = _figure_cell(run, name)
        if why_not is not None:
            if not (kind == "2d" and _figure_kind_applies(run, image)[0]):  # images: no data.png
                absent.setdefault(why_not, []).append(title.lower())
            continue
        cells.append(
            f'<figure id="fig-{name[:-4]}"><figcaption><b>{_e(title)}</b> '
            f'<span class="muted">{_e(name)}</span><br>{_e(caption)}</figcaption>{cell}</figure>'
        )
    notes = "".join(
        f'<p class="note">Not drawn for this run: {_e(", ".join(titles))}; {_e(why)}.</p>'
        for why, titles in absent.items()
    )
    return f'<div class="figs">{"".join(cells)}</div>{notes}'


def _figures_compare(runs: list[_Run]) -> str:
    parts = []
    for name, (title, caption, _) in FIGURES.items():
        cells = [_figure_cell(r, name) for r in runs]
        if all(why_not is not None for _, why_not in cells):
            continue
        parts.append(
            f'<h3 id="fig-{name[:-4]}">{_e(title)} <span class="muted">{_e(name)}</span></h3>'
            f'<p class="note">{_e(caption)}</p><div class="side">'
        )
        for run, (cell, _) in zip(runs, cells, strict=True):
            parts.append(f"<figure><figcaption><b>{_e(run.label)}</b></figcaption>{cell}</figure>")
        parts.append("</div>")
    return "".join(parts) or '<p class="missing">No figure is drawn for these runs.</p>'


# ---------------------------------------------------------------------------------------------
# Loss curves


def _binned(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """At most :data:`MAX_POINTS` points: means over consecutive bins."""
    if len(xs) <= MAX_POINTS:
        return xs, ys
    k = math.ceil(len(xs) / MAX_POINTS)
    bx, by = [], []
    for i in range(0, len(xs), k):
        chunk = [(x, y) for x, y in zip(xs[i : i + k], ys[i : i + k], strict=True)]
        bx.append(sum(c[0] for c in chunk) / len(chunk))
        by.append(sum(c[1] for c in chunk) / len(chunk))
    return bx, by


def _series(records: list[dict[str, Any]], kind: str, key: str) -> tuple[list[float], list[float]]:
    pts = [
        (float(r["step"]), float(r[key]))
        for r in records
        if r.get("kind") == kind and _is_number(r.get("step")) and _is_number(r.get(key))
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _scale(ax: Any, values: list[float]) -> None:
    """A log scale for positive values; symlog otherwise, linear over the smallest quarter of
    the magnitudes (estimators that may go negative swing around zero)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return
    if min(finite) > 0:
        ax.set_yscale("log")
        return
    sizes = sorted(abs(v) for v in finite if v)
    if sizes:
        ax.set_yscale("symlog", linthresh=max(sizes[len(sizes) // 4], 1e-12))


def _svg(fig: Any) -> bytes:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "wae-report", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _loss_figure(runs: list[_Run]) -> bytes | None:
    """The loss curves as SVG: one run's terms and evaluations, or several runs overlaid."""
    if not any(r.get("kind") in ("step", "eval") for run in runs for r in run.records):
        return None
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        if len(runs) == 1:
            return _svg(_single_curves(Figure(figsize=(12, 3.6), layout="constrained"), runs[0]))
        return _svg(_compare_curves(Figure(figsize=(12, 7.2), layout="constrained"), runs))


def _single_curves(fig: Any, run: _Run) -> Any:
    axes = fig.subplots(1, 3)
    recs = run.records
    steps = [r for r in recs if r.get("kind") == "step"]
    skip = {"kind", "epoch", "step", "loss", "cost", "penalty"}
    terms = ["loss", "cost", "penalty"] + sorted({k for r in steps for k in r} - skip)
    every: list[float] = []
    for key in terms:
        xs, ys = _binned(*_series(recs, "step", key))
        if xs:
            axes[0].plot(xs, ys, label=key, lw=1.2)
            every += ys
    _scale(axes[0], every)
    axes[0].set_title("training losses per term")
    xs, ys = _series(recs, "epoch", "cost")
    if xs:
        axes[1].plot(xs, ys, lw=1.2, label="training cost (epoch mean)")
    ex, ey = _series(recs, "eval", "test_cost")
    if ex:
        axes[1].plot(ex, ey, marker="o", ms=4, lw=1.2, label="held-out cost")
    axes[1].set_title("reconstruction cost")
    ex, ey = _series(recs, "eval", "test_mmd")
    fx, fy = _series(recs, "eval", "prior_mmd")
    if ex:
        axes[2].plot(ex, ey, marker="o", ms=4, lw=1.2, label="MMD^2(codes, prior), held-out")
    if fx:
        axes[2].plot(fx, fy, ls="--", color="0.4", lw=1.2, label="floor: MMD^2(prior, prior)")
    _scale(axes[2], ey + fy)
    axes[2].set_title("latent matching")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def _compare_curves(fig: Any, runs: list[_Run]) -> Any:
    axes = fig.subplots(2, 2).ravel()
    panels = [
        ("step", "cost", "training cost"),
        ("step", "penalty", "training penalty (its scale depends on the penalty)"),
        ("eval", "test_cost", "held-out cost"),
        ("eval", "test_mmd", "held-out MMD^2(codes, prior); dashed: floor"),
    ]
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, (kind, key, title) in zip(axes, panels, strict=True):
        values: list[float] = []
        for run, color in zip(runs, colors, strict=True):
            xs, ys = _series(run.records, kind, key)
            if kind == "step":
                xs, ys = _binned(xs, ys)
            if not xs:
                continue
            marker = "o" if kind == "eval" else None
            ax.plot(xs, ys, color=color, lw=1.2, marker=marker, ms=3.5, label=run.label)
            values += ys
            if key == "test_mmd":
                fx, fy = _series(run.records, "eval", "prior_mmd")
                ax.plot(fx, fy, color=color, ls="--", lw=1.0)
                values += fy
        if key in ("test_mmd", "penalty"):
            _scale(ax, values)
        ax.set_title(title)
        ax.set_xlabel("step")
    handles = [_legend_line(color, run.label) for run, color in zip(runs, colors, strict=True)]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(runs), 4), fontsize=9)
    return fig


def _legend_line(color: str, label: str) -> Any:
    """A legend entry: a line of ``color`` named ``label``."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, lw=2, label=label)


def _curves_section(runs: list[_Run]) -> str:
    svg = _loss_figure(runs)
    if svg is None:
        return '<p class="missing">No losses were logged (metrics.jsonl has no step record).</p>'
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
    note = (
        "Drawn from metrics.jsonl: step losses are means over log_every steps; markers are the "
        "held-out evaluations."
    )
    if len(runs) > 1:
        note += " The x axis is the step: runs with other batch sizes see other amounts of data."
    return (
        f'<img class="curves" src="{uri}" alt="loss curves" data-file="metrics.jsonl">'
        f'<p class="note">{_e(note)}</p>'
    )


# ---------------------------------------------------------------------------------------------
# Single-run and comparison pages


def _header_facts(run: _Run) -> list[tuple[str, str]]:
    rec, summary = run.record, run.summary or {}
    created = str(rec.get("created", ""))
    created = created.replace("T", " ")
    total = run.total_steps()
    steps = "&ndash;" if run.step is None else _e(run.step)
    if run.step is not None and total and not run.finished:
        steps += f" of {_e(total)}"
    device = summary.get("device", rec.get("device", ""))
    procs = summary.get("processes")
    if _is_number(procs) and procs > 1:
        device = f"{device} x {procs} processes"
    versions = f"wae-toolkit {rec.get('wae_toolkit_version', '?')}"
    if rec.get("torch_version"):
        versions += f", torch {rec['torch_version']}"
    return [
        ("status", _status_badge(run)),
        ("created", _e(created) or "&ndash;"),
        ("steps", steps),
        ("training time", _duration(summary.get("seconds"))),
        ("device", _e(device) or "&ndash;"),
        ("versions", _e(versions)),
        ("data", _e(rec.get("data", {}).get("name", run.run.get("data", "")))),
        ("folder", f"<code>{_e(run.path)}</code>"),
    ]


def _status_badge(run: _Run) -> str:
    cls = "finished" if run.finished else "stopped"
    return f'<span class="badge {cls}">{_e(run.status)}</span>'


def _notes(run: _Run, prefix: str = "") -> str:
    return "".join(f'<p class="note warn">{_e(prefix + n)}.</p>' for n in run.notes)


def _single_body(run: _Run) -> tuple[str, str]:
    facts = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in _header_facts(run))
    header = (
        f'<header><p class="kicker">wae-toolkit run report</p><h1>{_e(run.label)}</h1>'
        f'<dl class="facts">{facts}</dl>{_notes(run)}</header>'
    )
    sections = [
        ("configuration", "Configuration", _config_section(run)),
        (
            "evaluation",
            "Final evaluation" if run.finished else "Last evaluation",
            _final_section(run),
        ),
        ("curves", "Loss curves", _curves_section([run])),
        ("figures", "Figures", _figures_single(run)),
        ("epochs", "Per-epoch metrics", _epoch_table(run)),
    ]
    return header + _nav(sections) + _sections(sections), f"wae report: {run.label}"


def _nav(sections: list[tuple[str, str, str]]) -> str:
    links = " &middot; ".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    return f"<nav>{links}</nav>"


def _sections(sections: list[tuple[str, str, str]]) -> str:
    return "".join(
        f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>' for sid, title, body in sections
    )


def _runs_table(runs: list[_Run]) -> str:
    keys = ["status", "created", "steps", "training time", "device", "versions", "data", "folder"]
    rows = []
    for i, run in enumerate(runs):
        facts = dict(_header_facts(run))
        swatch = f'<span class="swatch c{i % 10}"></span>'
        rows.append([_td(f"{swatch}<b>{_e(run.label)}</b>")] + [_td(facts[k]) for k in keys])
    return _table(["run", *keys], rows, cls="runs")


def _config_diff(runs: list[_Run]) -> str:
    flats = [_flat_settings(r) for r in runs]
    for flat, run in zip(flats, runs, strict=True):
        for kind in _PLUGIN_KINDS:
            info = run.record.get("plugins", {}).get(kind)
            if isinstance(info, dict) and info.get("distribution"):
                flat[f"{kind} plugin from"] = f"{info['distribution']} {info.get('version', '')}"
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    order = [k for group in _GROUPS.values() for k in group]
    keys.sort(
        key=lambda k: order.index(k.split(".")[0]) if k.split(".")[0] in order else len(order)
    )
    missing = object()

    def same(key: str) -> bool:
        texts = {json.dumps(f.get(key, missing), sort_keys=True, default=str) for f in flats}
        return len(texts) == 1

    differ = [k for k in keys if not same(k)]
    shared = [k for k in keys if same(k)]

    def cell(flat: dict[str, Any], key: str) -> str:
        if key not in flat:
            return _td('<span class="muted">not set</span>')
        return _td(f"<code>{_e(_value_text(flat[key]))}</code>")

    head = ["setting"] + [_e(r.label) for r in runs]
    parts = []
    if differ:
        rows = [[_td(_e(k), extra="key")] + [cell(f, k) for f in flats] for k in differ]
        parts.append(_table(head, rows, cls="config"))
    else:
        parts.append('<p class="note">The runs have the same settings.</p>')
    if shared:
        rows = [[_td(_e(k), extra="key"), cell(flats[0], k)] for k in shared]
        parts.append(
            f"<details><summary>{len(shared)} settings are the same in every run</summary>"
            f"{_table(['setting', 'value'], rows, cls='config')}</details>"
        )
    return "".join(parts)


def _metrics_compare(runs: list[_Run]) -> str:
    from wae_toolkit.metrics.record import HOW_TO_READ, METRICS, best_index

    finals = [r.final() for r in runs]
    head = ["metric"] + [_e(r.label) for r in runs]
    rows: list[list[str]] = []
    marks = False

    def add_row(
        label: str, values: list[Any], floors: list[Any], better: str, mark: list[bool]
    ) -> None:
        nums = [v if _is_number(v) else None for v in values]
        fl = [f if _is_number(f) else None for f in floors]
        best = best_index(nums, fl, better)
        cells = [_td(_e(label))]
        for i, (v, f) in enumerate(zip(nums, fl, strict=True)):
            text = _num(v) + (f' <span class="muted">({_num(f)})</span>' if f is not None else "")
            text += '<sup title="last evaluation before the run stopped">*</sup>' * mark[i]
            cells.append(_td(text, True, "best" * (i == best)))
        rows.append(cells)

    rows.append([f'<th colspan="{len(runs) + 1}" class="group">end of training</th>'])
    for name, (label, better, floor_key) in _SUMMARY_METRICS.items():
        values = [vals.get(name) for vals, _ in finals]
        if not any(_is_number(v) for v in values):
            continue
        floors = [vals.get(floor_key) if floor_key else None for vals, _ in finals]
        origins = [origin for _, origin in finals]
        mark = [o is not None and _is_number(v) for o, v in zip(origins, values, strict=True)]
        marks = marks or any(mark)
        add_row(label, values, floors, better, mark)
    evals = [r.evaluation for r in runs]
    if any(evals):
        rows.append(
            [f'<th colspan="{len(runs) + 1}" class="group">offline metrics (eval.json)</th>']
        )
        rows.append(
            [_td("samples")] + [_td(_num(e.get("n")) if e else "&ndash;", True) for e in evals]
        )
        for name, (label, _, better) in METRICS.items():
            cells = [e["metrics"].get(name) if e else None for e in evals]
            if not any(isinstance(c, dict) for c in cells):
                continue
            values = [c.get("value") if isinstance(c, dict) else None for c in cells]
            floors = [c.get("floor") if isinstance(c, dict) else None for c in cells]
            add_row(label, values, floors, better, [False] * len(runs))
    table = _table(head, rows, num=[False] + [True] * len(runs), cls="metrics")
    notes = [HOW_TO_READ + " Floors in brackets; the best run of each row is highlighted."]
    if marks:
        notes.append(
            "* a run that did not finish: its last held-out evaluation logged in metrics.jsonl."
        )
    without = [
        r.label
        for r, e in zip(runs, evals, strict=True)
        if e is None and (r.path / "model.safetensors").is_file()
    ]
    if without:
        notes.append(
            f"No current eval.json for {', '.join(without)}: run 'wae eval' on them (or "
            "'wae report --eval') to compare sample quality too."
        )
    return table + "".join(f'<p class="note">{_e(n)}</p>' for n in notes)


def _compare_body(runs: list[_Run]) -> tuple[str, str]:
    notes = "".join(_notes(r, f"{r.label}: ") for r in runs)
    header = (
        f'<header><p class="kicker">wae-toolkit comparison</p><h1>{len(runs)} runs compared</h1>'
        f"{_runs_table(runs)}{notes}</header>"
    )
    sections = [
        ("configuration", "Settings that differ", _config_diff(runs)),
        ("metrics", "Final metrics", _metrics_compare(runs)),
        ("curves", "Loss curves", _curves_section(runs)),
        ("figures", "Figures", _figures_compare(runs)),
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
    """The HTML page about one run, or comparing several runs, as a string.

    Raises:
        UsageError: no run, a path given twice, or a path that is not a readable run folder
            (one sentence).
    """
    return _page(_read_runs(run_dirs))


def _page(runs: list[_Run]) -> str:
    body, title = _single_body(runs[0]) if len(runs) == 1 else _compare_body(runs)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="generator" content="{_e(GENERATOR)}">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<footer>Written by {_e(GENERATOR)} (wae report). Everything is in this one file; "
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
            f"'{path}' exists and is not a report written by wae report; choose another --out, "
            "or pass --overwrite to replace it."
        )
    if not path.parent.is_dir():
        raise UsageError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")


def write_report(
    run_dirs: Sequence[str | Path], out: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write the report of ``run_dirs`` (see :func:`build_report`) and return its path.

    Args:
        run_dirs: one run folder, or several to compare.
        out: the ``.html`` file; by default :func:`default_report_path`.
        overwrite: replace ``out`` even when it is not a report written here. A report written
            here earlier (it carries ``<meta name="generator" content="wae-toolkit ...">``) is
            replaced without it.

    Raises:
        UsageError: a bad run folder, or an output path that may not be written (one sentence).
    """
    runs = _read_runs(run_dirs)
    path = Path(out) if out is not None else default_report_path([r.path for r in runs])
    _check_target(path, overwrite)
    page = _page(runs)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(
            f"Cannot write '{path}': {exc.strerror or exc}; choose another --out."
        ) from None
    return path
