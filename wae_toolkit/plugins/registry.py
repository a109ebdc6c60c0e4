"""Plugin discovery through Python entry points.

Every plugin, built-in or third-party, is declared under one of five entry point groups (one per
kind of :data:`ALL_KINDS`)::

    [project.entry-points."wae_toolkit.penalties"]
    mmd-imq = "wae_toolkit.builtins.mmd:IMQMMDPenalty"

Listing (:func:`list_plugins`) reads installed metadata only and never imports a plugin: the
one-line description is read from the class docstring in the module's source text. A plugin is
imported when it is asked for (:func:`get_plugin_class`, :func:`create`), and a plugin that fails to
import fails alone, with an error naming the plugin, its distribution and the cause.

Setting ``WAE_DISABLE_PLUGIN_AUTOLOAD=1`` restricts discovery to wae-toolkit's own plugins.

Classes that are not installed plugins (one defined in a notebook, given to
:func:`wae_toolkit.fit`) are found by the same functions while :func:`in_process_plugins` is
active, under the name ``"module:QualifiedName"``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.machinery
import importlib.metadata as md
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wae_toolkit.errors import PluginLoadError, UnknownPluginError, UsageError, did_you_mean
from wae_toolkit.plugins.declarations import declaration_message, interface_version_supported

__all__ = [
    "KINDS",
    "ALL_KINDS",
    "DATA_KIND",
    "PluginInfo",
    "normalize_kind",
    "list_plugins",
    "plugin_names",
    "get_plugin_info",
    "get_plugin_class",
    "plugin_class",
    "create",
    "interface_class",
    "IN_PROCESS",
    "class_name",
    "in_process_plugins",
    "REINSTALL_HINT",
]

#: The kinds of plugins a model is built from: kind -> (entry point group, interface class as
#: "module:attr").
KINDS: dict[str, tuple[str, str]] = {
    "cost": ("wae_toolkit.costs", "wae_toolkit.plugins.interfaces:Cost"),
    "penalty": ("wae_toolkit.penalties", "wae_toolkit.plugins.interfaces:LatentPenalty"),
    "prior": ("wae_toolkit.priors", "wae_toolkit.plugins.interfaces:Prior"),
    "network": ("wae_toolkit.networks", "wae_toolkit.plugins.interfaces:Network"),
}
#: The fifth kind: data sources (built-in names such as ``digits``, formats of files and folders),
#: which :func:`wae_toolkit.data.load_dataset` resolves through this registry.
DATA_KIND = "data"
#: Every plugin kind: the model's (:data:`KINDS`) and the data sources.
ALL_KINDS: dict[str, tuple[str, str]] = {
    **KINDS,
    DATA_KIND: ("wae_toolkit.data", "wae_toolkit.plugins.interfaces:DataSource"),
}
_PLURALS = {"costs": "cost", "penalties": "penalty", "priors": "prior", "networks": "network"}
_PLURALS.update({k: DATA_KIND for k in ("source", "sources", "data-source", "data-sources")})
BUILTIN_DISTRIBUTION = "wae-toolkit"
AUTOLOAD_ENV = "WAE_DISABLE_PLUGIN_AUTOLOAD"
#: The last sentence of an unknown name's message (what an author who adds an entry point forgets).
REINSTALL_HINT = (
    "Plugins are found through the entry points in installed packages' metadata: after adding "
    "or renaming one, reinstall its package (pip install -e .) so that the metadata is updated."
)
#: The "distribution" of a class given as a Python object rather than installed as a plugin.
IN_PROCESS = "(Python object)"
#: kind -> {"module:QualifiedName": class}, filled only inside :func:`in_process_plugins`.
_IN_PROCESS: dict[str, dict[str, type]] = {kind: {} for kind in ALL_KINDS}


@dataclass(frozen=True)
class PluginInfo:
    """What the installed metadata says about one plugin (no import involved)."""

    kind: str
    name: str
    target: str  # "module:attr"
    distribution: str
    version: str
    description: str = ""
    #: Other distributions that declare the same kind and name (a clash).
    clashes: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        return _norm(self.distribution) == _norm(BUILTIN_DISTRIBUTION)


def _norm(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-").replace(".", "-")


def normalize_kind(kind: str) -> str:
    """Map ``"penalties"``/``"penalty"`` etc. to the singular kind, or raise ``UsageError``."""
    k = kind.strip().lower()
    k = _PLURALS.get(k, k)
    if k not in ALL_KINDS:
        raise UsageError(
            f"Unknown plugin kind '{kind}'.{did_you_mean(k, ALL_KINDS)} "
            f"Kinds: {', '.join(ALL_KINDS)}."
        )
    return k


def _entry_points(group: str, installed: Any = None) -> list[md.EntryPoint]:
    """Installed entry points of ``group``, from ``installed`` (every entry point, read once by
    :func:`list_plugins`: each read scans all installed distributions) or read now."""
    return list((installed if installed is not None else md.entry_points()).select(group=group))


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _dist_of(ep: md.EntryPoint, seen: dict[int, tuple[str, str]]) -> tuple[str, str]:
    """Name and version of ``ep``'s distribution; ``seen`` keeps them by distribution object
    (reading them parses its metadata file)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("unknown", "?")
    if id(dist) not in seen:
        seen[id(dist)] = (dist.metadata["Name"] or "unknown", dist.version or "?")
    return seen[id(dist)]


