"""Sections of a run's page: header facts, configuration, final evaluation, per-epoch table."""

from __future__ import annotations

from typing import Any

from wae_toolkit.config.checks import is_number
from wae_toolkit.report.markup import duration, esc, finite, html_table, number, td, value_text
from wae_toolkit.runs.read import RunFolder

#: A per-epoch table longer than this shows evenly spaced rows (and every row in a fold).
MAX_ROWS = 40
#: Settings that name the run folder rather than configure the run.
_NOT_SETTINGS = ("out", "overwrite")
PLUGIN_KINDS = ("cost", "penalty", "prior", "network")
GROUPS: dict[str, tuple[str, ...]] = {
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
#: summary.json keys shown as metrics: name -> (label, which way is better, floor key). The
#: MMD^2 is training's own evaluation; ``wae eval``'s, on other draws, is labelled apart
#: (:data:`wae_toolkit.metrics.record.METRICS`).
SUMMARY_METRICS: dict[str, tuple[str, str, str | None]] = {
    "test_cost": ("held-out cost", "lower", None),
    "test_mmd": ("MMD^2(codes, prior), training's draws", "lower, down to the floor", "prior_mmd"),
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


def flat_settings(run: RunFolder) -> dict[str, Any]:
    """The run's settings, plugin and data options as ``penalty_opts.NAME`` (none for an empty
    set of options)."""
    flat: dict[str, Any] = {}
    for key, value in run.settings.items():
        if key in _NOT_SETTINGS:
            continue
        if key.endswith("_opts") and isinstance(value, dict):
            for k, v in value.items():
                flat[f"{key}.{k}"] = v
        else:
            flat[key] = value
    return flat


def _plugin_note(run: RunFolder, kind: str) -> str:
    info = run.record.get("plugins", {}).get(kind)
    if not isinstance(info, dict):
        return ""
    who = " ".join(str(info[k]) for k in ("distribution", "version") if info.get(k))
    return f' <span class="muted">({esc(who)})</span>' if who else ""


def config_section(run: RunFolder) -> str:
    sources = run.record.get("sources")
    sources = sources if isinstance(sources, dict) and sources else None
    settings = {k: v for k, v in run.settings.items() if k not in _NOT_SETTINGS}
    placed = {k for keys in GROUPS.values() for k in keys}
    groups = {**GROUPS, "Other": tuple(k for k in settings if k not in placed)}
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
                            td(f'<span class="opt">{esc(key)}.</span>{esc(k)}', extra="key"),
                            td(f"<code>{esc(value_text(v))}</code>"),
                        ]
                        + ([td(esc(src), extra="src")] if sources else [])
                    )
                continue
            shown = f"<code>{esc(value_text(value))}</code>"
            if key in PLUGIN_KINDS:
                shown += _plugin_note(run, key)
            rows.append(
                [td(esc(key), extra="key"), td(shown)]
                + ([td(esc(sources.get(key, "default")), extra="src")] if sources else [])
            )
        if rows:
            head = ["setting", "value"] + ["from"] * bool(sources)
            blocks.append(f"<div><h3>{esc(group)}</h3>{html_table(head, rows, cls='config')}</div>")
    note = (
        '<p class="note">"from" says where each value came from: the default, a preset, a '
        "configuration file or the command line. Plugin options not given are the plugin's "
        "defaults.</p>"
        if sources
        else '<p class="note">This run does not record where its values came from.</p>'
    )
    data = run.record.get("data", {})
    desc = f'<p class="note">Data as loaded: {esc(data.get("description", ""))}</p>' * bool(
        data.get("description")
    )
    return f'<div class="cols">{"".join(blocks)}</div>{desc}{note}'


def final_section(run: RunFolder) -> str:
    """The final evaluation (summary.json, or the last logged one) and eval.json's metrics."""
    values, origin = run.final()
    parts = []
    if origin:
        parts.append(f'<p class="note warn">Shown: {esc(origin)}.</p>')
    rows = []
    for name, (label, _, floor_key) in SUMMARY_METRICS.items():
        if name in values:
            floor = values.get(floor_key) if floor_key else None
            rows.append(
                [
                    td(esc(label)),
                    td(number(values[name], 6), True),
                    td(number(floor, 6), True),
                    td(esc("2 prior samples" if floor_key else "-"), extra="muted"),
                ]
            )
    skip = set(_SUMMARY_INFO) | set(SUMMARY_METRICS) | {"kind", "epoch", "step"}
    for name, v in values.items():
        if name not in skip and is_number(v):
            rows.append([td(esc(name)), td(number(v, 6), True), td(number(None), True), td("")])
    if rows:
        head = ["metric", "value", "floor", "the floor is"]
        parts.append(html_table(head, rows, num=[False, True, True], cls="metrics"))
    else:
        parts.append('<p class="missing">No evaluation to show.</p>')
    parts.append(
        '<p class="note">Held-out cost: mean cost of reconstructing held-out data. MMD^2: '
        "between the codes of held-out data and prior samples (IMQ kernel, biased V-statistic, "
        "on the random draws of training's last evaluation); its floor is the same statistic "
        "between two prior samples, reached by codes that match the prior. wae eval computes "
        "the same estimator on draws of its own seed, so its value differs by sampling noise."
        "</p>"
    )
    parts.append(_eval_block(run))
    return "".join(parts)


