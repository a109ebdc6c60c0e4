"""The figures a finished run writes into its folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.assembly.model import WAE
from wae_toolkit.data import Dataset
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


@torch.no_grad()
def write_figures(
    out: Path, model: WAE, data: Dataset, test_x: Tensor, records: list[dict[str, Any]], seed: int
) -> list[Path]:
    """Write reconstructions, samples and interpolations (images) or scatter plots (vectors), and
    the loss curves. Returns the paths written."""
    model.eval()
    gen = torch.Generator(device=test_x.device).manual_seed(seed + 2)
    files: list[Path] = []
    if data.is_image:
        vr = data.value_range
        shape = tuple(test_x.shape[1:])
        cols = min(8, len(test_x))
        rows = min(4, len(test_x) // cols)
        x = test_x[: rows * cols]
        rec = model.reconstruct(x)
        # Rows of originals, each followed by the row of their reconstructions.
        pairs = torch.stack([x.reshape(rows, cols, *shape), rec.reshape(rows, cols, *shape)], 1)
        files.append(
            save_image_grid(
                out / "reconstructions.png", pairs.reshape(-1, *shape), nrow=cols, value_range=vr
            )
        )
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
    else:
        n = min(len(test_x), 2000)
        x = test_x[:n]
        if x[0].numel() == 2:
            files.append(
                save_scatter(
                    out / "data.png",
                    "held-out data, reconstructions and samples",
                    {
                        "data": x.reshape(n, 2),
                        "reconstructions": model.reconstruct(x).reshape(n, 2),
                        "samples G(z), z ~ prior": model.sample(n, generator=gen).reshape(n, 2),
                    },
                )
            )
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
