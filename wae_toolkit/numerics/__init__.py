"""The numerics the penalties and the evaluation share: kernels and the reference MMD
(:mod:`~wae_toolkit.numerics.kernels`), the blockwise value-and-gradient MMD
(:mod:`~wae_toolkit.numerics.fused_mmd`), and exact 1-D optimal transport
(:mod:`~wae_toolkit.numerics.ot1d`). Pure functions of tensors; no plugin, no run."""
