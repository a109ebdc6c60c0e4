"""Lazy re-exports: a package names its public objects without importing their modules."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.homes[name]`` on first use of ``name``."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        raise AttributeError(f"module '{package}' has no attribute {name!r}")

    return __getattr__


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Keeps the import paths of modules that moved working: importing ``old`` gives the module
    ``new`` itself (one module, two names), so plugin packages written for an earlier layout
    (``from wae_toolkit.interfaces import LatentPenalty``) need no change."""

    def __init__(self, moved: dict[str, str]) -> None:
        self.moved = moved

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.moved:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        return importlib.import_module(self.moved[spec.name])

    def exec_module(self, module: Any) -> None:
        """Nothing to run: the module was imported under its own name."""
