"""Data given in Python: arrays, tensors, ``torch.utils.data`` datasets and data loaders.

``fit(data=X)`` (and ``RunConfig(data=X, test=Xt)``) takes, besides a name or a path:

- a NumPy array or a tensor ``(N, *S)``, or a pair ``(X, y)`` of samples and ``N`` class labels;
- a map-style :class:`torch.utils.data.Dataset` or an :class:`~torch.utils.data.IterableDataset`
  whose items are samples, ``(sample,)`` (as ``TensorDataset(x)`` yields) or ``(sample, label)``;
- a :class:`~torch.utils.data.DataLoader` over such a data set (its batch size must be the run's;
  a map-style data set is read in index order, so the loader's shuffling does not change the split).

Every sample becomes one row of an array shaped as a ``.npy`` file would be, and from there the
data set is built exactly as the array source builds it (:mod:`wae_toolkit.data.arrays`): the
same layout rules, the seeded ``test_fraction`` split unless ``test`` is given, ``limit``,
``scale``, the value range and the check for non-finite values. So the same array given in Python
and saved with ``numpy.save`` trains the same model. The run's ``config.json`` records what the
data were (:func:`describe_input`: kind, shape, dtype, a SHA-256 of an array's bytes), not the
data: such a run cannot be repeated from the command line, and loading it needs no data.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from wae_toolkit.errors import DataError

__all__ = ["input_kind", "describe_input", "load_objects", "data_label", "IN_PYTHON"]

#: What messages and the option table call this source.
IN_PYTHON = "data given in Python"
_ALLOWED = (
    "a NumPy array or tensor (N, ...), a pair (X, y) of samples and labels, a torch Dataset or "
    "IterableDataset, or a DataLoader"
)


def _torch_data() -> Any:
    """``torch.utils.data`` when torch is already imported (an object can only be a torch one
    then); None otherwise, so that checking a name or a path never imports torch."""
    if "torch" not in sys.modules:
        return None
    import torch.utils.data

    return torch.utils.data


def _is_tensor(obj: Any) -> bool:
    return "torch" in sys.modules and isinstance(obj, sys.modules["torch"].Tensor)


def _is_array_like(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) or _is_tensor(obj)


def input_kind(obj: Any) -> str | None:
    """``"array"``, ``"tensor"``, ``"labelled"`` (a pair ``(X, y)``), ``"dataset"``,
    ``"iterable"`` or ``"dataloader"`` for data given in Python; None for anything else."""
    if isinstance(obj, np.ndarray):
        return "array"
    if _is_tensor(obj):
        return "tensor"
    if isinstance(obj, tuple) and len(obj) == 2 and all(_is_array_like(o) for o in obj):
        return "labelled"
    tud = _torch_data()
    if tud is None:
        return None
    if isinstance(obj, tud.DataLoader):
        return "dataloader"
    if isinstance(obj, tud.IterableDataset):
        return "iterable"
    if isinstance(obj, tud.Dataset):
        return "dataset"
    return None


def data_label(obj: Any) -> str:
    """A short name for the data in folder names and descriptions (``array``, ``dataset``...),
    or the name or path itself."""
    if isinstance(obj, str):
        return obj
    kind = input_kind(obj)
    if kind is not None:
        return kind
    if isinstance(obj, Mapping) and isinstance(obj.get("kind"), str):
        return str(obj["kind"])
    return "data"


def _array_record(x: Any) -> dict[str, Any]:
    if _is_tensor(x):
        dtype = str(x.dtype).replace("torch.", "")
        x = x.detach().cpu()
        x = x.float().numpy() if dtype in ("bfloat16", "float16") else x.numpy()
    else:
        dtype = str(x.dtype)
    arr = np.ascontiguousarray(x)
    digest = hashlib.sha256()
    flat = arr.reshape(-1).view(np.uint8) if arr.size else arr.reshape(-1)
    step = 1 << 24
    for i in range(0, flat.size, step):
        digest.update(flat[i : i + step].data)
    return {"shape": list(arr.shape), "dtype": dtype, "sha256": digest.hexdigest()}


def describe_input(obj: Any) -> dict[str, Any]:
    """What ``config.json`` records about data given in Python: its kind and type, and for arrays
    and tensors their shape, dtype and the SHA-256 of their bytes (for data sets, their length
    when they have one; for a data loader, its batch size and its data set)."""
    kind = input_kind(obj)
    record: dict[str, Any] = {"kind": kind, "type": f"{type(obj).__module__}.{type(obj).__name__}"}
    if kind in ("array", "tensor"):
        record |= _array_record(obj)
    elif kind == "labelled":
        record |= _array_record(obj[0]) | {"labels": _array_record(obj[1])}
    elif kind == "dataloader":
        record |= {"batch_size": obj.batch_size, "dataset": describe_input(obj.dataset)}
    elif kind == "dataset":
        try:
            record["length"] = len(obj)
        except TypeError:
            pass
    return record


def _as_numpy(sample: Any, where: str) -> np.ndarray:
    """One sample (or a batch) as a NumPy array: tensors moved to the CPU (bf16/fp16 as
    float32), PIL images and nested lists through ``np.asarray``."""
    if _is_tensor(sample):
        t = sample.detach().cpu()
        if t.dtype.is_floating_point and t.element_size() < 4:
            t = t.float()
        return np.asarray(t.numpy())
    try:
        arr = np.asarray(sample)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{where} is not an array of numbers ({exc}); allowed: {_ALLOWED}."
        ) from None
    if arr.dtype.hasobject or arr.dtype.kind not in "biuf":
        raise DataError(
            f"{where} holds {'Python objects' if arr.dtype.hasobject else 'non-numeric values'} "
            f"(dtype {arr.dtype}); samples must be numbers (bool, integer or floating point)."
        )
    return arr


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _split_item(item: Any, where: str) -> tuple[Any, Any]:
    """``(sample, label or None)`` from a data set's item: a sample, ``(sample,)`` or
    ``(sample, label)``."""
    if isinstance(item, tuple | list):
        if len(item) == 1:
            return item[0], None
        if len(item) == 2:
            return item[0], item[1]
        raise DataError(
            f"{where} is a tuple of {len(item)} values; items must be a sample, (sample,) or "
            "(sample, label)."
        )
    if isinstance(item, Mapping):
        raise DataError(
            f"{where} is a mapping (keys {', '.join(map(str, list(item)[:4]))}); items must be a "
            "sample, (sample,) or (sample, label): wrap the data set to return those."
        )
    return item, None


def _stack(rows: list[np.ndarray], labels: list[Any], what: str) -> tuple[np.ndarray, Any]:
    """The samples as one array (refusing inconsistent shapes) and the labels, if every item had
    one."""
    if not rows:
        raise DataError(f"{_cap(what)} is empty; give at least 2 samples.")
    first = rows[0].shape
    for i, r in enumerate(rows):
        if r.shape != first:
            raise DataError(
                f"{_cap(what)} yields samples of different shapes: item 0 is {first} but item "
                f"{i} is {r.shape}; every sample must have the same shape."
            )
    x = np.stack(rows)
    if any(label is None for label in labels):
        return x, None
    return x, np.asarray(
        [_as_numpy(v, f"The label of item {i} of {what}") for i, v in enumerate(labels)]
    ).reshape(len(labels), -1).squeeze(1)


def _from_items(items: Any, what: str) -> tuple[np.ndarray, Any]:
    rows, labels = [], []
    for i, item in enumerate(items):
        sample, label = _split_item(item, f"Item {i} of {what}")
        rows.append(_as_numpy(sample, f"Item {i} of {what}"))
        labels.append(label)
    return _stack(rows, labels, what)


def _from_batches(loader: Any, what: str) -> tuple[np.ndarray, Any]:
    xs, ys = [], []
    for i, batch in enumerate(loader):
        sample, label = _split_item(batch, f"Batch {i} of {what}")
        xs.append(_as_numpy(sample, f"Batch {i} of {what}"))
        ys.append(None if label is None else _as_numpy(label, f"The labels of batch {i}"))
    if not xs:
        raise DataError(f"{_cap(what)} is empty; give at least 2 samples.")
    if len({x.shape[1:] for x in xs}) > 1:
        raise DataError(
            f"{_cap(what)} yields batches of samples of different shapes; every sample must have "
            "the same shape."
        )
    x = np.concatenate(xs)
    labels = [y for y in ys if y is not None]
    return x, np.concatenate(labels) if len(labels) == len(ys) else None


def _to_arrays(obj: Any, what: str, batch_size: int) -> tuple[np.ndarray, Any]:
    """Samples ``(N, *S)`` and labels ``(N,)`` (or None) of data given in Python."""
    kind = input_kind(obj)
    if kind in ("array", "tensor"):
        return _as_numpy(obj, _cap(what)), None
    if kind == "labelled":
        return _as_numpy(obj[0], _cap(what)), _as_numpy(obj[1], f"The labels of {what}")
    if kind == "dataloader":
        if obj.batch_size is not None and obj.batch_size != batch_size:
            raise DataError(
                f"{_cap(what)} is a DataLoader with batch_size {obj.batch_size} but the run's "
                f"batch_size is {batch_size}; pass batch_size={obj.batch_size}, or give its "
                "Dataset instead."
            )
        tud = _torch_data()
        if not isinstance(obj.dataset, tud.IterableDataset):
            return _from_items((obj.dataset[i] for i in range(len(obj.dataset))), what)
        return _from_batches(obj, what)
    if kind == "dataset":
        try:
            n = len(obj)
        except TypeError:
            raise DataError(
                f"{_cap(what)} is a map-style Dataset without a length; define __len__, or make "
                "it an IterableDataset."
            ) from None
        return _from_items((obj[i] for i in range(n)), what)
    if kind == "iterable":
        return _from_items(iter(obj), what)
    raise DataError(
        f"{_cap(what)} is a {type(obj).__name__}; allowed: {_ALLOWED}, or a name or path."
    )


def load_objects(data: Any, test: Any, options: Mapping[str, Any] | None, batch_size: int) -> Any:
    """The :class:`~wae_toolkit.data.Dataset` of data given in Python (see the module's
    docstring); ``test`` (of the same kinds, or None for the seeded split) is the held-out part.

    Raises:
        DataError: one sentence naming the input and what is allowed.
    """
    from wae_toolkit.data.arrays import arrays_dataset
    from wae_toolkit.data.layout import _as_labels
    from wae_toolkit.data.source_options import _bind

    opts = _bind(options, IN_PYTHON, IN_PYTHON)
    x, labels = _to_arrays(data, "the data", batch_size)
    if labels is not None:
        labels = _as_labels(labels, len(x), "The labels given with the data", explicit=True)
    name = data_label(data)
    what = f"{name} {tuple(x.shape)} given in Python"
    if test is None:
        return arrays_dataset(x, labels, None, opts, name, what, ("the data",))
    xt, labels_t = _to_arrays(test, "the test data", batch_size)
    if labels_t is not None:
        where = "The labels given with the test data"
        labels_t = _as_labels(labels_t, len(xt), where, explicit=True)
    wheres = ("the data", "the test data", "The data", "The test data")
    return arrays_dataset(x, labels, (xt, labels_t), opts, name, what, wheres)
