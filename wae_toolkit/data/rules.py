"""What a data set's description must be: its sample shape and value range. One rule each, used
wherever a description comes from outside the data loaders (the arguments of
``build_components``, a run's ``config.json``). No torch here: readers of run folders use it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SHAPE_RULE", "RANGE_RULE", "shape_ok", "value_range_ok"]


#: What a sample shape and a value range must be, wherever one comes from outside the data
#: loaders (the arguments of ``build_components``, a run's ``config.json``).
SHAPE_RULE = "a list of one or more sizes >= 1"
RANGE_RULE = "none, or two finite numbers [low, high] with low < high"


def shape_ok(shape: Any) -> bool:
    """Whether ``shape`` is a sample shape: one or more integers >= 1."""
    return (
        isinstance(shape, list | tuple)
        and len(shape) > 0
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    )


def value_range_ok(value_range: Any) -> bool:
    """Whether ``value_range`` is ``None`` or ``(low, high)``, finite, ``low < high`` (a range
    has a width: figures divide by it)."""
    return value_range is None or (
        isinstance(value_range, list | tuple)
        and len(value_range) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value_range)
        and all(math.isfinite(v) for v in value_range)
        and value_range[0] < value_range[1]
    )
