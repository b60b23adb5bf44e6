"""Inline SVG figures for the HTML report: curves over a band, a layer map, a lineage tree.

Hand-written SVG rather than a plotting library: the figures are a few polylines, rectangles and
labels, so the report needs no dependency, no fonts or scripts from anywhere, and stays small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Plot area of a curve figure in px, and the margin for axis labels.
WIDTH, HEIGHT, MARGIN = 560, 220, 44
# Colours: the pair's curve, the second model's, the unrelated band, an undeclared link.
PAIR, OTHER, BAND, UNDECLARED = "#1f5fa8", "#c2571a", "#d9d9d9", "#b3261e"


@dataclass(frozen=True)
class Curve:
    """A labelled series of (x, y) points."""

    label: str
    points: Sequence[tuple[float, float]]
    colour: str = PAIR


def curves(
    title: str,
    series: Sequence[Curve],
    band: Sequence[tuple[float, float, float]] = (),
    y_label: str = "",
    x_label: str = "layer",
) -> str:
    """Lines over a shaded band of (x, lo, hi): the pair's values against what unrelated pairs give."""
    xs = [x for c in series for x, _ in c.points] + [b[0] for b in band]
    ys = [y for c in series for _, y in c.points] + [v for b in band for v in b[1:]]
    ys = [y for y in ys if math.isfinite(y)]
    if not xs or not ys:
        return _empty(title, "no values to draw")
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float) -> float:
        return MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2 * MARGIN)

    def py(y: float) -> float:
        return HEIGHT - MARGIN + (y - y0) / (y1 - y0) * -(HEIGHT - 2 * MARGIN)

    parts = [_axes(title, x0, x1, y0, y1, x_label, y_label)]
    if band:
        top = " ".join(f"{px(x):.1f},{py(hi):.1f}" for x, _, hi in band)
        bottom = " ".join(f"{px(x):.1f},{py(lo):.1f}" for x, lo, _ in reversed(band))
        parts.append(
            f'<polygon points="{top} {bottom}" fill="{BAND}"><title>5-95 % of unrelated pairs</title></polygon>'
        )
    for i, c in enumerate(series):
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in c.points if math.isfinite(y))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{c.colour}" stroke-width="2"/>')
        for x, y in c.points:
            if math.isfinite(y):
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c.colour}"/>')
        parts.append(_text(MARGIN, HEIGHT + 14 * i, f"— {c.label}", c.colour))
    if band:
        parts.append(
            _text(
                MARGIN, HEIGHT + 14 * len(series), "grey band: 5-95 % of unrelated same-shape pairs", "#555"
            )
        )
    return _svg(WIDTH, HEIGHT + 14 * (len(series) + 1), parts, title)


def layer_map(title: str, a_name: str, b_name: str, matches: Sequence[tuple[int, int, float | None]]) -> str:
    """Two columns of layers, a line per best match (a_layer, b_layer, r); darker = closer."""
    if not matches:
        return _empty(title, "no same-shape layers matched")
    a_layers = max(m[0] for m in matches) + 1
    b_layers = max(m[1] for m in matches) + 1
    rows = max(a_layers, b_layers)
    height = 60 + rows * 22
    ax, bx = 150, WIDTH - 150
    parts = [
        _text(ax, 30, _short(a_name), PAIR, anchor="middle"),
        _text(bx, 30, _short(b_name), OTHER, anchor="middle"),
    ]
    for i in range(a_layers):
        parts.append(_layer_box(ax, 50 + i * 22, f"layer {i}"))
    for j in range(b_layers):
        parts.append(_layer_box(bx, 50 + j * 22, f"layer {j}"))
    for a, b, r in matches:
        shade = 0.25 + 0.75 * max(0.0, min(1.0, r or 0.0))
        label = "" if r is None else f"r = {r:.4f}"
        parts.append(
            f'<line x1="{ax + 40}" y1="{59 + a * 22}" x2="{bx - 40}" y2="{59 + b * 22}" stroke="{PAIR}" '
            f'stroke-opacity="{shade:.2f}" stroke-width="2"><title>{escape(label)}</title></line>'
        )
    return _svg(WIDTH, height, parts, title)


@dataclass(frozen=True)
class TreeEdge:
    """A lineage edge for the family graph: parent -> child with its verdict."""

    parent: str
    child: str
    verdict: str
    declared: bool
    href: str | None = None


