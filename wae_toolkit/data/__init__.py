"""Data sets: built-ins, NumPy arrays, folders of images and MNIST IDX files.

:func:`load_dataset` turns a data specification (a built-in name or a path) and the options of
the repeatable CLI flag ``--data-opt key=value`` into a :class:`Dataset`: one float32 tensor per
split, on the CPU, with a held-out test split that is fixed for a given data set and seed.

Sources and their options (every source also takes ``limit``: use only the first N training
samples, and ``scale``: ``"unit"`` keeps the values, ``"symmetric"`` maps data in ``[0, 1]`` to
``[-1, 1]`` by ``x -> 2x - 1`` and is refused for other data):

- ``digits`` (default): scikit-learn's 1,797 bundled 8x8 digits, shape ``(1, 8, 8)``, in
  ``[0, 1]``. Options ``test_fraction`` (0.2), ``seed`` (123).
- ``swiss-roll``, ``moons``, ``ring``: 2-D toy sets generated from the seed, shape ``(2,)``,
  unbounded. Options ``n`` (4000), ``noise``, ``test_fraction``, ``seed``.
- ``.npy`` / ``.npz`` files, loaded with ``allow_pickle=False`` (files are never unpickled).
  Options ``test`` (a second file holding the test split), ``test_fraction``, ``seed``, and for
  ``.npz`` files ``key`` and ``labels_key``.
- A folder of images (png, jpg, jpeg, bmp, gif, webp, tif, tiff; recursive), read with Pillow,
  in ``[0, 1]``. Options ``size``, ``channels``, ``crop``, ``test_fraction``, ``seed``, and
  ``holdout`` (hold out the last N images of a seeded shuffle instead of a fraction; the paper's
  CelebA split is ``holdout=20000``).
- A folder of MNIST IDX files (:data:`MNIST_FILES`): option ``split``, ``"official"`` (60,000 /
  10,000) or ``"paper"`` (train and test shuffled with ``seed``, 123, and the last ``holdout``,
  10,000, held out, as in the WAE paper). A single IDX file takes ``test_fraction``, ``seed``.

Array shapes: ``(N, F)`` vectors; ``(N, C, L)`` signals when C <= 16 and L >= 8 C (the option
``layout``, ``auto``, ``image`` or ``signal``, decides for any 3-D array); other ``(N, H, W)``
images get a channel axis; ``(N, H, W, C)`` with C in {1, 3, 4} and H, W > 4 is channels-last
and is transposed to ``(N, C, H, W)``; ``(N, C, H, W)`` with C in {1, 3} is kept. Arrays of
images take ``size`` and ``crop`` as folders do. ``uint8`` data is divided by 255. The value range
(``(0, 1)``, ``(-1, 1)`` or unbounded) is read from the data and tells the training loop which
output activation the decoder needs (sigmoid, tanh or none).

Every problem raises :class:`~wae_toolkit.errors.DataError` with one sentence that says what was
wrong and what is allowed.

Each source is a plugin of the kind ``data`` (:class:`~wae_toolkit.plugins.interfaces.DataSource`,
entry-point group ``wae_toolkit.data``), the built-ins included; a Hugging Face ``datasets``
source (``hf``: ``save_to_disk`` folders, Parquet and Arrow files) needs the ``hf`` extra. A
third-party source builds its :class:`Dataset` with :func:`dataset_from_arrays`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.data.builtin import builtin_datasets
    from wae_toolkit.data.dataset import Dataset
    from wae_toolkit.data.expected import MNIST_FILES
    from wae_toolkit.data.images import IMAGE_EXTENSIONS
    from wae_toolkit.data.make import dataset_from_arrays
    from wae_toolkit.data.resolve import expected_contents, load_dataset
    from wae_toolkit.data.source_options import data_options

__all__ = [
    "Dataset",
    "load_dataset",
    "dataset_from_arrays",
    "builtin_datasets",
    "data_options",
    "expected_contents",
    "IMAGE_EXTENSIONS",
    "MNIST_FILES",
]

# Loaded on first use, so that light modules of this package (``expected``) import no torch.
__getattr__ = lazy_getattr(
    "wae_toolkit.data",
    {
        "Dataset": "dataset",
        "load_dataset": "resolve",
        "dataset_from_arrays": "make",
        "expected_contents": "resolve",
        "builtin_datasets": "builtin",
        "data_options": "source_options",
        "IMAGE_EXTENSIONS": "images",
        "MNIST_FILES": "expected",
    },
)
