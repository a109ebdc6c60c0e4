"""Small HTML helpers of the report page: escaping, numbers, durations, tables."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any, TypeGuard

from wae_toolkit.config.checks import is_finite_number, is_number


def finite(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool, not an int too large for a float)."""
    return is_finite_number(value)


def esc(value: Any) -> str:
    """``value`` as HTML text, escaped (quotes included, so it may go in an attribute)."""
    return html.escape(str(value), quote=True)


def value_text(v: Any) -> str:
    """A setting's value as text: strings as they are, anything else as JSON."""
    if isinstance(v, str):
        return v
    try:
        return json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(v)


def number(v: Any, digits: int = 4) -> str:
    """A number as HTML: a short form shown, the exact value in a ``<data value>``."""
    if v is None:
        return '<span class="muted">&ndash;</span>'
    if not is_number(v):
        return esc(v)
    shown = f"{v:.{digits}g}" if isinstance(v, float) else str(v)
    return f'<data value="{esc(json.dumps(v))}">{esc(shown)}</data>'


def duration(seconds: Any) -> str:
    if not finite(seconds) or seconds < 0:
        return "&ndash;"
    s = float(seconds)
    if s < 60:
        return f"{s:.3g} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def html_table(
    head: Sequence[str], rows: Sequence[Sequence[str]], num: Sequence[bool] = (), cls: str = ""
) -> str:
    """An HTML table from cells that are already HTML."""
    numeric = list(num) + [False] * (len(head) - len(num))
    out = [f'<div class="scroll"><table class="{cls}"><thead><tr>']
    out += [f"<th{' class=num' * n}>{h}</th>" for h, n in zip(head, numeric, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def td(html_text: str, numeric: bool = False, extra: str = "") -> str:
    classes = " ".join(c for c in ("num" * numeric, extra) if c)
    return f'<td class="{classes}">{html_text}</td>' if classes else f"<td>{html_text}</td>"