def _collect(kind: str, installed: Any = None) -> dict[str, list[tuple[md.EntryPoint, str, str]]]:
    group = ALL_KINDS[kind][0]
    found: dict[str, list[tuple[md.EntryPoint, str, str]]] = {}
    seen: dict[int, tuple[str, str]] = {}
    for ep in _entry_points(group, installed):
        dist, version = _dist_of(ep, seen)
        if _autoload_disabled() and _norm(dist) != _norm(BUILTIN_DISTRIBUTION):
            continue
        found.setdefault(ep.name, []).append((ep, dist, version))
    return found


def _pick(kind: str, name: str, candidates: list[tuple[md.EntryPoint, str, str]]) -> PluginInfo:
    """Choose among the declarations of one name: a built-in wins, otherwise it must be unique."""
    builtin = [c for c in candidates if _norm(c[1]) == _norm(BUILTIN_DISTRIBUTION)]
    chosen = builtin[0] if builtin else candidates[0]
    ep, dist, version = chosen
    others = tuple(f"{d} {v}" for e, d, v in candidates if e is not ep)
    return PluginInfo(kind, name, ep.value, dist, version, _describe(ep.value), others)


def list_plugins(kind: str | None = None) -> list[PluginInfo]:
    """All installed plugins (of one ``kind`` if given), sorted by kind then name.

    Reads metadata and source text only; no plugin module is imported.
    """
    kinds = [normalize_kind(kind)] if kind else list(ALL_KINDS)
    installed = md.entry_points()
    out: list[PluginInfo] = []
    for k in kinds:
        for name, candidates in sorted(_collect(k, installed).items()):
            out.append(_pick(k, name, candidates))
    return out


def plugin_names(kind: str) -> list[str]:
    """Sorted names of the installed plugins of ``kind`` (metadata only)."""
    return sorted(_collect(normalize_kind(kind)))


def get_plugin_info(kind: str, name: str) -> PluginInfo:
    """Metadata of one plugin; raises ``UnknownPluginError`` with suggestions if there is none."""
    kind = normalize_kind(kind)
    if name in _IN_PROCESS[kind]:
        cls = _IN_PROCESS[kind][name]
        doc = (cls.__doc__ or "").strip().splitlines()
        return PluginInfo(kind, name, name, IN_PROCESS, "", doc[0].strip() if doc else "")
    found = _collect(kind)
    if name not in found and ":" in name:
        raise UnknownPluginError(
            f"The {kind} '{name}' is a Python class that was given to wae_toolkit.fit(), not an "
            f"installed plugin; from Python, pass it again (wae_toolkit.load(run, {kind}=...)), "
            "or install it as a plugin under an entry point (see docs/plugins.md)."
        )
    if name not in found:
        names = sorted(found)
        raise UnknownPluginError(
            f"Unknown {kind} '{name}'.{did_you_mean(name, names)} "
            f"Available: {', '.join(names) if names else 'none installed'}. {REINSTALL_HINT}"
        )
    return _pick(kind, name, found[name])


