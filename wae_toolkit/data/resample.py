"""The data options ``crop`` and ``size`` for image arrays, done as a folder of images does them.

A folder of images (:mod:`wae_toolkit.data.images`) cuts the centre ``crop x crop`` square, then
resizes to ``size x size`` with Pillow's bicubic filter on 8-bit pixels. Arrays get the same
operations from the same library: ``uint8`` arrays exactly as the image files (so a folder of PNG
files and the same pixels saved with ``numpy.save`` give the same tensors), other arrays in
32-bit floating point, each channel on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wae_toolkit.errors import DataError, setting

__all__ = ["Resize", "resize_for"]


def _bounds(image: np.ndarray) -> tuple[float, float] | None:
    """The value range an image is kept in after resizing: [0, 1] or [-1, 1] when it lies there
    (bicubic filters overshoot: 8-bit pixels are clipped to [0, 255] as well), else none."""
    lo, hi = float(image.min()), float(image.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if lo >= -1.0 and hi <= 1.0:
        return -1.0, 1.0
    return None


@dataclass(frozen=True)
class Resize:
    """Centre-crop to ``crop x crop`` (when given), then resize to ``size x size`` (when given)
    images ``(n, C, H, W)``, as :mod:`wae_toolkit.data.images` does with the image files."""

    crop: int | None
    size: int | None

    def shape(self, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The sample shape ``(C, H, W)`` after cropping and resizing."""
        c, h, w = sample_shape
        if self.crop is not None:
            h = w = self.crop
        if self.size is not None:
            h = w = self.size
        return c, h, w

    def apply(self, images: np.ndarray) -> np.ndarray:
        """``(n, C, H, W)`` images of any numeric dtype -> resized ones, ``uint8`` kept as such,
        anything else as ``float32``."""
        if self.crop is not None:
            h, w = images.shape[2:]
            top, left = (h - self.crop) // 2, (w - self.crop) // 2
            images = images[:, :, top : top + self.crop, left : left + self.crop]
        if self.size is None or images.shape[2:] == (self.size, self.size):
            return images
        from PIL import Image

        eight_bit = images.dtype == np.uint8
        out = np.empty((*images.shape[:2], self.size, self.size), images.dtype)
        out = out if eight_bit else out.astype(np.float32)
        for i, image in enumerate(images):
            if eight_bit:
                for j, plane in enumerate(image):
                    resized = Image.fromarray(np.ascontiguousarray(plane)).resize(
                        (self.size, self.size), Image.Resampling.BICUBIC
                    )
                    out[i, j] = np.asarray(resized)
            else:
                out[i] = self._float(image.astype(np.float32), Image)
        return out

    def _float(self, image: np.ndarray, pil: Any) -> np.ndarray:
        """One float image ``(C, H, W)``, resized as Pillow resizes 8-bit ones: the rows, then
        the columns, each pass clipped to the image's range (:func:`_bounds`)."""
        bounds = _bounds(image)
        h = image.shape[1]
        for target in ((self.size, h), (self.size, self.size)):
            if image.shape[1:] == target[::-1]:
                continue
            image = np.stack(
                [
                    np.asarray(pil.fromarray(plane).resize(target, pil.Resampling.BICUBIC))
                    for plane in image
                ]
            )
            if bounds is not None:
                np.clip(image, *bounds, out=image)
        return image


def resize_for(
    opts: dict[str, Any], shape: tuple[int, ...], layout: str, where: str
) -> Resize | None:
    """The :class:`Resize` the data options ``crop`` and ``size`` ask for, for an array of
    ``shape`` read with ``layout`` (``None`` without them); refused for arrays that do not hold
    images and for a ``crop`` larger than the images."""
    crop, size = opts.get("crop"), opts.get("size")
    if crop is None and size is None:
        return None
    named = " and ".join(f"{k}={opts[k]}" for k in ("crop", "size") if opts.get(k) is not None)
    if layout not in ("hw", "hwc", "chw"):
        kind = "vectors" if layout == "flat" else "signals"
        raise DataError(
            f"Data option {named} resizes images, but {where} holds {kind} (shape "
            f"{tuple(shape)}); drop it, or give images shaped (N, H, W), (N, H, W, C) or "
            "(N, C, H, W)."
        )
    h, w = (shape[1], shape[2]) if layout in ("hw", "hwc") else (shape[2], shape[3])
    if crop is not None and crop > min(h, w):
        raise DataError(
            f"The images of {where} are {w}x{h} pixels, smaller than "
            f"{setting('data_opts', f'crop={crop}')}; "
            "crop must be at most the smallest image side."
        )
    return Resize(crop, size)
