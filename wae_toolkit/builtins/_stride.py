"""Padding to a network's total stride and cropping back: what lets the convolutional networks
take any sample size. Both modules have no parameters, so adding them changes no weight."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def halve_up(side: int) -> int:
    """``ceil(side / 2)``: a side after one stride-2 layer of a padded input."""
    return -(-side // 2)


def padded(side: int, stride: int) -> int:
    """``side`` rounded up to a multiple of ``stride``."""
    return -(-side // stride) * stride


def _margins(sides: tuple[int, ...], targets: tuple[int, ...]) -> list[tuple[int, int]]:
    """(before, after) for each side: the extra is split in two, the odd one after."""
    return [((t - s) // 2, t - s - (t - s) // 2) for s, t in zip(sides, targets, strict=True)]


class PadTo(nn.Module):
    """Zero-pads the last ``len(targets)`` axes of ``(B, C, *sides)`` to ``targets``, centred."""

    def __init__(self, sides: tuple[int, ...], targets: tuple[int, ...]) -> None:
        super().__init__()
        self.sides, self.targets = tuple(sides), tuple(targets)
        pads: list[int] = []
        for before, after in reversed(_margins(self.sides, self.targets)):
            pads += [before, after]  # F.pad takes the last axis first
        self.pads = tuple(pads)

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, self.pads)

    def extra_repr(self) -> str:
        return f"{self.sides} -> {self.targets}"


class CropTo(nn.Module):
    """Cuts the centre ``sides`` out of the last axes of ``(B, C, *targets)``: undoes
    :class:`PadTo` ``(sides, targets)``."""

    def __init__(self, sides: tuple[int, ...], targets: tuple[int, ...]) -> None:
        super().__init__()
        self.sides, self.targets = tuple(sides), tuple(targets)
        self.starts = tuple(before for before, _ in _margins(self.sides, self.targets))

    def forward(self, x: Tensor) -> Tensor:
        first = x.dim() - len(self.sides)
        for i, (start, side) in enumerate(zip(self.starts, self.sides, strict=True)):
            x = x.narrow(first + i, start, side)
        return x

    def extra_repr(self) -> str:
        return f"{self.targets} -> {self.sides}"


def check_conv_options(width: int, depth: int, kernel: int) -> None:
    """The options both convolutional networks share: one sentence for a bad value."""
    from wae_toolkit.errors import UsageError

    if width < 1 or depth < 1:
        raise UsageError(f"width and depth must be >= 1; got width={width}, depth={depth}.")
    if kernel not in (3, 4, 5):
        raise UsageError(f"kernel must be 3, 4 or 5; got {kernel}.")
