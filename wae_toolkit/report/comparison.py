"""Sections of the comparison page: the runs, the settings that differ, the final metrics."""

from __future__ import annotations

import json
from typing import Any

from wae_toolkit.config.checks import is_number
from wae_toolkit.report.markup import esc, html_table, number, td, value_text
from wae_toolkit.report.sections import (
    GROUPS,
    PLUGIN_KINDS,
    SUMMARY_METRICS,
    flat_settings,
    header_facts,
)
from wae_toolkit.runs.read import RunFolder


def runs_table(runs: list[RunFolder]) -> str:
    keys = ["status", "created", "steps", "training time", "device", "versions", "data", "folder"]
    rows = []
    for i, run in enumerate(runs):
        facts = dict(header_facts(run))
        swatch = f'<span class="swatch c{i % 10}"></span>'
        rows.append([td(f"{swatch}<b>{esc(run.label)}</b>")] + [td(facts[k]) for k in keys])
    return html_table(["run", *keys], rows, cls="runs")


def config_diff(runs: list[RunFolder]) -> str:
    flats = [flat_settings(r) for r in runs]
    for flat, run in zip(flats, runs, strict=True):
        for kind in PLUGIN_KINDS:
            info = run.record.get("plugins", {}).get(kind)
            if isinstance(info, dict) and info.get("distribution"):
                flat[f"{kind} plugin from"] = f"{info['distribution']} {info.get('version', '')}"
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    order = [k for group in GROUPS.values() for k in group]
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
            return td('<span class="muted">not set</span>')
        return td(f"<code>{esc(value_text(flat[key]))}</code>")

    head = ["setting"] + [esc(r.label) for r in runs]
    parts = []
    if differ:
        rows = [[td(esc(k), extra="key")] + [cell(f, k) for f in flats] for k in differ]
        parts.append(html_table(head, rows, cls="config"))
    else:
        parts.append('<p class="note">The runs have the same settings.</p>')
    if shared:
        rows = [[td(esc(k), extra="key"), cell(flats[0], k)] for k in shared]
        parts.append(
            f"<details><summary>{len(shared)} settings are the same in every run</summary>"
            f"{html_table(['setting', 'value'], rows, cls='config')}</details>"
        )
    return "".join(parts)


def metrics_compare(runs: list[RunFolder]) -> str:
    from wae_toolkit.metrics.record import HOW_TO_READ, METRICS, best_index

    finals = [r.final() for r in runs]
    head = ["metric"] + [esc(r.label) for r in runs]
    rows: list[list[str]] = []
    marks = False

    def add_row(
        label: str, values: list[Any], floors: list[Any], better: str, mark: list[bool]
    ) -> None:
        nums = [v if is_number(v) else None for v in values]
        fl = [f if is_number(f) else None for f in floors]
        best = best_index(nums, fl, better)
        cells = [td(esc(label))]
        for i, (v, f) in enumerate(zip(nums, fl, strict=True)):
            text = number(v) + (
                f' <span class="muted">({number(f)})</span>' if f is not None else ""
            )
            text += '<sup title="last evaluation before the run stopped">*</sup>' * mark[i]
            cells.append(td(text, True, "best" * (i == best)))
        rows.append(cells)

    rows.append([f'<th colspan="{len(runs) + 1}" class="group">end of training</th>'])
    for name, (label, better, floor_key) in SUMMARY_METRICS.items():
        values = [vals.get(name) for vals, _ in finals]
        if not any(is_number(v) for v in values):
            continue
        floors = [vals.get(floor_key) if floor_key else None for vals, _ in finals]
        origins = [origin for _, origin in finals]
        mark = [o is not None and is_number(v) for o, v in zip(origins, values, strict=True)]
        marks = marks or any(mark)
        add_row(label, values, floors, better, mark)
    evals = [r.evaluation for r in runs]
    if any(evals):
        rows.append(
            [f'<th colspan="{len(runs) + 1}" class="group">offline metrics (eval.json)</th>']
        )
        rows.append(
            [td("samples")] + [td(number(e.get("n")) if e else "&ndash;", True) for e in evals]
        )
        for name, (label, _, better) in METRICS.items():
            cells = [e["metrics"].get(name) if e else None for e in evals]
            if not any(isinstance(c, dict) for c in cells):
                continue
            values = [c.get("value") if isinstance(c, dict) else None for c in cells]
            floors = [c.get("floor") if isinstance(c, dict) else None for c in cells]
            add_row(label, values, floors, better, [False] * len(runs))
    table = html_table(head, rows, num=[False] + [True] * len(runs), cls="metrics")
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
    return table + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
