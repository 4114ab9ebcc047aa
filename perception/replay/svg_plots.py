"""Small inline-SVG charts for the replay report (line/step series and histograms), with no plotting dependency.

Each function returns an ``<svg>`` element as text: axes with "nice" ticks (1, 2, 5 x 10^k), a title, axis labels,
and one colour per series with a legend. Missing values (None, NaN) break a line instead of drawing to zero.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 38

Series = tuple[str, Sequence[float], Sequence[float | None]]  # (label, x, y)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``count`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    ticks = [round(math.floor(lo / step) * step, 10)]
    while ticks[-1] < hi - 1e-12 * max(1.0, abs(hi)):
        ticks.append(round(ticks[-1] + step, 10))
    return ticks if len(ticks) > 1 else [ticks[0], round(ticks[0] + step, 10)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


class _Frame:
    """Maps data to pixels inside the plot area and draws the axes."""

    def __init__(self, xs: list[float], ys: list[float], y_zero: bool = True) -> None:
        self.xt = nice_ticks(min(xs, default=0.0), max(xs, default=1.0))
        lo = min([0.0, *ys]) if y_zero else min(ys, default=0.0)
        self.yt = nice_ticks(lo, max(ys, default=1.0))
        self.x0, self.x1, self.y0, self.y1 = self.xt[0], self.xt[-1], self.yt[0], self.yt[-1]

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / ((self.x1 - self.x0) or 1.0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return HEIGHT - BOTTOM - (y - self.y0) / ((self.y1 - self.y0) or 1.0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, title: str, xlabel: str, ylabel: str) -> list[str]:
        out = [f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>']
        for t in self.yt:
            y = self.py(t)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        for t in self.xt:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{HEIGHT - BOTTOM}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM + 4}" '
                       'stroke="#444"/>')
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_fmt(t)}</text>')
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
                   'fill="none" stroke="#444"/>')
        out.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" text-anchor="middle">{html.escape(xlabel)}</text>')
        out.append(f'<text transform="translate(12,{HEIGHT / 2}) rotate(-90)" text-anchor="middle">'
                   f'{html.escape(ylabel)}</text>')
        return out


def _svg(parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>")


def _legend(labels: list[str]) -> list[str]:
    """Legend entries in rows of three at the top left of the plot area."""
    out = []
    for i, label in enumerate(labels):
        x, y = LEFT + 6 + (i % 3) * 160, TOP + 10 + (i // 3) * 12
        out.append(f'<rect x="{x}" y="{y - 5}" width="12" height="4" fill="{COLOURS[i % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{html.escape(label[:26])}</text>')
    return out


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def line_chart(series: list[Series], title: str, xlabel: str, ylabel: str, markers: bool = False) -> str:
    """Lines (and dots with ``markers``) of each series; an empty chart says "no data"."""
    xs = [float(x) for _, sx, sy in series for x, y in zip(sx, sy) if _finite(y)]
    ys = [float(y) for _, _, sy in series for y in sy if _finite(y)]
    if not ys:
        return _svg([f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{html.escape(title)}: no data'
                     '</text>'])
    frame = _Frame(xs, ys)
    parts = frame.axes(title, xlabel, ylabel)
    for i, (_, sx, sy) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for x, y in zip(sx, sy):
            if _finite(y):
                runs[-1].append(f"{frame.px(float(x)):.1f},{frame.py(float(y)):.1f}")
                if markers:
                    parts.append(f'<circle cx="{frame.px(float(x)):.1f}" cy="{frame.py(float(y)):.1f}" r="2" '
                                 f'fill="{colour}"/>')
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(run)}"/>')
    if len(series) > 1 or series[0][0]:
        parts += _legend([label for label, _, _ in series])
    return _svg(parts)


def histogram(samples: list[tuple[str, Sequence[float]]], title: str, xlabel: str, bins: int = 30) -> str:
    """Outlined histograms of each sample set on shared bins (counts on the y axis)."""
    values = [float(v) for _, vs in samples for v in vs if _finite(v)]
    if not values:
        return line_chart([("", [], [])], title, xlabel, "frames")
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1.0
    width = (hi - lo) / bins
    counts = []
    for _, vs in samples:
        c = [0] * bins
        for v in vs:
            if _finite(v):
                c[min(bins - 1, int((float(v) - lo) / width))] += 1
        counts.append(c)
    frame = _Frame([lo, hi], [float(max(max(c) for c in counts))])
    parts = frame.axes(title, xlabel, "frames")
    for i, c in enumerate(counts):
        colour = COLOURS[i % len(COLOURS)]
        for b, n in enumerate(c):
            if n:
                x0, x1 = frame.px(lo + b * width), frame.px(lo + (b + 1) * width)
                parts.append(f'<rect x="{x0:.1f}" y="{frame.py(n):.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                             f'height="{frame.py(0) - frame.py(n):.1f}" fill="{colour}" fill-opacity="0.45" '
                             f'stroke="{colour}"/>')
    if len(samples) > 1 or samples[0][0]:
        parts += _legend([label for label, _ in samples])
    return _svg(parts)