def _eval_block(run: RunFolder) -> str:
    from wae_toolkit.metrics.record import HOW_TO_READ, METRICS

    ev = run.evaluation
    if ev is None and not run.weights.is_file():
        return (
            '<p class="note">No offline metrics: they need the trained weights '
            "(model.safetensors), written when the run finishes.</p>"
        )
    if ev is None:
        return (
            '<p class="note">No offline metrics: run <code>wae eval '
            f"{esc(run.path)}</code> (or <code>wae report --eval</code>) to add sample "
            "quality, W2 and Fr&eacute;chet distances.</p>"
        )
    rows = []
    for name, (label, floor_is, _) in METRICS.items():
        m = ev["metrics"].get(name)
        if isinstance(m, dict):
            rows.append(
                [
                    td(esc(label)),
                    td(number(m.get("value")), True),
                    td(number(m.get("floor")), True),
                    td(esc(floor_is), extra="muted"),
                ]
            )
    raw = ev.get("skipped")
    skipped = raw if isinstance(raw, dict) else {}
    for name, reason in skipped.items():
        rows.append(
            [td(esc(name), extra="muted"), td("skipped", True, "muted"), td(""), td(esc(reason))]
        )
    settings = ev.get("settings")
    seed = settings.get("seed", "?") if isinstance(settings, dict) else "?"
    title = (
        f"<h3>Offline metrics (eval.json: {esc(ev.get('n', '?'))} samples, seed {esc(seed)})</h3>"
    )
    head = ["metric", "value", "floor", "the floor is"]
    table = html_table(head, rows, num=[False, True, True], cls="metrics")
    return title + table + f'<p class="note">{esc(HOW_TO_READ)}</p>'


def _epoch_rows(run: RunFolder) -> tuple[list[str], list[dict[str, Any]]]:
    """Per-epoch rows (keyed by epochs completed) and their training columns."""
    rows: dict[int, dict[str, Any]] = {}
    train_cols: list[str] = []
    for rec in run.records:
        kind, epoch = rec.get("kind"), rec.get("epoch")
        if not finite(epoch):
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


_EVAL_LABELS = {
    "test_cost": "held-out cost",
    "test_mmd": "held-out MMD^2",
    "prior_mmd": "MMD^2 floor",
}


def epoch_table(run: RunFolder) -> str:
    train_cols, rows = _epoch_rows(run)
    if not rows:
        return '<p class="missing">No epoch was logged.</p>'
    eval_keys = ["test_cost", "test_mmd", "prior_mmd"]
    extra = sorted({k[5:] for r in rows for k in r if k.startswith("eval:")} - set(eval_keys))
    eval_cols = [k for k in eval_keys + extra if any(f"eval:{k}" in r for r in rows)]
    has_lr = any("lr" in r for r in rows)
    head = ["epoch", "step"] + [esc(c) for c in train_cols] + ["lr"] * has_lr
    head += [esc(_EVAL_LABELS.get(c, c)) for c in eval_cols]
    cols = ["epoch", "step", *train_cols, *(["lr"] * has_lr), *[f"eval:{c}" for c in eval_cols]]

    def render(selected: list[dict[str, Any]]) -> str:
        body = [[td(number(r.get(c)), True) for c in cols] for r in selected]
        return html_table(head, body, num=[True] * len(head), cls="epochs")

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


def header_facts(run: RunFolder) -> list[tuple[str, str]]:
    rec, summary = run.record, run.summary or {}
    created = str(rec.get("created", ""))
    created = created.replace("T", " ")
    total = run.total_steps()
    steps = "&ndash;" if run.step is None else esc(run.step)
    if run.step is not None and total and not run.finished:
        steps += f" of {esc(total)}"
    device = summary.get("device", rec.get("device", ""))
    procs = summary.get("processes")
    if is_number(procs) and procs > 1:
        device = f"{device} x {procs} processes"
    versions = f"wae-toolkit {rec.get('wae_toolkit_version', '?')}"
    if rec.get("torch_version"):
        versions += f", torch {rec['torch_version']}"
    return [
        ("status", _status_badge(run)),
        ("created", esc(created) or "&ndash;"),
        ("steps", steps),
        ("training time", duration(summary.get("seconds"))),
        ("device", esc(device) or "&ndash;"),
        ("versions", esc(versions)),
        ("data", esc(rec.get("data", {}).get("name", run.settings.get("data", "")))),
        ("folder", f"<code>{esc(run.path)}</code>"),
    ]


def _status_badge(run: RunFolder) -> str:
    cls = "finished" if run.finished else "stopped"
    return f'<span class="badge {cls}">{esc(run.status)}</span>'
