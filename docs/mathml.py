"""MkDocs hook: every formula of the site becomes MathML when the site is built.

pymdownx.arithmatex (generic mode) keeps the LaTeX of ``$...$``, ``$$...$$``, ``\\(...\\)`` and
``\\[...\\]`` away from Markdown and writes it as ``<span class="arithmatex">\\(...\\)</span>``
(inline) or ``<div class="arithmatex">\\[...\\]</div>`` (display). This hook replaces each one by
the MathML that latex2mathml writes for it, which browsers render natively: the pages need no
script and no font from the network. A formula that latex2mathml cannot convert fails the build
with the page and the formula.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert
from mkdocs.exceptions import PluginError

_FORMULA = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*'
    r"(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<display>.*?)\\\])"
    r"\s*</(?P=tag)>",
    re.DOTALL,
)
_LIMITS = re.compile(r"\\(inf|sup|min|max|lim)(?=\s*_)")
_UNCONVERTED = re.compile(r"\\[A-Za-z]+")
# What latex2mathml writes that MathML Core (what Chromium renders) reads otherwise.
_FIXES = (
    # \sim is a relation, U+223C; latex2mathml writes an ASCII tilde as an identifier.
    ("<mi>&#x0007E;</mi>", "<mo>&#x0223C;</mo>"),
    # \langle, \rangle are fences.
    ("<mi>&#x027E8;</mi>", "<mo>&#x027E8;</mo>"),
    ("<mi>&#x027E9;</mi>", "<mo>&#x027E9;</mo>"),
    # \! (a negative thin space): MathML Core has no negative space; drop it.
    ('<mspace width="negativethinmathspace" />', ""),
)


def to_mathml(latex: str, display: bool) -> str:
    """The MathML of one formula; ``ValueError`` names a command latex2mathml does not know."""
    if display:
        # Limits go under inf, sup, min, max in a display formula, as in TeX.
        latex = _LIMITS.sub(r"\\\1\\limits", latex)
    mathml = convert(latex, display="block" if display else "inline")
    for old, new in _FIXES:
        mathml = mathml.replace(old, new)
    unknown = _UNCONVERTED.findall(html.unescape(re.sub(r"<[^>]+>", "", mathml)))
    if unknown:
        raise ValueError(f"latex2mathml does not know {', '.join(sorted(set(unknown)))}")
    return mathml


def on_page_content(html_text: str, page: Any, **_: Any) -> str:
    """Replace each formula that arithmatex wrapped on ``page`` by its MathML."""

    def replace(match: re.Match[str]) -> str:
        display = match["display"] is not None
        latex = html.unescape(match["display"] if display else match["inline"]).strip()
        try:
            return to_mathml(latex, display)
        except Exception as exc:  # latex2mathml raises several kinds on bad input
            raise PluginError(
                f"{page.file.src_uri}: the formula {latex!r} cannot be converted to MathML: {exc}"
            ) from exc

    return _FORMULA.sub(replace, html_text)
