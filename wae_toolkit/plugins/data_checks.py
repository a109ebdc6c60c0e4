"""The conformance check of a data source; :mod:`wae_toolkit.plugins.testing` exports it.

A data set is checked by its attributes (``train``, ``test``, labels, value range, description,
options), as the training loop uses it: this layer does not import :mod:`wae_toolkit.data`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wae_toolkit.plugins.interfaces import DATA_SOURCE_KINDS, DataSource
from wae_toolkit.plugins.option_checks import check_options, instance_of
from wae_toolkit.plugins.options import plugin_options

__all__ = ["check_data_source", "check_dataset"]


def check_data_source(
    source: DataSource,
    path: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    spec: str | None = None,
) -> Any:
    """Check a :class:`~wae_toolkit.plugins.DataSource` on a small example of its data.

    A file or folder source gets ``path``, an example the test writes (a name source none): it
    must claim it, and claim neither an empty folder nor a file of unrelated bytes. Then it is
    built with :meth:`~wae_toolkit.plugins.DataSource.from_options` (``options``, by default the
    source's own options that differ from their defaults) and loaded twice as ``load_dataset``
    does (``spec``: the text given, default ``path``): both loads are
    float32 CPU tensors ``(N, *S)``, finite, of one sample shape, within their value range, with
    int64 labels for both parts or none, a description and JSON options, and they are equal. With
    a ``limit`` option, ``limit=1`` keeps one training sample and the same test part. Last, the
    options rebuild the source (:func:`~wae_toolkit.plugins.testing.check_options`).

    Returns:
        the data set of the first load, for further checks against ground truth.
    """
    instance_of(source, DataSource, "check_data_source")
    if options is None:
        defaults = {o.name: o.default for o in plugin_options(type(source))}
        options = {k: v for k, v in source.options().items() if v != defaults.get(k)}
    data = _check_source(source, path, spec, dict(options))
    check_options(source)
    return data


def _check_source(
    source: DataSource, path: str | Path | None, spec: str | None, options: Mapping[str, Any]
) -> Any:
    """Claim ``path`` (and nothing unrelated), load it twice and check both loads; ``limit=1``
    keeps one training sample and the same test part. Returns the first data set."""
    cls = type(source)
    name = cls.__name__
    assert isinstance(source, DataSource), (
        f"{name} must subclass wae_toolkit.plugins.interfaces.DataSource"
    )
    assert cls.kind in DATA_SOURCE_KINDS, (
        f"{name}.kind is {cls.kind!r}; it must be one of {', '.join(DATA_SOURCE_KINDS)}"
    )
    found: Any = None
    where: Path | None = None
    if cls.kind == "name":
        assert path is None, f"{name} is a name source (kind 'name'): it reads no path"
        spec = spec or "data"
    else:
        assert path is not None, (
            f"{name} reads a {cls.kind}: give check_data_source a small example of its format "
            "(path=...)"
        )
        where = Path(path)
        if cls.kind == "file":
            assert where.is_file(), f"{name} reads files, and {where} is not a file"
        if cls.kind == "folder":
            assert where.is_dir(), f"{name} reads folders, and {where} is not a folder"
        spec = spec or str(where)
        found = source.claims(where)
        assert found, f"{name}.claims() must be true for {where.name}, an example of its format"
        _claims_nothing_else(source)
    first = cls.from_options(options, "check").load(spec, where, found)
    check_dataset(first, name)
    again = cls.from_options(options, "check").load(spec, where, found)
    for part in ("train", "test"):
        assert torch.equal(getattr(first, part), getattr(again, part)), (
            f"{name}: loading the same data with the same options gave another {part} part "
            "(seed every random choice with the seed option)"
        )
    if "limit" in {s.name for s in plugin_options(cls)}:
        limited = cls.from_options({**options, "limit": 1}, "check").load(spec, where, found)
        check_dataset(limited, name)
        assert len(limited.train) == 1, f"{name}: limit=1 must keep one training sample"
        assert torch.equal(limited.test, first.test), f"{name}: limit must not change the test part"
    return first


def _claims_nothing_else(source: DataSource) -> None:
    name = type(source).__name__
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        other = Path(tmp) / "unrelated.bin"
        other.write_bytes(b"\x00\x01 this is not a data set\n")
        for p in (empty, other):
            what = "an empty folder" if p.is_dir() else "a file of other bytes"
            assert not source.claims(p), (
                f"{name}.claims() must be false for {p.name} ({what}), so that other sources "
                "get the paths it does not read"
            )


def check_dataset(data: Any, who: str = "the data set") -> None:
    """Check what a source's ``load`` returned, as the training loop uses it."""
    for attr in ("name", "train", "test", "train_labels", "test_labels", "value_range"):
        assert hasattr(data, attr), f"{who}: load must return a wae_toolkit.data.Dataset ({attr})"
    parts = {"train": data.train, "test": data.test}
    for part, t in parts.items():
        assert isinstance(t, Tensor) and t.dtype == torch.float32, (
            f"{who}: the {part} part must be a float32 tensor"
        )
        assert t.device.type == "cpu", f"{who}: the {part} part must be on the CPU"
        assert t.dim() >= 2 and len(t) >= 1, f"{who}: the {part} part must be (N, *S) with N >= 1"
        assert bool(torch.isfinite(t).all()), f"{who}: the {part} part has non-finite values"
    assert data.train.shape[1:] == data.test.shape[1:], (
        f"{who}: train samples {tuple(data.train.shape[1:])} and test samples "
        f"{tuple(data.test.shape[1:])} must have the same shape"
    )
    labels = (data.train_labels, data.test_labels)
    assert (labels[0] is None) == (labels[1] is None), (
        f"{who}: give labels for both parts or for none"
    )
    for part, y in zip(parts, labels, strict=True):
        if y is not None:
            assert isinstance(y, Tensor) and y.dtype == torch.int64 and y.dim() == 1, (
                f"{who}: {part} labels must be an int64 tensor (N,)"
            )
            assert len(y) == len(parts[part]), f"{who}: one {part} label per sample"
    if data.value_range is not None:
        lo, hi = data.value_range
        assert lo < hi, f"{who}: value_range must be (low, high) with low < high"
        for part, t in parts.items():
            assert float(t.min()) >= lo and float(t.max()) <= hi, (
                f"{who}: the {part} part leaves its value_range {data.value_range}"
            )
    assert isinstance(getattr(data, "description", None), str) and data.description, (
        f"{who}: the data set needs a one-line description"
    )
    try:
        json.dumps(getattr(data, "options", None))
    except TypeError as exc:
        raise AssertionError(f"{who}: the data set's options must be JSON values: {exc}") from None
