"""Hugging Face ``datasets`` on disk: ``save_to_disk`` folders, Parquet files and Arrow files.

Read with the optional ``datasets`` package (``pip install 'wae-toolkit[hf]'``) and offline:
``HF_DATASETS_OFFLINE`` and ``HF_HUB_OFFLINE`` are set while a data set is read, and only local
readers are used (``datasets.load_from_disk``, ``Dataset.from_file``, pyarrow's Parquet reader),
so nothing is downloaded and no cache is written.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wae_toolkit.data.dataset import Dataset, _finish, _finish_split, _Footprint, _labels_tensor
from wae_toolkit.data.hf_columns import array_parts, image_parts, is_array_feature, is_image_feature
from wae_toolkit.data.layout import _as_labels
from wae_toolkit.data.source_options import _check_values
from wae_toolkit.data.streamed import streaming_budget
from wae_toolkit.errors import DataError, did_you_mean, setting, setting_name
from wae_toolkit.plugins.interfaces import INTERFACE_VERSION, DataSource

__all__ = ["HuggingFaceSource", "HF_EXTRA"]

#: What to install for this source.
HF_EXTRA = "pip install 'wae-toolkit[hf]'"
_OFFLINE = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
#: Column names taken for the samples when ``column`` is not given and no column holds images.
_SAMPLE_NAMES = ("image", "img", "pixel_values", "pixels", "x", "data", "features", "inputs")
#: Column names taken for the labels when ``labels_column`` is not given (after a ClassLabel).
_LABEL_NAMES = ("label", "labels", "y", "target", "targets", "class")
_FILE_KINDS = {".parquet": "parquet", ".arrow": "arrow"}


class HuggingFaceSource(DataSource):
    """Hugging Face datasets on disk: save_to_disk folders, Parquet and Arrow files (offline).

    Reads a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``, a
    ``.parquet`` file (``Dataset.to_parquet``) or an ``.arrow`` file, with the optional
    ``datasets`` package (``pip install 'wae-toolkit[hf]'``); nothing is ever downloaded. The
    samples are one column: an image column (decoded with Pillow, in [0, 1]) or an array column
    (the layouts of ``.npy`` files; ``uint8`` divided by 255). Labels come from a ClassLabel
    column, or one named label, labels, y, target, targets or class.

    Args:
        column: the column holding the samples; default: the first image column, else one named
            image, img, pixel_values, pixels, x, data, features or inputs, else the only array
            column.
        labels_column: the column of integer class labels; default: found as above, or none.
        split: for a DatasetDict folder, the split to train on; default: train (or the only one).
        test_split: for a DatasetDict folder, the split held out; default: test when there is
            one and test_fraction is not given.
        test_fraction: share of the training split held out when no test split is used (0.2).
        seed: seed of that split.
        limit: use only the first N training samples.
        size: resize every image to size x size pixels (image columns).
        channels: 1 (grayscale) or 3 (RGB) for image columns; default: 1 if all are gray.
        scale: unit keeps the values; symmetric maps data in [0, 1] to [-1, 1] (x -> 2x - 1).
    """

    interface_version = INTERFACE_VERSION
    kind = "path"

    def __init__(
        self,
        column: str | None = None,
        labels_column: str | None = None,
        split: str | None = None,
        test_split: str | None = None,
        test_fraction: float | None = None,
        seed: int = 123,
        limit: int | None = None,
        size: int | None = None,
        channels: Literal[1, 3] | None = None,
        scale: Literal["unit", "symmetric"] = "unit",
    ) -> None:
        _check_values({"test_fraction": test_fraction, "seed": seed, "limit": limit, "size": size})
        if test_split is not None and test_fraction is not None:
            raise DataError(
                f"Give either {setting('data_opts', 'test_split=NAME')} or "
                f"{setting('data_opts', 'test_fraction=F')}, not both: a test split replaces "
                "the random split."
            )
        self.column = column
        self.labels_column = labels_column
        self.split = split
        self.test_split = test_split
        self.test_fraction = test_fraction
        self.seed = seed
        self.limit = limit
        self.size = size
        self.channels = channels
        self.scale = scale

    def claims(self, path: Path) -> Any:
        if path.is_dir():
            if (path / "dataset_dict.json").is_file():
                return "dict"
            if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
                return "dataset"
            return False
        return _FILE_KINDS.get(path.suffix.lower(), False)

    def load(self, spec: str, path: Path | None = None, found: Any = None) -> Dataset:
        path = Path(spec).expanduser() if path is None else path
        found = found or self.claims(path)
        if not found:
            raise DataError(
                f"'{spec}' is not a Hugging Face data set on disk; give a folder written by "
                "save_to_disk, or a .parquet or .arrow file."
            )
        with _offline(spec) as datasets:
            opened = _open(datasets, path, found, spec)
            train, test, opts = self._parts(opened, spec)
            return _build(spec, train, test, opts, explicit=self.labels_column is not None)

    def _parts(self, opened: Any, spec: str) -> tuple[Any, Any, dict[str, Any]]:
        """The training and test parts (``None``: split with ``test_fraction``) and the resolved
        options, as the run configuration records them (so that they read the same data)."""
        opts = self.options()
        if hasattr(opened, "features"):  # one data set
            if self.split is not None or self.test_split is not None:
                raise DataError(
                    f"'{spec}' holds one data set, not a dictionary of splits; the data options "
                    "split and test_split apply to a folder written by DatasetDict.save_to_disk."
                )
            train, test = opened, None
        else:
            names = list(opened)
            split = self.split
            if split is None:
                if "train" in names or len(names) == 1:
                    split = "train" if "train" in names else names[0]
                else:
                    raise DataError(
                        f"'{spec}' holds the splits {', '.join(names) or 'none'} and none is "
                        f"called train; choose one with {setting('data_opts', 'split=NAME')}."
                    )
            _check_split(split, names, spec, "split")
            test_split = self.test_split
            if test_split is None and self.test_fraction is None and "test" in names:
                test_split = "test" if split != "test" else None
            if test_split is not None:
                _check_split(test_split, names, spec, "test_split")
                if test_split == split:
                    raise DataError(
                        f"Data options split and test_split both name '{split}'; the test split "
                        "must be another split (or leave test_split out to hold out a fraction)."
                    )
            train, test = opened[split], (None if test_split is None else opened[test_split])
            opts.update(split=split, test_split=test_split)
        if test is None:
            opts["test_fraction"] = 0.2 if self.test_fraction is None else self.test_fraction
        opts["column"] = self._sample_column(train, spec)
        opts["labels_column"] = self._labels_column(train, opts["column"], spec)
        return train, test, opts

    def _sample_column(self, part: Any, spec: str) -> str:
        features = dict(part.features)
        if self.column is not None:
            return _check_column(self.column, features, spec)
        images = [n for n, f in features.items() if is_image_feature(f)]
        if images:
            return images[0]
        named = [n for n in _SAMPLE_NAMES if n in features]
        if named:
            return named[0]
        arrays = [n for n, f in features.items() if is_array_feature(f)]
        if len(arrays) == 1:
            return arrays[0]
        raise DataError(
            f"'{spec}' has the columns {', '.join(features) or 'none'} and none of them is an "
            "image column or the only array column; choose the samples with "
            f"{setting('data_opts', 'column=NAME')}."
        )

    def _labels_column(self, part: Any, column: str, spec: str) -> str | None:
        features = dict(part.features)
        if self.labels_column is not None:
            name = _check_column(self.labels_column, features, spec)
            if name == column:
                raise DataError(
                    f"Data options column and labels_column both name '{name}'; the labels must "
                    "be another column."
                )
            return name
        classes = [n for n, f in features.items() if type(f).__name__ == "ClassLabel"]
        candidates = [n for n in [*classes, *_LABEL_NAMES] if n in features and n != column]
        return candidates[0] if candidates else None


@contextlib.contextmanager
def _offline(spec: str) -> Iterator[Any]:
    """The ``datasets`` module, imported and used offline, with its progress bars off."""
    saved = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update({k: "1" for k in _OFFLINE})
    try:
        try:
            import datasets
        except ImportError as exc:
            raise DataError(
                f"Reading the Hugging Face data set '{spec}' needs the 'datasets' package, which "
                f"is not installed ({exc}); install it with {HF_EXTRA}."
            ) from None
        # The names changed over datasets' versions (disable_progress_bar before 2.x's end).
        enabled = getattr(datasets, "is_progress_bar_enabled", lambda: False)()
        off = getattr(datasets, "disable_progress_bars", None) or datasets.disable_progress_bar
        on = getattr(datasets, "enable_progress_bars", None) or datasets.enable_progress_bar
        off()
        try:
            yield datasets
        finally:
            if enabled:
                on()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _open(datasets: Any, path: Path, found: str, spec: str) -> Any:
    """The data set (or dictionary of splits) at ``path``, read from the disk only."""
    try:
        if found == "parquet":
            import pyarrow.parquet as pq

            return datasets.Dataset(datasets.table.InMemoryTable(pq.read_table(path)))
        if found == "arrow":
            return datasets.Dataset.from_file(str(path))
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets and pyarrow raise many types for unreadable data
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"'{spec}' could not be read as a Hugging Face data set ({type(exc).__name__}: "
            f"{reason}); give a folder written by save_to_disk, or a .parquet or .arrow file "
            "written by datasets."
        ) from None


def _check_split(name: str, names: list[str], spec: str, option: str) -> None:
    if name not in names:
        raise DataError(
            f"'{spec}' has no split '{name}' (data option {option}).{did_you_mean(name, names)} "
            f"Splits: {', '.join(names)}."
        )


def _check_column(name: str, features: dict[str, Any], spec: str) -> str:
    if name not in features:
        raise DataError(
            f"'{spec}' has no column '{name}'.{did_you_mean(name, features)} "
            f"Columns: {', '.join(features)}."
        )
    return name


def _labels(part: Any, column: str | None, explicit: bool, spec: str) -> np.ndarray | None:
    if column is None or column not in part.features:
        return None
    values = part.with_format("numpy", columns=[column])[:][column]
    return _as_labels(values, len(part), f"Column '{column}' of '{spec}'", explicit=explicit)


def _build(spec: str, train: Any, test: Any, opts: dict[str, Any], explicit: bool) -> Dataset:
    """Read the samples (and labels) of the parts and make the data set; labels from a column
    the user named (``explicit``) must be class numbers, a column found by its name may not be."""
    parts = [train] if test is None else [train, test]
    for part, label in zip(parts, ("training", "test"), strict=False):
        if len(part) < (2 if test is None else 1):
            raise DataError(
                f"The {label} split of '{spec}' holds {len(part)} sample(s); a data set needs at "
                "least 2 (one for training, one held out)."
            )
    col = opts["column"]
    feature = train.features[col]
    if is_image_feature(feature):
        shape, takes = image_parts(parts, col, opts["size"], opts["channels"], spec)
        kind = "images"
    else:
        for key in ("size", "channels"):
            if opts[key] is not None:
                raise DataError(
                    f"Data option {key} applies to image columns, and column '{col}' of '{spec}' "
                    "holds arrays; leave it out."
                )
        shape, takes = array_parts(parts, col, spec)
        kind = "arrays"
    labels = [_labels(p, opts["labels_column"], explicit, spec) for p in parts]
    if labels[0] is None:  # a column named like labels that holds no class numbers
        opts["labels_column"] = None
    splits = f", split '{opts.get('split')}'" if opts.get("split") else ""
    if test is not None:
        splits += f", test split '{opts['test_split']}'"
    what = f"Hugging Face data set '{spec}', {kind} of column '{col}'{splits}"
    footprint = _Footprint(
        per_sample=4 * math.prod(shape),
        what=f"samples of shape {shape} from '{spec}' as float32",
        fix=f"keep fewer training samples with {setting('data_opts', 'limit=N')}"
        + (f", or a smaller {setting_name('data_opts')} size" if kind == "images" else ""),
    )
    budget = streaming_budget()  # a run's: a training part larger than it is streamed
    per_sample = math.prod(shape) * (1 if kind == "images" else 4)
    streams = budget is not None and (kind == "images" or len(train) * per_sample > budget)
    if test is None:
        whole = None if streams else footprint
        return _finish_split(spec, what, len(train), takes[0], labels[0], opts, footprint=whole)
    n_train = min(len(train), opts["limit"] or len(train))
    footprint.check(len(test) if streams else n_train + len(test))
    train_idx, test_idx = np.arange(n_train), np.arange(len(test))
    both = labels[0] is not None and labels[1] is not None
    return _finish(
        spec,
        what,
        takes[0](train_idx, "training"),
        takes[1](test_idx, "test"),
        _labels_tensor(labels[0] if both else None, train_idx),
        _labels_tensor(labels[1] if both else None, None),
        opts,
    )
