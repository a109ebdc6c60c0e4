"""FID with Inception-v3 features through torch-fidelity: optional, and never downloads.

Install the extra with ``pip install wae-toolkit[fid]`` and put torch-fidelity's Inception
weights (``weights-inception-2015-12-05-6726825d.pth``, converted from TensorFlow's) on disk: in
torch's hub cache (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/
checkpoints``), or anywhere named by ``$WAE_INCEPTION_WEIGHTS`` or the ``weights_path``
argument. Images are mapped from the data's value range to 8-bit RGB (gray images are repeated
over three channels), resized by torch-fidelity to 299x299, and their 2048 pool features enter
:func:`wae_toolkit.metrics.frechet.frechet`. Without the package, with a torchvision that does not
import beside the installed torch, or without the weights file, :func:`fid_status` says why and
:func:`fid` returns ``None`` with that reason. Nothing is fetched from the network: torch-fidelity
downloads only when given no weights path, and we always give one (no other offline switch
applies to it). It reads the file with ``torch.load``, which torch >= 2.6 restricts to tensors
(``weights_only``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.metrics.batching import batched
from wae_toolkit.metrics.frechet import frechet

__all__ = ["INCEPTION_WEIGHTS", "inception_weights_path", "fid_status", "fid"]

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path(weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Where the Inception weights are looked for: the argument, ``$WAE_INCEPTION_WEIGHTS``, or
    torch's hub cache."""
    if weights_path is not None:
        return Path(weights_path).expanduser()
    if os.environ.get("WAE_INCEPTION_WEIGHTS"):
        return Path(os.environ["WAE_INCEPTION_WEIGHTS"]).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def _import_fidelity() -> tuple[Any, str | None]:
    """``(module, None)`` when torch-fidelity imports, else ``(None, reason)``."""
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as module
    except Exception as exc:  # a torchvision built for another torch fails in many ways
        missing = getattr(exc, "name", None) or ""
        if isinstance(exc, ModuleNotFoundError) and missing.split(".")[0] == "torch_fidelity":
            return None, "torch-fidelity is not installed (pip install wae-toolkit[fid])"
        if "torchvision" in missing or "torchvision" in str(exc):
            return None, "it needs torchvision, which does not import beside this torch"
        return None, f"torch-fidelity does not import: {type(exc).__name__}: {exc}"
    return module, None


def fid_status(weights_path: str | os.PathLike[str] | None = None) -> str | None:
    """``None`` when FID can be computed, else the reason it cannot (one sentence)."""
    _, reason = _import_fidelity()
    if reason is not None:
        return reason
    path = inception_weights_path(weights_path)
    if not path.is_file():
        return f"Inception weights not found at {path} (they are never downloaded)"
    return None


def _to_uint8_rgb(images: Tensor, value_range: tuple[float, float] | None) -> Tensor:
    """``(N, C, H, W)`` floats in ``value_range`` -> ``(N, 3, H, W)`` uint8."""
    lo, hi = value_range if value_range is not None else (float(images.min()), float(images.max()))
    x = ((images.float() - lo) / max(hi - lo, 1e-12)).clamp(0.0, 1.0)
    x = (x * 255.0).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x[:, :3].contiguous()


def fid(
    images1: Tensor,
    images2: Tensor,
    value_range: tuple[float, float] | None,
    *,
    weights_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    batch_size: int = 64,
) -> tuple[float | None, str | None]:
    """FID between two image sets ``(N, C, H, W)`` with C in {1, 3}.

    Returns:
        ``(value, None)``, or ``(None, reason)`` when torch-fidelity or the weights are missing.
    """
    reason = fid_status(weights_path)
    if reason is not None:
        return None, reason
    module, _ = _import_fidelity()
    # An explicit weights path makes torch-fidelity read the file and never download.
    weights = str(inception_weights_path(weights_path))
    extractor = module.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=weights
    ).to(device)

    def features(images: Tensor) -> Tensor:
        x = _to_uint8_rgb(images, value_range)
        return batched(lambda t: extractor(t)[0], x, batch_size, device).double().cpu()

    return frechet(features(images1), features(images2)), None
