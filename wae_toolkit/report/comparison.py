"""Sections of the comparison page: the runs, the settings that differ, the final metrics.

Runs that differ only by their seed share one column of the settings and metrics tables: each
metric as mean ± standard deviation over their seeds (:mod:`wae_toolkit.report.seeds`).
"""

from __future__ import annotations

import json
from pathlib import PurePath
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
from wae_toolkit.report.seeds import Group, seed_groups, spread, spread_html
from wae_toolkit.runs.read import RunFolder

#: A setting's value a run does not record, and why it is that: ``(value, "default")``, or
#: ``(UNKNOWN, why)`` when it has none to show (another plugin's option...).
Filled = tuple[Any, str]
UNKNOWN = object()


def runs_table(runs: list[RunFolder]) -> str:
    keys = ["status", "created", "steps", "training time", "device", "versions", "data", "folder"]
    rows = []
    for i, run in enumerate(runs):
        facts = dict(header_facts(run))
        swatch = f'<span class="swatch c{i % 10}"></span>'
        rows.append([td(f"{swatch}<b>{esc(run.label)}</b>")] + [td(facts[k]) for k in keys])
    return html_table(["run", *keys], rows, cls="runs")


def _flats(runs: list[RunFolder]) -> list[dict[str, Any]]:
    flats = [flat_settings(r) for r in runs]
    for flat, run in zip(flats, runs, strict=True):
        for kind in PLUGIN_KINDS:
            info = run.record.get("plugins", {}).get(kind)
            if isinstance(info, dict) and info.get("distribution"):
                flat[f"{kind} plugin from"] = f"{info['distribution']} {info.get('version', '')}"
    return flats


def _setting_defaults() -> dict[str, Any]:
    from wae_toolkit.config.settings import RunConfig

    return RunConfig().to_dict()


def _data_defaults(data: Any) -> dict[str, Any]:
    """The defaults of the data options of ``data`` (a built-in name, a .npy or .npz file);
    empty when its kind of source is not known from the name alone."""
    from wae_toolkit.data.source_options import data_options
    from wae_toolkit.errors import DataError

    if not isinstance(data, str):
        return {}
    suffix = PurePath(data).suffix.lower()
    source = {".npy": ".npy files", ".npz": ".npz files"}.get(suffix, data)
    try:
        return {k: default for k, (_, default, _) in data_options(source).items()}
    except DataError:
        return {}


def _filler(runs: list[RunFolder], flats: list[dict[str, Any]]) -> Any:
    """``fill(i, key)``: what run ``i`` has for a ``key`` it does not record (an older run
    without a newer setting, a data option left at its default, another plugin's option)."""
    defaults = _setting_defaults()

    def fill(i: int, key: str) -> Filled:
        settings = runs[i].settings
        if key in defaults:
            return defaults[key], "default"
        group, _, option = key.partition(".")
        kind = group.removesuffix("_opts")
        if option and kind in PLUGIN_KINDS:
            name = settings.get(kind)
            if any(runs[j].settings.get(kind) == name for j in range(len(runs)) if key in flats[j]):
                return UNKNOWN, "default"  # the same plugin, from a version without this option
            return UNKNOWN, f"{kind} {name} has no {option}"
        if option and kind == "data":
            data_defaults = _data_defaults(settings.get("data"))
            if option in data_defaults:
                return data_defaults[option], "default"
            return UNKNOWN, "default"
        return UNKNOWN, "not recorded"

    return fill


def _complete(runs: list[RunFolder]) -> tuple[list[dict[str, Any]], list[dict[str, Filled]]]:
    """Every run's flattened settings with the keys any run records, and for each run the keys
    it did not record (with their value and why)."""
    flats = _flats(runs)
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    fill = _filler(runs, flats)
    filled: list[dict[str, Filled]] = [
        {k: fill(i, k) for k in keys if k not in flat} for i, flat in enumerate(flats)
    ]
    full = [
        flat | {k: None if v is UNKNOWN else v for k, (v, _) in f.items()}
        for flat, f in zip(flats, filled, strict=True)
    ]
    return full, filled


def groups_of(runs: list[RunFolder]) -> list[Group]:
    """The columns of the comparison: runs that differ only by their seed share one."""
    return seed_groups(runs, _complete(runs)[0])