def interface_class(kind: str) -> type:
    """The interface class every plugin of ``kind`` subclasses (e.g. ``LatentPenalty``)."""
    module, attr = ALL_KINDS[kind][1].split(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def get_plugin_class(kind: str, name: str) -> type:
    """Import and return the class registered as ``name``; checks that it implements ``kind``.

    A clash between two third-party distributions is an error that names both; a built-in name
    cannot be shadowed by a third party.
    """
    return plugin_class(get_plugin_info(kind, name))


def plugin_class(info: PluginInfo) -> type:
    """Import and return the class of a plugin listed by :func:`list_plugins` (as
    :func:`get_plugin_class` does, without reading the metadata again)."""
    kind, name = info.kind, info.name
    if info.distribution == IN_PROCESS:
        return _checked(_IN_PROCESS[kind][name], kind, name, info)
    if info.clashes and not info.builtin:
        raise PluginLoadError(
            f"The {kind} name '{name}' is declared by several distributions: "
            f"{info.distribution} {info.version}, {', '.join(info.clashes)}; "
            "uninstall all but one of them."
        )
    ep = md.EntryPoint(name=name, value=info.target, group=ALL_KINDS[kind][0])
    try:
        obj = ep.load()
    except Exception as exc:
        raise PluginLoadError(
            f"The {kind} plugin '{name}' from {info.distribution} {info.version} failed to "
            f"import ({info.target}): {type(exc).__name__}: {exc}. Reinstall or upgrade "
            f"'{info.distribution}', or uninstall it to hide the plugin."
        ) from exc
    return _checked(obj, kind, name, info)


def _checked(obj: Any, kind: str, name: str, info: PluginInfo) -> type:
    """``obj`` when it is a complete class implementing ``kind``'s interface (at a version this
    wae-toolkit provides); a :class:`PluginLoadError` naming the plugin otherwise."""
    iface = interface_class(kind)
    if not (isinstance(obj, type) and issubclass(obj, iface)):
        raise PluginLoadError(
            f"The {kind} plugin '{name}' from {info.distribution} points to {info.target}, which "
            f"is not a subclass of {iface.__module__}.{iface.__name__}; a {kind} plugin must be "
            "a class implementing that interface."
        )
    _check_interface_version(obj, kind, name, info)
    if kind == DATA_KIND:
        from wae_toolkit.plugins.interfaces import DATA_SOURCE_KINDS

        if getattr(obj, "kind", None) not in DATA_SOURCE_KINDS:
            raise PluginLoadError(
                f"The data plugin '{name}' from {info.distribution} declares kind "
                f"{getattr(obj, 'kind', None)!r}; a data source's kind is one of "
                f"{', '.join(DATA_SOURCE_KINDS)}."
            )
    what = f"The {kind} plugin '{name}' from {info.distribution} ({info.target})"
    message = declaration_message(obj, kind, what)  # arguments that cannot be options
    if message:
        raise PluginLoadError(message)
    abstract = getattr(obj, "__abstractmethods__", ())
    if abstract:
        missing = ", ".join(sorted(abstract))
        raise PluginLoadError(
            f"The {kind} plugin '{name}' from {info.distribution} does not implement {missing} "
            f"of {iface.__name__}."
        )
    return obj


def _check_interface_version(cls: type, kind: str, name: str, info: PluginInfo) -> None:
    """Refuse a plugin written for an interface version this wae-toolkit does not provide."""
    from wae_toolkit.plugins.interfaces import INTERFACE_VERSION

    declared = str(getattr(cls, "interface_version", INTERFACE_VERSION))
    ours = tuple(int(p) for p in INTERFACE_VERSION.split("."))
    if not interface_version_supported(declared):
        raise PluginLoadError(
            f"The {kind} plugin '{name}' from {info.distribution} {info.version} was written for "
            f"wae-toolkit interface {declared}, but this wae-toolkit provides interface "
            f"{INTERFACE_VERSION} (it loads plugins for {ours[0]}.0 to {INTERFACE_VERSION}). "
            f"Install a version of '{info.distribution}' made for interface {ours[0]}.x, or a "
            "wae-toolkit that provides its interface."
        )


def create(kind: str, name: str, /, **options: Any) -> Any:
    """Instantiate the plugin ``name`` of ``kind`` with keyword ``options``.

    Options whose value is ``None`` are dropped so that the plugin's own defaults apply (as timm's
    ``create_model`` does). String values are converted to the types the constructor declares,
    so CLI text such as ``"2.0"`` works; unknown options and bad values raise
    :class:`~wae_toolkit.errors.PluginOptionError`.
    """
    from wae_toolkit.plugins.options import bind_options

    cls = get_plugin_class(kind, name)
    kwargs = bind_options(cls, {k: v for k, v in options.items() if v is not None}, kind, name)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"Bad options for {normalize_kind(kind)} '{name}': {exc}") from exc


