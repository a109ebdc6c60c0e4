"""The figures a run wrote (PNG files), embedded in the report as data: URIs."""

from __future__ import annotations

import base64
import math

from wae_toolkit.config.checks import is_number
from wae_toolkit.data.rules import shape_ok
from wae_toolkit.report.markup import esc
from wae_toolkit.runs.read import RunFolder

#: Figure file -> (title, caption for image data, drawn for: "image" (image data only),
#: "sample" (images, signals and vectors other than 2-D points), "2d" or "latent").
FIGURES: dict[str, tuple[str, str, str]] = {
    "samples.png": ("Samples", "G(z) for codes z drawn from the prior.", "sample"),
    "reconstructions.png": (
        "Reconstructions",
        "Rows of held-out images, each followed by the row of their reconstructions G(E(x)).",
        "sample",
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


#: (figure, kind of data) -> its caption, where it is not the image data's.
_CAPTIONS: dict[tuple[str, str], str] = {
    ("samples.png", "signal"): "G(z) for codes z drawn from the prior, a line per channel.",
    ("reconstructions.png", "signal"): (
        "Held-out signals (solid) and their reconstructions G(E(x)) (dashed), a colour per channel."
    ),
    ("samples.png", "vectors"): (
        "Pair plot of the first coordinates: held-out data against samples G(z), z ~ prior "
        "(histograms on the diagonal)."
    ),
    ("reconstructions.png", "vectors"): (
        "Pair plot of the first coordinates: held-out data against their reconstructions "
        "G(E(x)) (histograms on the diagonal)."
    ),
}


#: Captions of a comparison of runs whose data are of different kinds.
_MIXED = {
    "reconstructions.png": "Held-out data and their reconstructions G(E(x)), drawn as fits "
    "each run's data (image grids, line plots or pair plots).",
}


def _data_kind(run: RunFolder) -> tuple[str, list[int]]:
    """What the run's samples are: ``image`` ``(C, H, W)``, ``signal`` ``(C, L)``, ``points``
    (2-D vectors) or ``vectors``; and their shape (empty when not recorded)."""
    shape = run.record.get("data", {}).get("sample_shape", [])
    shape = list(shape) if shape_ok(shape) else []
    if len(shape) in (2, 3):
        return ("signal", "image")[len(shape) - 2], shape
    return ("points" if math.prod(shape or [0]) == 2 else "vectors"), shape


def _figure_kind_applies(run: RunFolder, kind: str) -> tuple[bool, str]:
    """Whether ``wae run`` draws a figure of ``kind`` for this run, and why not."""
    data, shape = _data_kind(run)
    text = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    what = f"{'signals' if data == 'signal' else 'vectors'} of shape ({text})"
    if kind == "image":
        return data == "image", f"the data are {what}, not images"
    if kind == "sample":
        return data != "points", "the data are 2-D points, drawn in data.png"
    if kind == "2d":
        size = math.prod(shape) if shape else 0
        why = {"image": "the data are images", "signal": f"the data are {what}"}
        return data == "points", why.get(data, f"the data have {size} dimensions, not 2")
    dim = run.settings.get("latent_dim")
    return (not is_number(dim) or dim >= 2), "the latent space has 1 dimension"


def _caption(run: RunFolder, name: str) -> str:
    """What the figure ``name`` of this run shows."""
    return _CAPTIONS.get((name, _data_kind(run)[0]), FIGURES[name][1])


def _figure_cell(run: RunFolder, name: str) -> tuple[str, str | None]:
    """A figure of a run as HTML (its PNG embedded, or a note saying why there is none) and,
    when ``wae run`` does not draw this figure for this run, why."""
    title, _, kind = FIGURES[name]
    applies, why_not = _figure_kind_applies(run, kind)
    data, problem = run.figure(name)
    if data is not None:
        grid = kind in ("image", "sample") and _data_kind(run)[0] == "image"
        pixels = ' class="pixels"' * grid
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        alt = f"{title} of {run.label}"
        return f'<img{pixels} src="{uri}" alt="{esc(alt)}" data-file="{esc(name)}">', None
    if problem:
        why = problem
    elif not applies:
        return f'<p class="missing">Not drawn: {esc(why_not)}.</p>', why_not
    elif not run.finished:
        why = "not written: the run did not finish (figures are drawn at the end of training)"
    else:
        why = f"{name} is missing from the run folder"
    return f'<p class="missing">{esc(why[0].upper() + why[1:])}.</p>', None


def figures_single(run: RunFolder) -> str:
    if not run.finished and not any((run.path / name).is_file() for name in FIGURES):
        return (
            '<p class="missing">No figures: the run did not finish (wae run draws them at the end '
            "of training).</p>"
        )
    cells: list[str] = []
    absent: dict[str, list[str]] = {}
    for name, (title, _, kind) in FIGURES.items():
        cell, why_not = _figure_cell(run, name)
        caption = _caption(run, name)
        if why_not is not None:
            if not (kind == "2d" and _figure_kind_applies(run, "sample")[0]):  # no data.png note
                absent.setdefault(why_not, []).append(title.lower())
            continue
        cells.append(
            f'<figure id="fig-{name[:-4]}"><figcaption><b>{esc(title)}</b> '
            f'<span class="muted">{esc(name)}</span><br>{esc(caption)}</figcaption>{cell}</figure>'
        )
    notes = "".join(
        f'<p class="note">Not drawn for this run: {esc(", ".join(titles))}; {esc(why)}.</p>'
        for why, titles in absent.items()
    )
    return f'<div class="figs">{"".join(cells)}</div>{notes}'


def figures_compare(runs: list[RunFolder]) -> str:
    parts = []
    for name, (title, caption, _) in FIGURES.items():
        cells = [_figure_cell(r, name) for r in runs]
        if all(why_not is not None for _, why_not in cells):
            continue
        drawn = [r for r, (_, why_not) in zip(runs, cells, strict=True) if why_not is None]
        captions = {_caption(r, name) for r in drawn}
        caption = captions.pop() if len(captions) == 1 else _MIXED.get(name, caption)
        parts.append(
            f'<h3 id="fig-{name[:-4]}">{esc(title)} <span class="muted">{esc(name)}</span></h3>'
            f'<p class="note">{esc(caption)}</p><div class="side">'
        )
        for run, (cell, _) in zip(runs, cells, strict=True):
            parts.append(f"<figure><figcaption><b>{esc(run.label)}</b></figcaption>{cell}</figure>")
        parts.append("</div>")
    return "".join(parts) or '<p class="missing">No figure is drawn for these runs.</p>'