def config_diff(runs: list[RunFolder]) -> str:
    full, filled = _complete(runs)
    groups = seed_groups(runs, full)
    keys: list[str] = []
    for flat in full:
        keys += [k for k in flat if k not in keys]
    order = [k for group in GROUPS.values() for k in group]
    keys.sort(
        key=lambda k: order.index(k.split(".")[0]) if k.split(".")[0] in order else len(order)
    )

    def text(i: int, key: str) -> str:  # a value, or why there is none to show
        value, why = filled[i].get(key, (full[i].get(key), ""))
        shown = why if value is UNKNOWN else value
        return json.dumps(shown, sort_keys=True, default=str)

    def same(key: str) -> bool:
        return len({text(i, key) for i in range(len(runs))}) == 1

    differ = [k for k in keys if not same(k)]
    shared = [k for k in keys if same(k)]

    def shown(i: int, key: str) -> str:
        if key not in filled[i]:
            return f"<code>{esc(value_text(full[i][key]))}</code>"
        value, why = filled[i][key]
        if value is UNKNOWN and why != "default":
            return f'<span class="muted" title="{esc(why)}">&ndash; ({esc(why)})</span>'
        if value is UNKNOWN:
            return '<span class="muted">default</span>'
        return f'<code>{esc(value_text(value))}</code> <span class="muted">({esc(why)})</span>'

    def cell(group: Group, key: str) -> str:
        texts = list(dict.fromkeys(shown(i, key) for i in group.members))
        return td(", ".join(texts))

    head = ["setting"] + [g.header() for g in groups]
    parts = []
    if differ:
        rows = [[td(esc(k), extra="key")] + [cell(g, k) for g in groups] for k in differ]
        parts.append(html_table(head, rows, cls="config diff"))
    else:
        parts.append('<p class="note">The runs have the same settings.</p>')
    if any(g.size > 1 for g in groups):
        parts.append(
            '<p class="note">Runs that differ only by their seed share a column; their metrics '
            "below are the mean &plusmn; standard deviation over the seeds.</p>"
        )
    if shared:
        rows = [[td(esc(k), extra="key"), td(shown(0, k))] for k in shared]
        parts.append(
            f"<details><summary>{len(shared)} settings are the same in every run</summary>"
            f"{html_table(['setting', 'value'], rows, cls='config diff')}</details>"
        )
    return "".join(parts)


def metrics_compare(runs: list[RunFolder]) -> str:
    from wae_toolkit.metrics.record import HOW_TO_READ, METRICS, best_index

    groups = groups_of(runs)
    finals = [r.final() for r in runs]
    head = ["metric"] + [g.header() for g in groups]
    rows: list[list[str]] = []
    marks = False

    def add_row(
        label: str, values: list[Any], floors: list[Any], better: str, mark: list[bool]
    ) -> None:
        means = [spread([values[i] for i in g.members])[0] for g in groups]
        floor_means = [spread([floors[i] for i in g.members])[0] for g in groups]
        best = best_index(means, floor_means, better)
        cells = [td(esc(label))]
        for k, group in enumerate(groups):
            if group.size == 1:
                v = values[group.members[0]]
                text = number(v if is_number(v) else None)
            else:
                text = spread_html([values[i] for i in group.members], group.size)
            f = floor_means[k]
            text += f' <span class="muted">({number(f)})</span>' if f is not None else ""
            starred = any(mark[i] for i in group.members)
            text += '<sup title="last evaluation before the run stopped">*</sup>' * starred
            cells.append(td(text, True, "best" * (k == best)))
        rows.append(cells)

    span = len(groups) + 1
    rows.append([f'<th colspan="{span}" class="group">end of training</th>'])
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
        rows.append([f'<th colspan="{span}" class="group">offline metrics (eval.json)</th>'])
        sizes = []
        for g in groups:
            ns = sorted({e.get("n") for i in g.members if (e := evals[i]) is not None}, key=str)
            sizes.append(td(", ".join(number(n) for n in ns) or "&ndash;", True))
        rows.append([td("samples"), *sizes])
        for name, (label, _, better) in METRICS.items():
            cells = [e["metrics"].get(name) if e else None for e in evals]
            if not any(isinstance(c, dict) for c in cells):
                continue
            values = [c.get("value") if isinstance(c, dict) else None for c in cells]
            floors = [c.get("floor") if isinstance(c, dict) else None for c in cells]
            add_row(label, values, floors, better, [False] * len(runs))
    table = html_table(head, rows, num=[False] + [True] * len(groups), cls="metrics")
    notes = [HOW_TO_READ + " Floors in brackets; the best column of each row is highlighted."]
    notes.append(_MMD_NOTE)
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


#: What the two MMD^2 rows are, under the metrics tables.
_MMD_NOTE = (
    "The two MMD^2 rows are the same estimator (IMQ kernel, biased V-statistic, up to 2,000 "
    "held-out codes against as many prior samples) computed on different random draws: by "
    "training at its last evaluation, and by wae eval with its own seed. They differ by "
    "sampling noise; compare each with its own floor."
)