def class_name(cls: type) -> str:
    """The name a class given as a Python object runs under: ``"module:QualifiedName"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _installed_name(kind: str, cls: type) -> str | None:
    """The name ``cls`` is installed under as a ``kind`` plugin (metadata only), if it is."""
    target = class_name(cls)
    for name, candidates in _collect(kind).items():
        if _pick(kind, name, candidates).target == target:
            return name
    return None


@contextlib.contextmanager
def in_process_plugins(classes: dict[str, type]) -> Iterator[dict[str, str]]:
    """Make plugin classes that are not installed (``kind -> class``) available by name.

    Yields ``kind -> name``: the installed plugin's name when the class is one (so the run's
    configuration names it as the command line would), else ``"module:QualifiedName"``, which
    :func:`get_plugin_info`, :func:`get_plugin_class` and :func:`create` find until the block
    ends. Each class is checked against its kind's interface first.

    Raises:
        PluginLoadError: a class that does not implement its kind's interface.
    """
    names: dict[str, str] = {}
    replaced: list[tuple[str, str, type | None]] = []  # what an outer block had, put back after
    try:
        for kind, cls in classes.items():
            kind = normalize_kind(kind)
            name = _installed_name(kind, cls)
            if name is None:
                name = class_name(cls)
                _checked(cls, kind, name, PluginInfo(kind, name, name, IN_PROCESS, ""))
                replaced.append((kind, name, _IN_PROCESS[kind].get(name)))
                _IN_PROCESS[kind][name] = cls
            names[kind] = name
        yield names
    finally:
        for kind, name, previous in reversed(replaced):
            if previous is None:
                _IN_PROCESS[kind].pop(name, None)
            else:
                _IN_PROCESS[kind][name] = previous


# ---------------------------------------------------------------------------------------------
# Descriptions from source text, without importing the plugin.


def _describe(target: str) -> str:
    module, _, attr = target.partition(":")
    return _docstring_line(module.strip(), attr.strip().split(".")[0])


@lru_cache(maxsize=256)
def _docstring_line(module: str, attr: str) -> str:
    try:
        path = _module_source_path(module)
        if path is None:
            return ""
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == attr:
                doc = ast.get_docstring(node) or ""
                return doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    except (OSError, SyntaxError, ValueError, ImportError):
        return ""
    return ""


def _module_source_path(module: str) -> str | None:
    """Find a module's source file without executing it or any parent package."""
    parts = module.split(".")
    spec = importlib.util.find_spec(parts[0])  # top-level lookups do not import
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return spec.origin
