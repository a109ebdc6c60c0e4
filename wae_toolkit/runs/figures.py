"""PNG figures of a run: image grids with Pillow, scatter plots and loss curves with matplotlib.

Everything here writes files (atomically, never through a link) and returns their paths;
nothing is shown on screen.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wae_toolkit.runs.safe_io import write_atomic

__all__ = ["image_grid", "save_image_grid", "save_scatter", "save_loss_curves"]


def _to_unit(images: Tensor, value_range: tuple[float, float] | None) -> np.ndarray:
    x = images.detach().float().cpu()
    if value_range is None:
        lo, hi = float(x.min()), float(x.max())
    else:
        lo, hi = value_range
    x = ((x - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
    return x.numpy()


def image_grid(
    images: Tensor,
    nrow: int = 8,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    min_side: int = 48,
    pad: int = 2,
) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` into one ``uint8`` array ``(rows * H', cols * W', 3)``.

    Images smaller than ``min_side`` pixels are enlarged by an integer factor (nearest
    neighbour) so an 8x8 digit stays legible.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W); got {tuple(images.shape)}")
    x = _to_unit(images, value_range)
    n, c, h, w = x.shape
    if c == 1:
        x = np.repeat(x, 3, axis=1)
    elif c != 3:
        x = np.repeat(x[:, :1], 3, axis=1)
    k = max(1, math.ceil(min_side / max(h, w)))
    if k > 1:
        x = x.repeat(k, axis=2).repeat(k, axis=3)
    h, w = h * k, w * k
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = x[i].transpose(1, 2, 0)
    return (grid * 255).round().astype(np.uint8)


def save_image_grid(path: Path, images: Tensor, **kwargs: Any) -> Path:
    """Write :func:`image_grid` of ``images`` to ``path`` (PNG)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_grid(images, **kwargs)).save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
    return path


def _save_figure(fig: Any, path: Path) -> None:
    """A matplotlib figure as a PNG, written atomically and never through a link."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_scatter(path: Path, title: str, sets: dict[str, Tensor]) -> Path:
    """Scatter the first two coordinates of each named point set ``(N, >=2)`` on one plot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for label, pts in sets.items():
        p = pts.detach().float().cpu()
        if p.dim() != 2 or p.shape[1] < 2:
            p = torch.cat([p.reshape(len(p), -1), torch.zeros(len(p), 1)], 1)
        ax.scatter(p[:, 0].numpy(), p[:, 1].numpy(), s=4, alpha=0.5, label=label)
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=3)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    try:
        _save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def _label(text: Any) -> str:
    """``text`` drawn as it is in a legend (as :func:`wae_toolkit.report.curves.literal`):
    ``$`` escaped so that it never starts mathtext, no leading ``_``, at most 60 characters."""
    text = str(text)
    text = (text if len(text) <= 60 else text[:57] + "...").replace("$", "\\$")
    return " " + text if text.startswith("_") else text


def _finite(value: Any) -> float:
    """A logged value as a float to draw; NaN (not drawn) for anything else or non-finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        return math.nan
    return value if math.isfinite(value) else math.nan


def save_loss_curves(path: Path, records: list[dict[str, Any]]) -> Path | None:
    """Plot the step losses (cost, penalty, total) and the held-out evaluations over training.

    Records come from ``metrics.jsonl``: values that are not finite numbers are left out, and
    metric names are drawn as they are (never as mathtext)."""
    steps = [
        r for r in records if r.get("kind") == "step" and math.isfinite(_finite(r.get("step")))
    ]
    evals = [
        r for r in records if r.get("kind") == "eval" and math.isfinite(_finite(r.get("step")))
    ]
    if not steps:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    try:
        xs = [_finite(r["step"]) for r in steps]
        terms = ["loss", "cost", "penalty"] + sorted(
            {str(k) for r in steps for k in r}
            - {"kind", "epoch", "step", "loss", "cost", "penalty"}
        )
        for key in terms:
            axes[0].plot(xs, [_finite(r.get(key)) for r in steps], label=_label(key))
        axes[0].set_xlabel("step")
        axes[0].set_title("training losses per term")
        axes[0].set_yscale("symlog", linthresh=1e-3)
        axes[0].legend()
        if evals:
            ex = [_finite(r["step"]) for r in evals]
            mmd = [_finite(r.get("test_mmd")) for r in evals]
            floor = [_finite(r.get("prior_mmd")) for r in evals]
            axes[1].plot(ex, mmd, marker="o", label="test MMD(codes, prior)")
            axes[1].plot(ex, floor, ls="--", label="MMD(prior, prior) floor")
            if any(v > 0 for v in mmd + floor):
                axes[1].set_yscale("log")
            axes[1].set_xlabel("step")
            axes[1].set_title("latent matching (held-out)")
            axes[1].legend()
        else:
            axes[1].axis("off")
        fig.tight_layout()
        _save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
