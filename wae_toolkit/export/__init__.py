"""Export a trained model's encoder and decoder as TorchScript or ONNX files.

The files run without wae-toolkit: ``torch.jit.load`` for TorchScript, any ONNX runtime for ONNX
(the ``onnx`` extra: ``pip install 'wae-toolkit[onnx]'``). Each part is a small module with a
dynamic batch dimension:

* ``encoder.{pt,onnx}``: ``x`` ``(batch, *S)`` -> ``z`` ``(batch, D)``, the codes
  ``model.encode(x, sample=False)``; a Gaussian encoder gives two outputs instead, ``mean`` (the
  same codes) and ``log_var`` (its log-variances, clipped as the model clips them), from which a
  random code is ``mean + exp(log_var / 2) * eps``.
* ``decoder.{pt,onnx}``: ``z`` ``(batch, D)`` -> ``x_hat`` ``(batch, *S)``, what
  ``model.decode(z)`` gives, in the data's own space (the decoder's sigmoid or tanh included).
* ``export.json``: the inputs and outputs, the latent dimension, the data's shape and value range,
  the prior, the versions and the run the model came from (one entry per format and part, so
  TorchScript and ONNX exports of the same weights can share a folder).

Each file is written to a temporary name, loaded back and compared with the model on random
inputs at batch sizes other than the one it was traced with; only files that pass take their
final names. Existing files are replaced only with ``overwrite=True``.
"""

from __future__ import annotations

from wae_toolkit.export.formats import (
    FORMATS,
    MANIFEST,
    ONNX_OPSET,
    PARTS,
    ExportResult,
)
from wae_toolkit.export.model_export import (
    export_model,
)

__all__ = [
    "FORMATS",
    "PARTS",
    "ExportResult",
    "export_model",
    "MANIFEST",
    "ONNX_OPSET",
]
