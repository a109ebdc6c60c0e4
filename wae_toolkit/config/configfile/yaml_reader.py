"""YAML configuration files, read safely: aliases counted before they are expanded; text keys."""

from __future__ import annotations

from typing import Any

from wae_toolkit.config.configfile.file_limits import (
    _TEXT_KEY_TAGS,
    MAX_DEPTH,
    MAX_VALUES,
    _a,
    _clip,
    _first_line,
    _huge_integer,
    _is_huge_integer_error,
    _too_deep,
    _too_many,
)
from wae_toolkit.errors import UsageError


def _parse_yaml(name: str, text: str, yaml: Any) -> Any:
    """YAML through a safe loader (never ``yaml.load``: no Python objects from a file), in three
    steps: the parser's events are counted (values with aliases expanded, nesting depth) before
    anything is built, so an alias bomb or a deep nest costs a few kilobytes to refuse; then the
    node graph is composed and its keys checked; then the values are constructed."""
    loader_class = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader  # libyaml when built
    try:
        _check_yaml_events(name, yaml.parse(text, Loader=loader_class), yaml)
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml's own limit (1000), met while reading ahead
            raise _too_deep(name) from None
        raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise _too_deep(name) from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
        if node is None:
            return None
        _check_yaml_keys(name, node, yaml)
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise _too_deep(name) from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
        except (ValueError, TypeError, OverflowError) as exc:  # int(), a date out of range
            if _is_huge_integer_error(exc):
                raise _huge_integer(name) from None
            raise UsageError(f"{name} is not valid YAML: {_first_line(exc)}.") from None
    finally:
        loader.dispose()


def _check_yaml_events(name: str, events: Any, yaml: Any) -> None:
    """Refuse a YAML stream that expands to more than MAX_VALUES values (an alias counts the
    values of the anchored one), nests deeper than MAX_DEPTH, or uses an alias inside the value
    it names; stops at the first event past a limit."""
    total = 0
    sizes: dict[str, int] = {}  # anchor -> values in the anchored value, aliases expanded
    stack: list[tuple[int, str | None]] = []  # open collections: (total before, anchor)
    for event in events:
        if isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append((total, event.anchor))
            total += 1
            if len(stack) > MAX_DEPTH:
                raise _too_deep(name)
        elif isinstance(event, yaml.CollectionEndEvent) and stack:
            before, anchor = stack.pop()
            if anchor is not None:
                sizes[anchor] = total - before
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for _, anchor in stack):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise UsageError(
                    f"{name} uses the alias *{_clip(str(event.anchor), 40)} inside the value it "
                    f"names (line {line}), which would never end; copy the value instead."
                )
            total += sizes.get(event.anchor, 1)
        if total > MAX_VALUES:
            raise _too_many(name)


def _check_yaml_keys(name: str, root: Any, yaml: Any) -> None:
    """Refuse a mapping key that is not text (``1``, ``null``, ``true``, a list), naming it and
    its line; each node is visited once, however often aliases use it."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if not (isinstance(k, yaml.ScalarNode) and k.tag in _TEXT_KEY_TAGS):
                    raise UsageError(
                        f"{name}: the key {_yaml_key(k, yaml)} on line {k.start_mark.line + 1} "
                        "is not text; names of settings and options are text (quote them)."
                    )
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_key(node: Any, yaml: Any) -> str:
    """``1 (an integer)``, ``null``, ``(a list)``: a key node as the message names it."""
    if isinstance(node, yaml.ScalarNode):
        kind = node.tag.rsplit(":", 1)[-1]
        kinds = {"int": "an integer", "float": "a number", "bool": "a boolean", "null": "null"}
        return f"{_clip(node.value, 40) or '~'} ({kinds.get(kind, _a(kind))})"
    return "(a list)" if isinstance(node, yaml.SequenceNode) else "(a table)"
