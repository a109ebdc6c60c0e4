"""What fits a terminal: tables that keep their borders at any width, paths printed whole, and
docstrings (reStructuredText) shown as text.

A table is first tried with all its columns; when that would be wider than the console (a rich
table then loses its right border), its first columns stay and the others are joined into one
cell that wraps at word boundaries. Paths are printed on lines of their own that wrap only at
spaces, so a path is never cut in two by the program (a terminal may still wrap a very long
one on screen; copying it gives it whole).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from copy import copy

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.table import Column, Table

__all__ = ["fits", "print_docstring", "print_fitted", "print_paths", "print_words", "rst_markup"]


def fits(console: Console, renderable: RenderableType) -> bool:
    """Whether ``renderable`` rendered at the console's width has no line wider than it; for a
    table, also that no cell needs a word (or a ``no_wrap`` cell) cut to make it so."""
    options = console.options
    if isinstance(renderable, Table) and _least_width(console, renderable) > options.max_width:
        return False
    lines = Segment.split_lines(console.render(renderable, options))
    return all(Segment.get_line_length(line) <= options.max_width for line in lines)


def _least_width(console: Console, table: Table) -> int:
    """The narrowest ``table`` (a box with edges) can be with every word whole: each column as
    wide as its longest word (its longest cell when it does not wrap), plus padding and rules."""
    _, right, _, left = table.padding
    total = len(table.columns) + 1
    for col in table.columns:
        least = col.min_width or 0
        for cell in [col.header, *col.cells]:
            text = console.render_str(cell) if isinstance(cell, str) else cell
            m = Measurement.get(console, console.options, text)
            least = max(least, m.maximum if col.no_wrap else m.minimum)
        total += least + left + right
    return total


def _join(cells: Sequence[str]) -> str:
    return "  ".join(c for c in cells if c)


def print_fitted(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    keep: int,
    joined: str,
    join: Callable[[Sequence[str]], str] = _join,
    title: Sequence[str] = (),
    **table_options: object,
) -> None:
    """Print the rows (rich markup) under ``columns``, as wide as the console allows.

    The layouts tried, in order: every column; the first ``keep`` columns and one column
    ``joined`` holding ``join(the other cells)``; the same with the kept columns folded too.
    The first one whose lines all fit is printed (else the last). ``title`` (words of plain
    text, a path one word) is printed above the table, broken only between words.
    """

    def table(cols: Sequence[Column], cells: Callable[[Sequence[str]], Sequence[str]]) -> Table:
        t = Table(*[copy(c) for c in cols], **table_options)  # type: ignore[arg-type]
        for row in rows:
            t.add_row(*cells(row))
        return t

    def narrow(fold: bool) -> Table:
        kept = [copy(c) for c in columns[:keep]]
        for c in kept:
            c.no_wrap, c.overflow = (False, "fold") if fold else (True, c.overflow)
        return table([*kept, Column(joined)], lambda r: [*r[:keep], join(r[keep:])])

    layouts: list[Callable[[], Table]] = [
        lambda: table(columns, lambda r: r),
        lambda: narrow(False),
        lambda: narrow(True),
    ]
    chosen: Table | None = None
    for make in layouts:
        chosen = make()
        if fits(console, chosen):
            break
    if title:
        print_words(console, title, style="italic")
    console.print(chosen)


def print_words(console: Console, words: Sequence[str], style: str | None = None) -> None:
    """``words`` (plain text) on lines at most as wide as a terminal, broken only between
    words: a word wider than the terminal (a long path) gets a line of its own, whole. On a
    console that is no terminal (a log file), one line."""
    lines: list[str] = []
    for word in words:
        if lines and (len(lines[-1]) + 1 + len(word) <= console.width or not console.is_terminal):
            lines[-1] += " " + word
        else:
            lines.append(word)
    for line in lines:
        console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)


def print_paths(console: Console, label: str, paths: Sequence[object]) -> None:
    """``label PATH, PATH, ...``, broken only between paths (see :func:`print_words`)."""
    if paths:
        names = [str(p) for p in paths]
        print_words(console, [label, *[n + "," for n in names[:-1]], names[-1]])


#: ``literal``, :role:`target` (``~a.b.C`` shows ``C``; ``text <target>`` shows text), and
#: `text`, `text <url>`_ (a default-role text or a link).
_RST = re.compile(
    r"``(?P<lit>.+?)``"
    r"|:[\w.+-]+(?::[\w.+-]+)*:`(?P<role>[^`]+)`"
    r"|`(?P<ref>[^`]+)`_{0,2}"
)
_TARGET = re.compile(r"^(?P<text>.*?)\s*<[^<>]*>$", re.DOTALL)


def _shown(text: str, role: bool) -> str:
    """What a role's or a reference's text shows."""
    labelled = _TARGET.match(text)
    if labelled and labelled.group("text"):
        return labelled.group("text")
    if role and text.startswith("~"):
        return text[1:].rpartition(".")[2]
    return text.lstrip("!~")


def rst_markup(text: str, literal_style: str = "cyan") -> str:
    """Rich markup for a docstring's reStructuredText: ``literals`` in ``literal_style``, roles
    (``:class:`~a.b.Foo``` -> ``Foo``) and references as their text, everything else escaped;
    a paragraph's closing ``::`` (a literal block follows) as ``:``."""
    parts: list[str] = []
    end = 0
    for m in _RST.finditer(text):
        parts.append(escape(text[end : m.start()]))
        if m.group("lit") is not None:
            parts.append(f"[{literal_style}]{escape(m.group('lit'))}[/{literal_style}]")
        elif m.group("role") is not None:
            parts.append(f"[{literal_style}]{escape(_shown(m.group('role'), True))}[/]")
        else:
            parts.append(escape(_shown(m.group("ref"), False)))
        end = m.end()
    parts.append(escape(text[end:]))
    return re.sub(r"(?<=\S)::(?=\s*$)", ":", "".join(parts), flags=re.MULTILINE)


_ITEM = re.compile(r"^([-*+]|\d+[.)])\s")


def print_docstring(console: Console, text: str) -> None:
    """A docstring's paragraphs (and list items) reflowed to the console's width, its reST
    shown as text (:func:`rst_markup`); indented blocks (formulas, code) kept line by line."""
    for block in re.split(r"\n[ \t]*\n", text.strip("\n")):
        lines = block.splitlines()
        if all(line[:1] in (" ", "\t") for line in lines):  # a literal block
            for line in lines:  # wrapped, the wrapped part as far in as the line
                indent = len(line) - len(line.lstrip())
                console.print(Padding(escape(line.strip()), (0, 0, 0, indent)), highlight=False)
        else:
            items: list[list[str]] = []
            for line in lines:
                if not items or _ITEM.match(line):
                    items.append([])
                items[-1].append(line.strip())
            for item in items:
                console.print(rst_markup(" ".join(item)), highlight=False)
        console.print()
