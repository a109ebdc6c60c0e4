"""The figures a finished run writes into its folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.assembly.model import WAE
from wae_toolkit.data import Dataset
from wae_toolkit.runs.data_plots import save_pair_plot, save_signals
from wae_toolkit.runs.figures import save_image_grid, save_loss_curves, save_scatter

__all__ = ["write_figures", "principal_plane"]


def principal_plane(z_q: Tensor, z_p: Tensor) -> tuple[Tensor, Tensor]:
    """Project codes and prior samples ``(n, D)`` on the two leading principal components of the
    prior samples (centred on their mean), so both sets are shown in the same coordinates."""
    ref = z_p.double()
    mean = ref.mean(0)
    _, _, v = torch.linalg.svd(ref - mean, full_matrices=False)
    basis = v[:2].T  # (D, 2)
    return ((z_q.double() - mean) @ basis).float(), ((ref - mean) @ basis).float()


def _image_figures(
    out: Path, model: WAE, data: Dataset, test_x: Tensor, gen: torch.Generator
) -> list[Path]:
    """Grids of reconstructions, samples and interpolations of images ``(C, H, W)``."""
    vr = data.value_range
    shape = tuple(test_x.shape[1:])
    cols = min(8, len(test_x))
    rows = min(4, len(test_x) // cols)
    x = test_x[: rows * cols]
    rec = model.reconstruct(x)
    # Rows of originals, each followed by the row of their reconstructions.
    pairs = torch.stack([x.reshape(rows, cols, *shape), rec.reshape(rows, cols, *shape)], 1)
    files = [
        save_image_grid(
            out / "reconstructions.png", pairs.reshape(-1, *shape), nrow=cols, value_range=vr
        )
    ]
    samples = model.sample(64, generator=gen)
    files.append(save_image_grid(out / "samples.png", samples, value_range=vr))
    m = min(8, len(test_x) // 2)
    if m:
        inter = model.interpolate(test_x[:m], test_x[m : 2 * m], steps=10)
        files.append(
            save_image_grid(
                out / "interpolations.png", inter.reshape(-1, *shape), nrow=10, value_range=vr
            )
        )
    return files


def _signal_figures(
    out: Path, model: WAE, data: Dataset, test_x: Tensor, gen: torch.Generator
) -> list[Path]:
    """Line plots of held-out signals ``(C, L)`` with their reconstructions, and of samples."""
    vr = data.value_range
    x = test_x[:8]
    return [
        save_signals(
            out / "reconstructions.png",
            "held-out signals and their reconstructions",
            x,
            overlay=model.reconstruct(x),
            value_range=vr,
        ),
        save_signals(
            out / "samples.png",
            "samples G(z), z ~ prior",
            model.sample(16, generator=gen),
            value_range=vr,
        ),
    ]


def _vector_figures(out: Path, model: WAE, test_x: Tensor, gen: torch.Generator) -> list[Path]:
    """One scatter plot of 2-D points (data, reconstructions, samples), or, for vectors of any
    other size, pair plots of data against samples and against reconstructions."""
    n = min(len(test_x), 2000)
    x = test_x[:n]
    if x[0].numel() == 2:
        sets = {
            "data": x.reshape(n, 2),
            "reconstructions": model.reconstruct(x).reshape(n, 2),
            "samples G(z), z ~ prior": model.sample(n, generator=gen).reshape(n, 2),
        }
        title = "held-out data, reconstructions and samples"
        return [save_scatter(out / "data.png", title, sets)]
    rec = model.reconstruct(x)
    samples = model.sample(n, generator=gen)
    return [
        save_pair_plot(
            out / "reconstructions.png",
            "held-out data and their reconstructions",
            x,
            rec,
            "reconstructions",
        ),
        save_pair_plot(out / "samples.png", "held-out data and samples", x, samples, "samples"),
    ]


@torch.no_grad()
def write_figures(
    out: Path, model: WAE, data: Dataset, test_x: Tensor, records: list[dict[str, Any]], seed: int
) -> list[Path]:
    """Write the figures that fit the data, and the loss curves; returns the paths written.

    Images ``(C, H, W)``: grids of reconstructions, samples and interpolations. Signals
    ``(C, L)``: line plots of reconstructions (over the originals) and of samples. 2-D vectors:
    one scatter plot of data, reconstructions and samples (``data.png``); other vectors: pair
    plots of a few coordinates, data against reconstructions and against samples. Then the
    codes against the prior (``latent.png``) and the loss curves."""
    model.eval()
    gen = torch.Generator(device=test_x.device).manual_seed(seed + 2)
    if test_x.dim() == 4:
        files = _image_figures(out, model, data, test_x, gen)
    elif test_x.dim() == 3:
        files = _signal_figures(out, model, data, test_x, gen)
    else:
        files = _vector_figures(out, model, test_x, gen)
    n = min(len(test_x), 2000)
    z_q = model.encode(test_x[:n], sample=True)
    z_p = model.prior.sample(n, generator=gen)
    dims = z_q.shape[1]
    if dims >= 2:
        title = "held-out codes vs prior samples"
        if dims > 2:
            z_q, z_p = principal_plane(z_q, z_p)
            title += f"\n(2 leading principal components of {dims})"  # two lines: fits 5 in
        files.append(save_scatter(out / "latent.png", title, {"prior z_p": z_p, "codes z_q": z_q}))
    curves = save_loss_curves(out / "losses.png", records)
    if curves is not None:
        files.append(curves)
    return files
