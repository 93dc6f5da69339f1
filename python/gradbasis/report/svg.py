"""Small self-contained SVG charts for the report: no plotting library, no script, no fonts
fetched; they render in any browser and Markdown viewer offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 28, 46
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    markers: bool = True
    dashed: bool = False


@dataclass
class Chart:
    """A line chart: series, optional horizontal / vertical reference lines, log axes."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    hlines: list[tuple[float, str]] = field(default_factory=list)
    vlines: list[tuple[float, str]] = field(default_factory=list)
    logx: bool = False
    logy: bool = False

    def render(self) -> str:
        xs = [v for s in self.series for v in s.x] + [v for v, _ in self.vlines]
        ys = [v for s in self.series for v in s.y] + [v for v, _ in self.hlines]
        fx = _axis(xs, self.logx)
        fy = _axis(ys, self.logy)
        if fx is None or fy is None:
            return _frame(
                self.title, '<text x="50%" y="50%" text-anchor="middle">no finite data</text>'
            )
        (x0, x1), (y0, y1) = fx, fy
        pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

        def px(v: float) -> float:
            t = (_t(v, self.logx) - x0) / (x1 - x0)
            return LEFT + t * pw

        def py(v: float) -> float:
            t = (_t(v, self.logy) - y0) / (y1 - y0)
            return TOP + (1 - t) * ph

        parts = [
            f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>',
        ]
        for lo, hi, log, horizontal in ((x0, x1, self.logx, True), (y0, y1, self.logy, False)):
            for tick in _ticks(lo, hi, log):
                label = _label(tick, log)
                if horizontal:
                    p = px(10**tick if log else tick)
                    parts.append(
                        f'<line x1="{p:.1f}" y1="{TOP + ph}" x2="{p:.1f}" y2="{TOP + ph + 4}" stroke="#888"/>'
                    )
                    parts.append(
                        f'<text x="{p:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{label}</text>'
                    )
                else:
                    p = py(10**tick if log else tick)
                    parts.append(
                        f'<line x1="{LEFT - 4}" y1="{p:.1f}" x2="{LEFT}" y2="{p:.1f}" stroke="#888"/>'
                    )
                    parts.append(
                        f'<text x="{LEFT - 6}" y="{p + 4:.1f}" text-anchor="end">{label}</text>'
                    )
        for value, label in self.hlines:
            if _finite(value, self.logy):
                p = py(value)
                parts.append(
                    f'<line x1="{LEFT}" y1="{p:.1f}" x2="{LEFT + pw}" y2="{p:.1f}" stroke="#444" stroke-dasharray="5,3"/>'
                )
                parts.append(
                    f'<text x="{LEFT + pw - 4}" y="{p - 4:.1f}" text-anchor="end" fill="#444">{escape(label)}</text>'
                )
        for value, label in self.vlines:
            if _finite(value, self.logx):
                p = px(value)
                parts.append(
                    f'<line x1="{p:.1f}" y1="{TOP}" x2="{p:.1f}" y2="{TOP + ph}" stroke="#444" stroke-dasharray="5,3"/>'
                )
                parts.append(
                    f'<text x="{p + 4:.1f}" y="{TOP + ph - 6}" fill="#444">{escape(label)}</text>'
                )
        for k, s in enumerate(self.series):
            color = COLORS[k % len(COLORS)]
            pts = [
                (px(a), py(b))
                for a, b in zip(s.x, s.y, strict=False)
                if _finite(a, self.logx) and _finite(b, self.logy)
            ]
            if len(pts) > 1:
                path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
                dash = ' stroke-dasharray="4,3"' if s.dashed else ""
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>'
                )
            if s.markers:
                parts += [
                    f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.6" fill="{color}"/>' for a, b in pts
                ]
            parts.append(
                f'<text x="{LEFT + 8}" y="{TOP + 16 + 14 * k}" fill="{color}">{escape(s.label)}</text>'
            )
        parts.append(
            f'<text x="{LEFT + pw / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(self.xlabel)}</text>'
        )
        parts.append(
            f'<text transform="translate(14,{TOP + ph / 2:.0f}) rotate(-90)" text-anchor="middle">{escape(self.ylabel)}</text>'
        )
        return _frame(self.title, "\n".join(parts))


def interval_chart(loss: float, lower: float, value: float, tol: float) -> str:
    """L(theta) against the certified interval [lower, value] of the induced infimum, with the
    tolerance band [L - tol, L]."""
    points = [v for v in (loss, lower, value, loss - tol) if math.isfinite(v)]
    if not points:
        return _frame("L(theta) and the certified interval", "")
    lo, hi = min(points), max(points)
    pad = (hi - lo) * 0.15 or max(abs(hi), 1.0) * 1e-3
    lo, hi = lo - pad, hi + pad
    pw = WIDTH - LEFT - RIGHT

    def px(v: float) -> float:
        return LEFT + (v - lo) / (hi - lo) * pw

    y = 70
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + pw}" y2="{y}" stroke="#888"/>']
    if math.isfinite(loss) and tol > 0:
        parts.append(
            f'<rect x="{px(loss - tol):.1f}" y="{y - 14}" width="{max(px(loss) - px(loss - tol), 1):.1f}" height="28" fill="#2ca02c" opacity="0.25"/>'
        )
    if math.isfinite(lower) and math.isfinite(value):
        parts.append(
            f'<rect x="{px(lower):.1f}" y="{y - 6}" width="{max(px(value) - px(lower), 2):.1f}" height="12" fill="#1f77b4"/>'
        )
    if math.isfinite(loss):
        parts.append(
            f'<line x1="{px(loss):.1f}" y1="{y - 22}" x2="{px(loss):.1f}" y2="{y + 22}" stroke="#d62728" stroke-width="2"/>'
        )
    legend = [
        ("#1f77b4", f"induced infimum in [{lower:.10g}, {value:.10g}]"),
        ("#d62728", f"L(theta) = {loss:.10g}"),
        ("#2ca02c", f"tolerance band [L - tol, L], tol = {tol:.3g}"),
    ]
    for k, (color, text) in enumerate(legend):
        parts.append(f'<text x="{LEFT}" y="{y + 44 + 16 * k}" fill="{color}">{escape(text)}</text>')
    for v in (lo + pad, hi - pad):
        parts.append(f'<text x="{px(v):.1f}" y="{y - 26}" text-anchor="middle">{v:.6g}</text>')
    return _frame("L(theta) against the certified interval", "\n".join(parts), height=170)


def _frame(title: str, body: str, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">\n'
        f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>\n'
        f"{body}\n</svg>\n"
    )


def _finite(v: float, log: bool) -> bool:
    return math.isfinite(v) and (v > 0 if log else True)


def _t(v: float, log: bool) -> float:
    return math.log10(v) if log else v


def _axis(values: Sequence[float], log: bool) -> tuple[float, float] | None:
    ts = [_t(v, log) for v in values if _finite(v, log)]
    if not ts:
        return None
    lo, hi = min(ts), max(ts)
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        pad = 0.5 if log else max(abs(hi) * 1e-3, 1e-12)
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        first, last = math.ceil(lo), math.floor(hi)
        step = max(1, math.ceil((last - first + 1) / 7))
        return [float(e) for e in range(first, last + 1, step)]
    span = hi - lo
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + k * step for k in range(int((hi - start) / step) + 1)]


def _label(tick: float, log: bool) -> str:
    if log:
        return f"1e{int(tick)}"
    return f"{tick:.4g}"
