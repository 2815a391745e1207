"""Server-rendered SVG charts: no JavaScript library, nothing to build, and Korean labels render with the
page's own fonts. Values are escaped by building the markup with ``markupsafe``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

#: Colour-blind-safe palette (Okabe-Ito), then greys.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
    "#666666",
)
ACTION_COLOURS = {"allow": "#009E73", "review": "#E69F00", "block": "#D55E00"}


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 < value:
        step *= 10
    for m in (1, 2, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def line_chart(
    series: Mapping[str, Sequence[float]],
    x_labels: Sequence[str],
    *,
    title: str,
    unit: str = "",
    colours: dict[str, str] | None = None,
    width: int = 640,
    height: int = 220,
) -> Markup:
    """One polyline per series over shared x slots, with a legend; empty data draws an empty frame."""
    per_row = 3 if len(series) > 4 else 4
    rows = (len(series) + per_row - 1) // per_row
    left, right, top, bottom = 48, 12, 26, 28 + 14 * max(1, rows)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max((len(v) for v in series.values()), default=0)
    # four grid steps of a round size: 0, 2.5, 5, 7.5, 10 rather than 0, 12, 25, 38, 50
    peak = 4 * _nice_max(max((max(v) for v in series.values() if len(v)), default=0.0) / 4)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        value = peak * i / 4
        label = f"{value:g}"
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{label}{escape(unit)}</text>'
        )
    if n > 1:
        for j in range(0, n, max(1, n // 6)):
            x = left + plot_w * j / (n - 1)
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" class="axis" text-anchor="middle">{escape(x_labels[j])}</text>'
            )
    for k, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[k % len(PALETTE)])
        if n > 1 and values:
            points = " ".join(
                f"{left + plot_w * j / (n - 1):.1f},{top + plot_h - plot_h * (v / peak):.1f}"
                for j, v in enumerate(values)
            )
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        lx = left + (k % per_row) * (plot_w / per_row)
        ly = top + plot_h + 34 + (k // per_row) * 14
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14:.1f}" y="{ly}" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    bars: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 640, bar_h: int = 22
) -> Markup:
    """Horizontal bars, largest first; labels left, values right."""
    left, right, top = 170, 70, 26
    height = top + max(1, len(bars)) * (bar_h + 6) + 8
    peak = max((v for _, v in bars), default=0.0) or 1.0
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="8" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not bars:
        parts.append(f'<text x="{left}" y="{top + 16}" class="axis">none</text>')
    for i, (label, value) in enumerate(bars):
        y = top + i * (bar_h + 6)
        w = (width - left - right) * value / peak
        parts.append(
            f'<text x="{left - 8}" y="{y + bar_h - 6}" class="axis" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{PALETTE[3]}"/>')
        parts.append(
            f'<text x="{left + w + 6:.1f}" y="{y + bar_h - 6}" class="axis">{value:g}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
