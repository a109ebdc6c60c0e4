"""The base of the built-in data sources: their options are the tables of ``source_options``.

Each built-in source names its option table (:data:`~wae_toolkit.data.source_options._TABLES`);
the table makes the class's constructor, so ``wae plugins show digits`` and the conformance kit
see the options as they see any plugin's, and the source's loader checks the options against the
same table, with the messages it always gave. One declaration, two readers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.source_options import _TABLES, _Opt
from wae_toolkit.errors import DataError
from wae_toolkit.plugins.interfaces import INTERFACE_VERSION, DataSource

__all__ = ["TableSource"]


class TableSource(DataSource):
    """A built-in data source whose options are one or more tables of ``source_options``.

    Subclasses set ``tables`` (the table labels, merged in order) and implement :meth:`read`.
    :meth:`from_options` keeps the options as given: the loaders check them, in the order they
    always did (a folder's contents before its options), and tell given options from defaults.
    """

    interface_version = INTERFACE_VERSION
    tables: ClassVar[tuple[str, ...]] = ()
    #: The options given to the constructor or to :meth:`from_options`, as given.
    _given: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "tables" in cls.__dict__:
            setattr(cls, "__init__", _table_init(_merged(cls.tables)))  # noqa: B010

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None, name: str) -> DataSource:
        source = cls()
        source._given = dict(options or {})
        return source

    def claims(self, path: Path) -> Any:
        return False

    def load(self, spec: str, path: Path | None = None, found: Any = None) -> Dataset:
        if path is not None and not found:
            found = self.claims(path)
            if not found:
                what = (type(self).__doc__ or "").strip().split("\n")[0].rstrip(".")
                raise DataError(f"'{spec}' is not what this source reads: {what}.")
        return self.read(spec, path, found, self._given)

    def read(self, spec: str, path: Path | None, found: Any, options: Mapping[str, Any]) -> Dataset:
        """Read the data set with the options as given (the loader checks them)."""
        raise NotImplementedError


def _merged(tables: tuple[str, ...]) -> dict[str, _Opt]:
    out: dict[str, _Opt] = {}
    for label in tables:
        for key, opt in _TABLES[label].items():
            out.setdefault(key, opt)
    return out


def _table_init(table: dict[str, _Opt]) -> Callable[..., None]:
    """A constructor taking the options of ``table`` as keywords, declared in its signature (with
    their types and defaults) and its docstring's ``Args:`` (their help)."""

    def __init__(self: TableSource, **options: Any) -> None:
        unknown = sorted(set(options) - set(table))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no option '{unknown[0]}'; options: {', '.join(table)}"
            )
        for key, opt in table.items():
            setattr(self, key, options.get(key, opt.default))
        # A default given explicitly counts as not given, as a rebuilt configuration gives them all.
        self._given = {k: v for k, v in options.items() if v != table[k].default}

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [
        inspect.Parameter(
            k, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation
        )
        for k, o in table.items()
    ]
    __init__.__signature__ = inspect.Signature([self_param, *params])  # type: ignore[attr-defined]
    __init__.__annotations__ = {k: o.annotation for k, o in table.items()} | {"return": None}
    args = "".join(f"        {k}: {o.help}\n" for k, o in table.items())
    __init__.__doc__ = f"The source's data options.\n\n    Args:\n{args}"
    return __init__
