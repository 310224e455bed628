# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An SVG picture of a recorder's timeline (hand-written; no plotting library).

``render_timeline_svg(timeline)``: stacked bars of versions per second, errors in red on top, and a p95
latency line. It reads the plain timeline data, so a timeline saved as JSON can be drawn again.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.report import UNKNOWN_VERSION


_PALETTE = ("#4e79a7", "#59a14f", "#f28e2b", "#76b7b2", "#b07aa1", "#edc948", "#9c755f", "#ff9da7")
_UNKNOWN_COLOUR = "#bab0ac"
_ERROR_COLOUR = "#d62728"
_LATENCY_COLOUR = "#222222"


def _xml(text: Any) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _axis(value: float, ticks: int = 4) -> Tuple[float, float]:
    """A round axis (top, step): step is 1, 2 or 5 x 10^n, about ``ticks`` steps, top >= value."""
    value = max(value, 1e-9)
    raw = value / ticks
    exponent = math.floor(math.log10(raw))
    step = 10.0 ** exponent
    for factor in (1, 2, 5, 10):
        step = factor * 10.0 ** exponent
        if step >= raw - 1e-12:
            break
    top = math.ceil(value / step - 1e-9) * step
    return max(top, step), step


def _label(value: float) -> str:
    return f"{value:.10g}"


def render_timeline_svg(timeline: Dict[str, Any], width: int = 960, height: int = 420) -> str:
    """Stacked bars of versions per second, errors in red on top, and a p95 latency line (right axis)."""
    buckets = timeline.get("seconds") or []
    summary = timeline.get("summary") or {}
    left, right, top, bottom = 64, 72, 58, 64
    plot_w = width - left - right
    plot_h = height - top - bottom
    n = max(1, len(buckets))
    versions: List[str] = []
    for bucket in buckets:
        for version in bucket.get("versions", {}):
            if version not in versions and version != UNKNOWN_VERSION:
                versions.append(version)
    colours = {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(versions)}
    colours[UNKNOWN_VERSION] = _UNKNOWN_COLOUR
    order = versions + [UNKNOWN_VERSION]
    # Errors with a response (bad status) are drawn as errors, not as their version, so the red is honest.
    # 10% headroom so the tallest bar does not touch the frame
    y_max, y_step = _axis(1.1 * max([b.get("requests", 0) for b in buckets] + [1]))
    p95s = [b.get("p95_ms") for b in buckets if b.get("p95_ms") is not None]
    l_max, l_step = _axis(max(p95s + [1.0]))
    bar_w = plot_w / n
    gap = min(2.0, bar_w * 0.15)

    out: List[str] = []
    add = out.append
    add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">')
    add(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    title = f"Traffic during rollout: {timeline.get('url', '')}"
    add(f'<text x="{left}" y="22" font-size="15" font-weight="bold">{_xml(title)}</text>')
    p95_all = (summary.get("latency_ms") or {}).get("p95")
    mix = ", ".join(f"{v} {f * 100:.1f}%" for v, f in (summary.get("version_fractions") or {}).items())
    sub = (f"{summary.get('total', 0)} requests in {summary.get('duration_s', 0):.1f} s, "
           f"{summary.get('errors', 0)} errors ({summary.get('error_rate', 0) * 100:.2f}%), "
           f"p95 {'-' if p95_all is None else f'{p95_all:.1f}'} ms" + (f"; versions {mix}" if mix else ""))
    add(f'<text x="{left}" y="40" fill="#555555">{_xml(sub)}</text>')
    # grid and axes
    for i in range(int(round(y_max / y_step)) + 1):
        y = top + plot_h - i * y_step / y_max * plot_h
        add(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        add(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(i * y_step)}</text>')
    for i in range(int(round(l_max / l_step)) + 1):
        y = top + plot_h - i * l_step / l_max * plot_h
        add(f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}" fill="{_LATENCY_COLOUR}">{_label(i * l_step)}</text>')
    add(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333333"/>')
    add(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333333"/>')
    add(f'<text x="16" y="{top + plot_h / 2:.1f}" transform="rotate(-90 16 {top + plot_h / 2:.1f})" '
        'text-anchor="middle">requests per second</text>')
    rx = width - 14
    add(f'<text x="{rx}" y="{top + plot_h / 2:.1f}" transform="rotate(90 {rx} {top + plot_h / 2:.1f})" '
        'text-anchor="middle">p95 latency (ms)</text>')
    tick_every = max(1, int(math.ceil(n / 12)))
    for i in range(0, n, tick_every):
        x = left + (i + 0.5) * bar_w
        add(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{i}</text>')
    add(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" text-anchor="middle">seconds since start</text>')
    # bars
    drawn_unknown = False
    for i, bucket in enumerate(buckets):
        x = left + i * bar_w + gap / 2
        # a trailing partial second gets a narrower bar, or it would read as a drop in traffic
        span = min(1.0, max(0.0, float(bucket.get("span_s", 1.0))))
        w = max(0.5, bar_w * span - gap)
        y = top + plot_h
        status_errors = bucket.get("error_kinds", {}).get("status", 0)
        answered = dict(bucket.get("versions", {}))
        # Remove bad-status answers from the version stack (they are in the red part); take them from
        # "unknown" first, since error pages rarely carry a version.
        to_remove = status_errors
        for version in [UNKNOWN_VERSION] + versions[::-1]:
            if to_remove <= 0:
                break
            take = min(answered.get(version, 0), to_remove)
            answered[version] = answered.get(version, 0) - take
            to_remove -= take
        segments = [(v, answered.get(v, 0), colours[v]) for v in order]
        drawn_unknown = drawn_unknown or answered.get(UNKNOWN_VERSION, 0) > 0
        segments.append(("errors", bucket.get("errors", 0), _ERROR_COLOUR))
        for label, count, colour in segments:
            if count <= 0:
                continue
            h = count / y_max * plot_h
            y -= h
            add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}">'
                f'<title>{_xml(f"t={i}s {label}: {count}")}</title></rect>')
    # p95 line
    points = []
    for i, bucket in enumerate(buckets):
        value = bucket.get("p95_ms")
        if value is None:
            continue
        span = min(1.0, max(0.0, float(bucket.get("span_s", 1.0))))
        x = left + (i + 0.5 * span) * bar_w
        y = top + plot_h - min(value, l_max) / l_max * plot_h
        points.append(f"{x:.1f},{y:.1f}")
    if len(points) > 1:
        add(f'<polyline points="{" ".join(points)}" fill="none" stroke="{_LATENCY_COLOUR}" stroke-width="2"/>')
    for point in points if len(points) <= 120 else []:
        px, py = point.split(",")
        add(f'<circle cx="{px}" cy="{py}" r="2.5" fill="{_LATENCY_COLOUR}"/>')
    # legend
    lx = left
    ly = height - 14
    legend = [(f"version {v}", colours[v]) for v in versions]
    if drawn_unknown:
        legend.append(("no version", _UNKNOWN_COLOUR))
    legend.append(("errors", _ERROR_COLOUR))
    for label, colour in legend:
        add(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        add(f'<text x="{lx + 16}" y="{ly}">{_xml(label)}</text>')
        lx += 26 + 7 * len(label)
    add(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{_LATENCY_COLOUR}" stroke-width="2"/>')
    add(f'<text x="{lx + 22}" y="{ly}">p95 latency</text>')
    add("</svg>")
    return "\n".join(out) + "\n"