def lineage(
    title: str, roots: Sequence[str], edges: Sequence[TreeEdge], second_parents: Sequence[TreeEdge] = ()
) -> str:
    """A family as a DAG drawn left to right from its roots: nodes are models, edges carry the verdict;
    undeclared edges dashed red, declared ones plain grey; a merge's other parents reach it by a dotted
    edge to where it is already drawn."""
    depth = dict.fromkeys(roots, 0)
    order = list(roots)
    for e in edges:  # edges come parents first (families._drawn_links)
        depth[e.child] = depth.get(e.parent, 0) + 1
        order.append(e.child)
    rows = {name: i for i, name in enumerate(n for r in roots for n in _depth_first(r, edges))}
    col_w, row_h = 300, 26
    width = 40 + max(depth.values()) * col_w + 460  # the deepest label runs ~450 px
    height = 30 + len(order) * row_h

    def pos(name: str) -> tuple[float, float]:
        return 20 + depth[name] * col_w, 30 + rows[name] * row_h

    parts = []
    for e in edges:
        (x0, y0), (x1, y1) = pos(e.parent), pos(e.child)
        style = f'stroke="{UNDECLARED}" stroke-dasharray="5,3"' if not e.declared else 'stroke="#888"'
        parts.append(
            f'<path d="M{x0 + 8},{y0 + 4} V{y1} H{x1 - 4}" fill="none" {style} stroke-width="1.5">'
            f"<title>{escape(e.verdict)}{'' if e.declared else ' (undeclared)'}</title></path>"
        )
    for e in second_parents:
        if e.parent in rows and e.child in rows:
            (x0, y0), (x1, y1) = pos(e.parent), pos(e.child)
            parts.append(
                f'<path d="M{x0 + 8},{y0 + 4} L{x1 - 4},{y1 + 4}" fill="none" stroke="#888" '
                f'stroke-dasharray="2,3" stroke-width="1.2"><title>{escape(e.verdict)} (second parent)</title></path>'
            )
    for name in order:
        x, y = pos(name)
        edge = next((e for e in edges if e.child == name), None)
        note = "" if edge is None else f"  ({edge.verdict}{'' if edge.declared else ', UNDECLARED'})"
        colour = UNDECLARED if edge is not None and not edge.declared else "#222"
        label = _text(
            x + 2, y + 8, _short(name, 40) + note, colour, weight="bold" if edge is None else "normal"
        )
        if edge is not None and edge.href:
            label = f'<a href="{escape(edge.href)}">{label}</a>'
        parts.append(f'<circle cx="{x - 4}" cy="{y + 4}" r="4" fill="{colour}"/>{label}')
    return _svg(width, height, parts, title)


def _depth_first(root: str, edges: Sequence[TreeEdge]) -> list[str]:
    out: list[str] = []

    def visit(name: str) -> None:
        out.append(name)
        for e in edges:
            if e.parent == name:
                visit(e.child)

    visit(root)
    return out


def _axes(title: str, x0: float, x1: float, y0: float, y1: float, x_label: str, y_label: str) -> str:
    left, right, top, bottom = MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN
    return (
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#999"/>'
        + _text(left, bottom + 16, f"{x0:g}", "#555")
        + _text(right, bottom + 16, f"{x1:g}", "#555", anchor="end")
        + _text((left + right) / 2, bottom + 30, x_label, "#555", anchor="middle")
        + _text(left - 4, bottom, f"{y0:.3g}", "#555", anchor="end")
        + _text(left - 4, top + 10, f"{y1:.3g}", "#555", anchor="end")
        + _text(4, top - 6, y_label, "#555")
        + _text(left, 16, title, "#222", weight="bold")
    )


def _layer_box(x: float, y: float, label: str) -> str:
    return f'<rect x="{x - 40}" y="{y}" width="80" height="18" rx="3" fill="#eef2f8" stroke="#99a"/>' + _text(
        x, y + 13, label, "#333", anchor="middle"
    )


def _text(x: float, y: float, text: str, colour: str, anchor: str = "start", weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" fill="{colour}" font-size="12" font-family="sans-serif" '
        f'text-anchor="{anchor}" font-weight="{weight}">{escape(text)}</text>'
    )


def _short(name: str, width: int = 34) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _empty(title: str, why: str) -> str:
    return _svg(WIDTH, 60, [_text(10, 20, title, "#222", weight="bold"), _text(10, 44, why, "#555")], title)


def _svg(width: float, height: float, parts: Sequence[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(title)}">'
        + "".join(parts)
        + "</svg>"
    )
