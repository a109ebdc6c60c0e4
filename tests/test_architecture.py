"""The package's shape (docs/architecture.md): layers whose imports point one way, unique module
names, and no module named like a function the package exports."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import wae_toolkit

PACKAGE = Path(wae_toolkit.__file__).parent

#: Bottom to top. A module may import its own layer and the layers below it, never above,
#: counting imports inside functions too (a lazy import is still an import).
LAYERS = [
    {"errors", "_lazy", "_version", "limits", "memory", "devices", "signals"},
    {"plugins"},
    {"numerics"},
    {"builtins"},
    {"data"},
    {"config"},
    {"assembly"},
    {"runs"},
    {"engine"},
    {"trackers"},
    {"metrics"},
    {"report"},
    {"api"},
    {"export"},
    {"sweep"},
    {"cli", "__main__"},
]


def _room(module: str) -> str:
    """The top-level folder or module of ``wae_toolkit.X.Y``; the package itself for its root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "wae_toolkit"


def _layer(room: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    raise AssertionError(f"wae_toolkit/{room} is in no layer of LAYERS: add it")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "wae_toolkit" or m.startswith("wae_toolkit.")}


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, path in _modules().items():
        here = _room(module)
        if here == "wae_toolkit":
            continue  # the package's root exports names from every layer, lazily
        for target in _imports(path):
            there = _room(target)
            if there == "wae_toolkit":
                upward.append(f"{module} imports the package root ({target})")
            elif _layer(there) > _layer(here):
                upward.append(f"{module} ({here}) imports {target} ({there}), a higher layer")
    assert not upward, "\n".join(sorted(upward))


def test_module_names_are_unique_and_not_exported_function_names() -> None:
    names = Counter(m.rsplit(".", 1)[-1] for m, p in _modules().items() if p.name != "__init__.py")
    assert [n for n, c in names.items() if c > 1] == []
    functions = {n for n in wae_toolkit.__all__ if callable(getattr(wae_toolkit, n))}
    packages = {m.rsplit(".", 1)[-1] for m in _modules()}
    assert functions & packages == set()


def test_every_lazily_exported_name_resolves() -> None:
    """Each package's ``__all__`` names load (the lazy maps point at modules that exist)."""
    import importlib

    broken = []
    for module, path in _modules().items():
        if path.name != "__init__.py":
            continue
        package = importlib.import_module(module)
        for name in getattr(package, "__all__", ()):
            try:
                getattr(package, name)
            except (AttributeError, ImportError) as exc:
                broken.append(f"{module}.{name}: {exc}")
    assert broken == []
