"""Charts for the report as inline SVG (no script, no library): lines and histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT, PAD = 560, 240, 40
COLOURS = {"fine-tuned": "#2b6cb0", "base model": "#c05621", "training": "#2b6cb0",
           "validation": "#c05621"}  # fmt: skip
#: Series without a colour of their own (a sweep's recipes), by their order.
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#c53030", "#319795", "#555")


def colour(name: str, index: int) -> str:
    return COLOURS.get(name, PALETTE[index % len(PALETTE)])


def histogram(values: Sequence[float], bins: int = 10) -> list[int]:
    """Counts of ``values`` in ``bins`` equal bins over [0, 1] (1.0 in the last)."""
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, max(0, int(value * bins)))] += 1
    return counts


def _axes(x_label: str, y_label: str, y_max: float, x_max: float, y_min: float = 0.0) -> str:
    left, bottom = PAD, HEIGHT - PAD
    plot_h = HEIGHT - 1.5 * PAD
    ticks = "".join(
        f'<text x="{left - 6}" y="{bottom - plot_h * i / 4 + 4:.1f}" '
        f'text-anchor="end">{y_min + (y_max - y_min) * i / 4:.3g}</text>'
        for i in range(5)
    )
    return (
        f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#555"/>'
        f'<line x1="{left}" y1="{PAD / 2}" x2="{left}" y2="{bottom}" stroke="#555"/>{ticks}'
        f'<text x="{WIDTH - 10}" y="{bottom + 28}" text-anchor="end">{escape(x_label)} '
        f"(up to {x_max:.4g})</text>"
        f'<text x="{left}" y="12">{escape(y_label)}</text>'
    )


def _legend(names: Sequence[str]) -> str:
    return "".join(
        f'<rect x="{WIDTH - 150}" y="{14 + 16 * i}" width="10" height="10" '
        f'fill="{colour(name, i)}"/>'
        f'<text x="{WIDTH - 135}" y="{23 + 16 * i}">{escape(name)}</text>'
        for i, name in enumerate(names)
    )


def svg_lines(curves: dict[str, list[tuple[float, float]]], x_label: str, y_label: str) -> str:
    """A line chart of several (x, y) series, inline SVG."""
    points = [point for series in curves.values() for point in series]
    x_max = max((x for x, _ in points), default=1.0) or 1.0
    low, high = min(y for _, y in points), max(y for _, y in points)
    margin = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    y_min, y_max = low - margin, high + margin
    plot_w, plot_h = WIDTH - PAD - 10, HEIGHT - 1.5 * PAD

    def xy(x: float, y: float) -> str:
        height = plot_h * (y - y_min) / (y_max - y_min)
        return f"{PAD + plot_w * x / x_max:.1f},{HEIGHT - PAD - height:.1f}"

    lines = "".join(
        f'<polyline fill="none" stroke="{colour(name, i)}" stroke-width="2" '
        f'points="{" ".join(xy(x, y) for x, y in series)}"/>'
        for i, (name, series) in enumerate(curves.items())
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(y_label)} by {escape(x_label)}">'
        f"{_axes(x_label, y_label, y_max, x_max, y_min)}{lines}{_legend(list(curves))}</svg>"
    )


def svg_histogram(series: Mapping[str, Sequence[float]], x_label: str, bins: int = 10) -> str:
    """Side-by-side bars of each series' histogram over [0, 1], inline SVG."""
    counts = {name: histogram(values, bins) for name, values in series.items()}
    y_max = max((c for bars in counts.values() for c in bars), default=1) or 1
    plot_w, plot_h = WIDTH - PAD - 10, HEIGHT - 1.5 * PAD
    slot = plot_w / bins
    bar_w = slot * 0.8 / max(1, len(counts))
    bars = "".join(
        f'<rect x="{PAD + slot * b + slot * 0.1 + bar_w * s:.1f}" '
        f'y="{HEIGHT - PAD - plot_h * n / y_max:.1f}" width="{bar_w:.1f}" '
        f'height="{plot_h * n / y_max:.1f}" fill="{colour(name, s)}">'
        f"<title>{escape(name)}: {n} in [{b / bins:.1f}, {(b + 1) / bins:.1f})</title></rect>"
        for s, (name, bars_) in enumerate(counts.items())
        for b, n in enumerate(bars_)
    )
    labels = "".join(
        f'<text x="{PAD + slot * b + slot / 2:.1f}" y="{HEIGHT - PAD + 14}" '
        f'text-anchor="middle">{b / bins:.1f}</text>'
        for b in range(bins)
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="distribution of {escape(x_label)}">'
        f"{_axes(x_label, 'samples', y_max, 1.0)}{bars}{labels}{_legend(list(counts))}</svg>"
    )
