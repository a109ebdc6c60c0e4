"""A griffe extension for the API reference: the Sphinx markup of the docstrings, as Markdown.

The docstrings are Google-style with a little reStructuredText in them: roles such as
``:func:`fit```, ``:class:`~wae_toolkit.assembly.model.WAE``` and literal blocks introduced by
``::``.
mkdocstrings renders docstrings as Markdown, where those would show as raw text. Before the
docstrings are parsed this extension turns

* every role into inline code that links to the object when the site documents it (an optional
  cross-reference: unresolved targets stay plain code, so the strict build does not fail on
  objects the reference leaves out), resolving short names against the documented object, its
  parents and its module as Sphinx would;
* a paragraph ending in ``::`` into one ending in ``:`` (the indented block after it already is
  a Markdown code block).

mkdocs.yml loads it with ``extensions: [docs/griffe_sphinx_roles.py]``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>func|meth|class|mod|attr|data|exc|obj|const):`(?P<body>[^`]+)`"
)
_EXPLICIT = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_LITERAL = re.compile(r"(?<=\S)::$|\s+::$", re.M)


def _resolve(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as seen from ``obj`` (itself, its parents, then its module)."""
    if "." in name:
        head = name.split(".", 1)[0]
        scope: Any = obj
        while scope is not None:  # a relative path such as "RunResult.model"
            member = scope.members.get(head) if hasattr(scope, "members") else None
            if member is not None and head != name:
                return _path(member) + name[len(head) :]
            scope = scope.parent
        return name
    scope = obj
    while scope is not None:
        member = scope.members.get(name) if hasattr(scope, "members") else None
        if member is not None:
            return _path(member)
        scope = scope.parent
    return name


def _path(member: Any) -> str:
    if getattr(member, "is_alias", False):
        return str(member.target_path)
    return str(member.path)


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match[str]) -> str:
        body = match["body"].strip()
        explicit = _EXPLICIT.match(body)
        if explicit:
            title, target = explicit["title"], explicit["target"].strip()
        else:
            target = body.lstrip("~").lstrip(".")
            title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        identifier = html.escape(_resolve(obj, target.lstrip("~").lstrip(".")), quote=True)
        return f'<autoref identifier="{identifier}" optional>`{title}`</autoref>'

    return _LITERAL.sub(":", _ROLE.sub(role, text))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and ``::`` in every docstring before it is parsed."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_alias or obj.docstring is None:
            return
        obj.docstring.value = _rewrite(obj, obj.docstring.value)
