"""What the data folders of the paper's setups hold, named once for messages and presets."""

from __future__ import annotations

__all__ = ["MNIST_FILES", "MNIST_FILES_TEXT", "CELEBA_FOLDER_TEXT"]

#: MNIST's four IDX files, as distributed (each may also be gzipped, ``NAME.gz``). A folder of
#: MNIST IDX files needs the two images files; the labels files are read when both are present.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: :data:`MNIST_FILES` as text for messages.
MNIST_FILES_TEXT = "MNIST's " + ", ".join(f"{f}(.gz)" for f in MNIST_FILES)
#: The folder the CelebA setup reads.
CELEBA_FOLDER_TEXT = "a folder of the aligned CelebA JPEG images (img_align_celeba/*.jpg)"
