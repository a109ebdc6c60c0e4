"""Bounds shared by every layer (so that a lower layer need not import the configuration)."""

#: The largest seed: torch seeds are 64-bit, and training also seeds with ``seed + 1``.
MAX_SEED = (1 << 63) - 1
