"""Small HTML pieces the report's sections share: shares, coloured shares, rows and tables."""

from __future__ import annotations


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}\u00a0%"  # no break before the sign


def row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if v is None else fmt.format(v)


def both(primary: str, binary: str) -> str:
    """A per-subscriber figure with the binary view under it, in grey."""
    return f'{primary}<br><span class="note">({binary})</span>'


def table(head: list[str], rows: list[list[str]], cls: str = "num") -> str:
    """A table without the columns that are empty in every row (a run without transfers has no
    goodput column), inside a box that scrolls sideways rather than widening the page."""
    keep = [j for j in range(len(head)) if j == 0 or any(r[j] not in ("–", "") for r in rows)]
    body = [row([head[j] for j in keep], "th")] + [row([r[j] for j in keep]) for r in rows]
    return f'<div class="scroll"><table class="{cls}">{"".join(body)}</table></div>'


def shade(v: float | None, good_high: bool = False) -> str:
    """A share as a percentage, coloured: red where it hurts, green where it does not."""
    if v is None:
        return "–"
    bad = v < 0.5 if good_high else v > 0
    return f'<span class="{"bad" if bad else "good"}">{pct(v)}</span>'
