"""PNG figures of samples and reconstructions for data that are not images, with matplotlib:
line plots for signals ``(C, L)`` and pair plots (a scatter matrix of a few coordinates) for
vectors ``(F,)``.

Like :mod:`wae_toolkit.runs.figures`, everything here writes files atomically and returns their
paths; nothing is shown on screen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from wae_toolkit.runs.figures import _pyplot, _save_figure

__all__ = ["save_signals", "save_pair_plot", "MAX_CHANNELS", "MAX_COORDINATES"]

#: Signals with more channels show their first ones.
MAX_CHANNELS = 4
#: Pair plots show the first coordinates of the vectors.
MAX_COORDINATES = 4


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _limits(arrays: list[np.ndarray], value_range: tuple[float, float] | None) -> tuple[float, ...]:
    """The y-axis of signal plots: the data's value range when bounded, else the values seen."""
    if value_range is not None:
        lo, hi = value_range
    else:
        lo = min(float(a.min()) for a in arrays)
        hi = max(float(a.max()) for a in arrays)
    margin = 0.05 * max(hi - lo, 1e-6)
    return lo - margin, hi + margin


def _finish(fig: Any, plt: Any, path: Path) -> Path:
    try:
        fig.tight_layout()
        _save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def save_signals(
    path: Path,
    title: str,
    signals: Tensor,
    overlay: Tensor | None = None,
    value_range: tuple[float, float] | None = None,
    cols: int = 4,
) -> Path:
    """Line plots of signals ``(N, C, L)``, one panel each, a colour per channel (the first
    :data:`MAX_CHANNELS`). With ``overlay`` (the reconstructions, same shape) each panel also
    draws it, dashed, over the original."""
    sig = _numpy(signals)
    over = None if overlay is None else _numpy(overlay)
    n, channels, length = sig.shape
    shown = min(channels, MAX_CHANNELS)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    plt = _pyplot()
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.6 * cols, 1.7 * rows + 0.6), dpi=100, squeeze=False
    )
    ylim = _limits([sig] + ([over] if over is not None else []), value_range)
    t = np.arange(length)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        for c in range(shown):
            color = f"C{c}"
            ax.plot(t, sig[i, c], color=color, lw=1.0, label=f"channel {c}" if i == 0 else None)
            if over is not None:
                ax.plot(t, over[i, c], color=color, lw=1.0, ls="--", alpha=0.9)
        ax.set_ylim(*ylim)
        ax.tick_params(labelsize=7)
    more = f" (first {shown} of {channels} channels)" if shown < channels else ""
    if over is not None:
        more += "; solid: original, dashed: reconstruction"
    fig.suptitle(f"{title}{more}", fontsize=9)
    if shown > 1:
        axes.flat[0].legend(fontsize=6, loc="upper right")
    return _finish(fig, plt, path)


def save_pair_plot(
    path: Path, title: str, data: Tensor, other: Tensor, other_label: str, max_points: int = 1000
) -> Path:
    """A pair plot of the first :data:`MAX_COORDINATES` coordinates of vectors ``(N, F)``: the
    held-out ``data`` against ``other`` (samples or reconstructions), histograms on the
    diagonal and scatter plots of each pair of coordinates off it."""
    x = _numpy(data.reshape(len(data), -1))[:max_points]
    y = _numpy(other.reshape(len(other), -1))[:max_points]
    k = min(x.shape[1], MAX_COORDINATES)
    plt = _pyplot()
    side = 1.9 * k + 0.8
    fig, axes = plt.subplots(k, k, figsize=(side, side), dpi=100, squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                both = np.concatenate([x[:, i], y[:, i]])
                bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 30)
                ax.hist(x[:, i], bins=bins, alpha=0.5, label="data")
                ax.hist(y[:, i], bins=bins, alpha=0.5, label=other_label)
            else:
                ax.scatter(x[:, j], x[:, i], s=2, alpha=0.4, label="data")
                ax.scatter(y[:, j], y[:, i], s=2, alpha=0.4, label=other_label)
            ax.tick_params(labelsize=6)
            if i == k - 1:
                ax.set_xlabel(f"x[{j}]", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"x[{i}]", fontsize=7)
    features = x.shape[1]
    shown = f"coordinates 0-{k - 1} of {features}" if k < features else f"{features}-D"
    fig.suptitle(f"{title} ({shown})", fontsize=9)
    axes[0, 0].legend(fontsize=6, loc="upper right", markerscale=3)
    return _finish(fig, plt, path)
