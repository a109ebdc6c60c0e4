"""Sharpness: the variance of the Laplace-filtered image (Tolstikhin et al. 2018, Table 1).

For one image ``x`` ``(C, H, W)`` the reference code (``compute_blurriness`` in the authors'
``wae.py``) computes

1. a grayscale image ``g``: ``x`` itself when ``C = 1``; for RGB the luma
   ``g = 0.2989 R + 0.5870 G + 0.1140 B`` of ``tf.image.rgb_to_grayscale``. Other channel counts
   (which no loader of ours produces) take the mean over channels;
2. ``L = g * K``, the 3x3 Laplacian ``K = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` applied without
   padding ("VALID"), so ``L`` is ``(H - 2, W - 2)``;
3. ``var(L) = mean((L - mean(L))^2)`` over the pixels of ``L`` (the population variance of
   ``tf.nn.moments``).

The score of a set of images is the mean of ``var(L)`` over the images. Higher is sharper; blurry
reconstructions and samples score below the real data, which is the reference to compare with.
The unit is a squared pixel value in the data's own range: data in ``[-1, 1]`` score four times
what the same images in ``[0, 1]`` score, so compare models on the same data only. The paper's
CelebA figures (true data 2e-2) are not comparable with 8x8 digits or MNIST.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wae_toolkit.errors import UsageError
from wae_toolkit.metrics.batching import batched

__all__ = ["LAPLACIAN", "RGB_TO_GRAY", "to_grayscale", "laplace_variance", "sharpness"]

#: The 3x3 Laplace filter of the reference code.
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
#: The luma weights of ``tf.image.rgb_to_grayscale`` (ITU-R BT.601).
RGB_TO_GRAY = (0.2989, 0.5870, 0.1140)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise UsageError(f"Sharpness needs images of shape (N, C, H, W); got {shape}.")
    if images.shape[2] < 3 or images.shape[3] < 3:
        raise UsageError(
            "Sharpness needs images of at least 3x3 pixels for the 3x3 Laplace filter; got "
            f"{images.shape[2]}x{images.shape[3]}."
        )


def to_grayscale(images: Tensor) -> Tensor:
    """One channel per image, as the reference code does.

    Args:
        images: ``(N, C, H, W)``.

    Returns:
        ``(N, 1, H, W)`` in float64: the image when ``C = 1``, the BT.601 luma when ``C = 3``,
        and the channel mean otherwise.
    """
    _check_images(images)
    x = images.detach().to(torch.float64)
    channels = x.shape[1]
    if channels == 1:
        return x
    if channels == 3:
        w = torch.tensor(RGB_TO_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def laplace_variance(images: Tensor) -> Tensor:
    """Per-image variance of the Laplace-filtered grayscale image.

    ``var(g * K)`` with ``K`` the 3x3 Laplacian, no padding, population variance over the
    ``(H - 2) (W - 2)`` filtered pixels.

    Args:
        images: ``(N, C, H, W)``, ``H, W >= 3``.

    Returns:
        ``(N,)`` float64 tensor on the images' device.
    """
    gray = to_grayscale(images)
    kernel = torch.tensor(LAPLACIAN, dtype=gray.dtype, device=gray.device).view(1, 1, 3, 3)
    filtered = torch.nn.functional.conv2d(gray, kernel).flatten(1)
    return filtered.var(dim=1, unbiased=False)


@torch.no_grad()
def sharpness(images: Tensor, batch_size: int = 1000) -> float:
    """Mean over the images of :func:`laplace_variance`: the paper's sharpness score.

    Args:
        images: ``(N, C, H, W)`` with ``N >= 1``.
        batch_size: images filtered at once (memory only; the result does not depend on it).

    Returns:
        ``mean_i var(g_i * K)``, in squared pixel-value units of the data's range.
    """
    _check_images(images)
    if len(images) == 0:
        raise UsageError("Sharpness needs at least one image; got none.")
    return float(batched(laplace_variance, images, batch_size).mean())
