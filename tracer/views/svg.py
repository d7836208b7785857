"""SVG drawing for the HTML report: boxes of text and arrows between them, no graphviz.
Lessons draw their object graphs with these (scenarios/<lesson>/views.py)."""
from __future__ import annotations

import html
from collections.abc import Sequence


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def svg_box(x: int, y: int, w: int, lines: Sequence[str], css: str, title: str) -> str:
    h = 22 + 18 * len(lines)
    text = "".join(f'<tspan x="{x + 10}" dy="18">{esc(line)}</tspan>' for line in lines)
    return (f'<g class="{css}"><title>{esc(title)}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8"/>'
            f'<text x="{x + 10}" y="{y + 4}">{text}</text></g>')


def arrow(x1: int, y1: int, x2: int, y2: int, label: str) -> str:
    return (f'<path class="edge" d="M{x1},{y1} C{(x1 + x2) // 2},{y1} {(x1 + x2) // 2},{y2} {x2},{y2}" '
            f'marker-end="url(#head)"/><text class="edge-label" x="{(x1 + x2) // 2}" y="{(y1 + y2) // 2 - 6}" '
            f'text-anchor="middle">{esc(label)}</text>')


def svg_graph(width: int, height: int, label: str, parts: Sequence[str]) -> str:
    return (f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">'
            '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
            + "".join(parts) + "</svg>")
