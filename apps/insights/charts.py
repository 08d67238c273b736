"""Tiny server-rendered SVG charts for the admin: no JavaScript, no external library.

Every label is HTML-escaped; values are numbers we format ourselves. The output is inline SVG,
readable without CSS and accessible through <title> elements (hover tooltips, screen readers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#417690", "#e08a1e", "#5b9c4d", "#a44a8c", "#c0392b", "#7f8c8d")
BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 70
BAR_AREA = 220
VALUE_WIDTH = 90


def bar_chart(
    *, title: str, items: Sequence[tuple[str, float | None]], fmt: Callable[[float], str] = lambda v: f"{v:g}"
) -> SafeString:
    """Horizontal bars, one per (label, value); None is drawn as "no data"."""
    numbers = [v for _, v in items if v is not None]
    top = max(numbers) if numbers else 0
    width = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH
    height = 24 + len(items) * (BAR_HEIGHT + BAR_GAP)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="insights-chart" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(title)}">'
        ),
        f'<text x="0" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(items):
        y = 24 + index * (BAR_HEIGHT + BAR_GAP)
        text_y = y + BAR_HEIGHT - 5
        parts.append(f'<text x="0" y="{text_y}" font-size="11">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{LABEL_WIDTH}" y="{text_y}" font-size="11" fill="#888">no data</text>')
            continue
        bar = BAR_AREA * (value / top) if top > 0 else 0
        color = PALETTE[index % len(PALETTE)]
        shown = escape(fmt(value))
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{bar:.1f}" height="{BAR_HEIGHT}" fill="{color}">'
            f"<title>{escape(label)}: {shown}</title></rect>"
        )
        parts.append(f'<text x="{LABEL_WIDTH + bar + 4:.1f}" y="{text_y}" font-size="11">{shown}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label and value is escaped above


def line_chart(
    *, title: str, x_labels: Sequence[str], series: dict[str, Sequence[float]], width: int = 520, height: int = 180
) -> SafeString:
    """One polyline per series over shared x labels (e.g. days), with a legend."""
    left, right, top_pad, bottom = 40, 10, 24, 36
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    peak = max((v for values in series.values() for v in values), default=0) or 1
    count = max(len(x_labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top_pad + plot_h - plot_h * v / peak

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="insights-chart" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(title)}">'
        ),
        f'<text x="0" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top_pad + 8}" font-size="10" text-anchor="end">{peak:g}</text>',
        f'<text x="{left - 4}" y="{top_pad + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    if x_labels:
        parts.append(f'<text x="{x(0):.1f}" y="{height - 20}" font-size="10">{escape(x_labels[0])}</text>')
        if len(x_labels) > 1:
            parts.append(
                f'<text x="{x(len(x_labels) - 1):.1f}" y="{height - 20}" font-size="10" '
                f'text-anchor="end">{escape(x_labels[-1])}</text>'
            )
    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        legend_x = left + index * 90
        parts.append(f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 3}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label and value is escaped above
