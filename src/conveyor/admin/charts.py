"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, nothing to vendor.

Colours are CSS classes and the admin's own variables (conveyor/admin.css), so the charts
follow the light and dark themes; every bar and point has a <title>, its tooltip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# The drawing, in SVG user units; it scales to the width of its box.
WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 22
TICKS_X = 6


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values, one per bucket (None: no value), drawn in class `css`."""

    name: str
    css: str
    values: Sequence[float | None]


def plot_width() -> float:
    return WIDTH - LEFT - RIGHT


def plot_height() -> float:
    return HEIGHT - TOP - BOTTOM


def y_of(value: float, top: float) -> float:
    return TOP + plot_height() * (1 - value / top) if top else TOP + plot_height()


def svg(label: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="conveyor-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="none">{}</svg>',
        WIDTH,
        HEIGHT,
        label,
        body,
    )


def axes(
    buckets: Sequence[datetime], top: float, time_format: str, show: Callable[[float], str]
) -> SafeString:
    """Grid lines at 0, half and top of the y axis, and a few time labels under the x axis."""
    parts = []
    for value in (0.0, top / 2, top):
        y = y_of(value, top)
        parts.append(
            format_html(
                '<line class="conveyor-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="conveyor-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                n(y),
                n(y),
                LEFT - 4,
                n(y + 4),
                show(value),
            )
        )
    step = max(len(buckets) // TICKS_X, 1)
    slot = plot_width() / max(len(buckets), 1)
    for index in range(0, len(buckets), step):
        parts.append(
            format_html(
                '<text class="conveyor-axis" x="{}" y="{}">{}</text>',
                n(LEFT + index * slot),
                HEIGHT - 6,
                buckets[index].strftime(time_format),
            )
        )
    return mark_safe("".join(parts))  # every part is format_html's


def nice_top(value: float) -> float:
    """The y axis's top: the maximum rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def n(value: float) -> str:
    """A coordinate as SVG takes it (format_html would make a number a string anyway)."""
    return f"{value:.1f}"


def whole(value: float) -> str:
    return f"{value:g}"


def stacked_bars(
    buckets: Sequence[datetime], series: Sequence[Series], *, label: str, time_format: str
) -> SafeString:
    """One bar per bucket, its series stacked (first at the bottom)."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(buckets))]
    top = nice_top(max(totals, default=0))
    slot = plot_width() / max(len(buckets), 1)
    bars = []
    for index, start in enumerate(buckets):
        base = 0.0
        for one in series:
            value = one.values[index] or 0
            if value:
                bars.append(
                    format_html(
                        '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                        "<title>{}</title></rect>",
                        one.css,
                        n(LEFT + index * slot + slot * 0.1),
                        n(y_of(base + value, top)),
                        n(slot * 0.8),
                        n(y_of(base, top) - y_of(base + value, top)),
                        f"{start.strftime(time_format)}: {whole(value)} {one.name}",
                    )
                )
            base += value
    body = format_html("{}{}", axes(buckets, top, time_format, whole), mark_safe("".join(bars)))
    return svg(label, body)


def lines(
    buckets: Sequence[datetime],
    series: Sequence[Series],
    *,
    label: str,
    time_format: str,
    show: Callable[[float], str],
) -> SafeString:
    """One line per series through the buckets that have a value, a dot on each."""
    top = nice_top(max((v for s in series for v in s.values if v is not None), default=0))
    slot = plot_width() / max(len(buckets), 1)
    drawn = []
    for one in series:
        points = [
            (LEFT + (index + 0.5) * slot, y_of(value, top), buckets[index], value)
            for index, value in enumerate(one.values)
            if value is not None
        ]
        if len(points) > 1:
            drawn.append(
                format_html(
                    '<polyline class="{}" points="{}"/>',
                    one.css,
                    " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points),
                )
            )
        drawn.append(
            format_html_join(
                "",
                '<circle class="{}" cx="{}" cy="{}" r="2.5"><title>{} {}: {}</title></circle>',
                (
                    (one.css, n(x), n(y), start.strftime(time_format), one.name, show(value))
                    for x, y, start, value in points
                ),
            )
        )
    body = format_html("{}{}", axes(buckets, top, time_format, show), mark_safe("".join(drawn)))
    return svg(label, body)


def bar_list(rows: Sequence[tuple[str, float, str]], *, css: str) -> SafeString:
    """Labelled horizontal bars, one per (label, value, note), longest for the largest."""
    top = max((value for _, value, _ in rows), default=0) or 1
    return format_html(
        '<table class="conveyor-bars">{}</table>',
        format_html_join(
            "",
            '<tr><th scope="row">{}</th><td><span class="conveyor-bar {}" '
            'style="width: {}%"></span></td><td>{}</td></tr>',
            ((label, css, n(100 * value / top), note) for label, value, note in rows),
        ),
    )
