"""Runs that differ only by their seed, grouped for the comparison page: one column per group,
each metric as mean ± standard deviation over the group's runs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from wae_toolkit.report.markup import esc, finite, number
from wae_toolkit.runs.read import RunFolder

__all__ = ["Group", "seed_groups", "spread", "spread_html"]

#: The setting a group's runs may differ in.
SEED = "seed"


@dataclass
class Group:
    """Runs of one setting; ``members`` index the page's list of runs (one, or several seeds)."""

    members: list[int]
    runs: list[RunFolder]

    @property
    def size(self) -> int:
        return len(self.members)

    def header(self) -> str:
        """The column's head: the run (with its colour), or the seeds and their runs."""
        swatches = "".join(f'<span class="swatch c{i % 10}"></span>' for i in self.members)
        if self.size == 1:
            return f"{swatches}{esc(self.runs[0].label)}"
        names = ", ".join(esc(r.label) for r in self.runs)
        return f'{swatches}{self.size} seeds<br><span class="muted runs-of">{names}</span>'


def seed_groups(runs: list[RunFolder], flats: list[dict[str, Any]]) -> list[Group]:
    """The runs grouped by every flattened setting but ``seed`` (in the order they were given);
    a run of a setting no other run shares is a group of one."""
    keys: dict[str, list[int]] = {}
    for i, flat in enumerate(flats):
        rest = {k: v for k, v in flat.items() if k != SEED}
        keys.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(i)
    return [Group(m, [runs[i] for i in m]) for m in keys.values()]


def spread(values: list[Any]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (None for fewer than two values) and count of the
    finite numbers in ``values``."""
    nums = [float(v) for v in values if finite(v) and math.isfinite(float(v))]
    if not nums:
        return None, None, 0
    mean = math.fsum(nums) / len(nums)
    if len(nums) < 2:
        return mean, None, len(nums)
    var = math.fsum((v - mean) ** 2 for v in nums) / (len(nums) - 1)
    return mean, math.sqrt(var), len(nums)


def spread_html(values: list[Any], size: int) -> str:
    """``mean ± std`` of a group's values, with how many runs had one when not all did."""
    mean, std, n = spread(values)
    if mean is None:
        return number(None)
    text = number(mean)
    if std is not None:
        text += f' <span class="pm">&plusmn; {number(std, 2)}</span>'
    if n < size:
        text += f' <span class="muted">({n} of {size})</span>'
    return text
