"""The loss curves of the report: a matplotlib figure drawn from metrics.jsonl, as SVG.

matplotlib is imported inside the functions that draw.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from wae_toolkit.report.markup import esc, finite
from wae_toolkit.runs.read import RunFolder

#: Step losses beyond this many points are averaged in bins before they are drawn.
MAX_POINTS = 1500


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


def literal(text: Any) -> str:
    """``text`` for a matplotlib label, drawn as it is (cut to 60 characters): ``$`` would start
    mathtext (text such as ``$\\frac{$`` fails to parse), a leading ``_`` hides a legend entry."""
    text = str(text)
    text = (text if len(text) <= 60 else text[:57] + "...").replace("$", "\\$")
    return " " + text if text.startswith("_") else text


def _series(records: list[dict[str, Any]], kind: str, key: str) -> tuple[list[float], list[float]]:
    """The finite points ``(step, record[key])`` of the records of ``kind``."""
    pts = [
        (float(r["step"]), float(r[key]))
        for r in records
        if r.get("kind") == kind and finite(r.get("step")) and finite(r.get(key))
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


def _loss_figure(runs: list[RunFolder]) -> bytes | None:
    """The loss curves as SVG: one run's terms and evaluations, or several runs overlaid."""
    if not any(r.get("kind") in ("step", "eval") for run in runs for r in run.records):
        return None
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        if len(runs) == 1:
            return _svg(_single_curves(Figure(figsize=(12, 3.6), layout="constrained"), runs[0]))
        return _svg(_compare_curves(Figure(figsize=(12, 7.2), layout="constrained"), runs))


def _single_curves(fig: Any, run: RunFolder) -> Any:
    axes = fig.subplots(1, 3)
    recs = run.records
    steps = [r for r in recs if r.get("kind") == "step"]
    skip = {"kind", "epoch", "step", "loss", "cost", "penalty"}
    terms = ["loss", "cost", "penalty"] + sorted({k for r in steps for k in r} - skip)
    every: list[float] = []
    for key in terms:
        xs, ys = _binned(*_series(recs, "step", key))
        if xs:
            axes[0].plot(xs, ys, label=literal(key), lw=1.2)
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


def _compare_curves(fig: Any, runs: list[RunFolder]) -> Any:
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
            ax.plot(xs, ys, color=color, lw=1.2, marker=marker, ms=3.5, label=literal(run.label))
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

    return Line2D([], [], color=color, lw=2, label=literal(label))


def curves_section(runs: list[RunFolder]) -> str:
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
        f'<p class="note">{esc(note)}</p>'
    )
