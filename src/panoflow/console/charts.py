"""Metrics charts for an instance: the Prometheus text devices send, parsed, sampled over time, drawn as SVG.

The control plane keeps only a device's latest metrics text (``ControlPlane.device_metrics``).
:class:`History` remembers the last :data:`KEEP` distinct texts per device (by the time they arrived) while
the console runs, and :func:`instance_series` turns them into the series of one application: frames per
second, dropped frames per second, inference time per batch, and each CloudWatch metric the app put.
:func:`svg_chart` draws a series as an inline SVG line chart (server side, no JavaScript), with a text summary
for screen readers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["KEEP", "History", "Sample", "Series", "instance_series", "parse_exposition", "svg_chart"]

#: samples kept per device
KEEP = 120
_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_DROPS = ("panoflow_stream_dropped_frames_total", "panoflow_source_dropped_frames_total")


@dataclass(frozen=True)
class Sample:
    """One line of a Prometheus exposition."""

    name: str
    labels: dict[str, str]
    value: float


def _labels(text: str) -> dict[str, str] | None:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None or m.end() == pos:
            return None
        out[m[1]] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e[0]], m[2])
        pos = m.end()
    return out


def parse_exposition(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition; comments and lines that do not parse are skipped (a device
    is not trusted to send well-formed text, and a bad line must not hide the rest)."""
    out = []
    for raw in text.split("\n"):  # not splitlines(): label values may hold \x1c-\x1e, \x85, \u2028
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        labels = _labels(m["labels"] or "")
        if labels is None:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        out.append(Sample(m["name"], labels, value))
    return out


class History:
    """The last :data:`KEEP` metrics texts of each device, parsed (thread-safe)."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._devices: dict[str, deque[tuple[dt.datetime, list[Sample]]]] = {}
        self._lock = threading.Lock()

    def add(self, device_id: str, received: dt.datetime, text: str) -> None:
        """Record a device's metrics text received at ``received`` (the same time twice is kept once)."""
        with self._lock:
            ring = self._devices.setdefault(device_id, deque(maxlen=self.keep))
            if ring and ring[-1][0] >= received:
                return
        samples = parse_exposition(text)
        with self._lock:
            ring.append((received, samples))

    def samples(self, device_id: str) -> list[tuple[dt.datetime, list[Sample]]]:
        with self._lock:
            return list(self._devices.get(device_id, ()))


@dataclass(frozen=True)
class Series:
    """A chart: its element id, title, unit and points ``(time, value)``."""

    id: str
    title: str
    unit: str
    points: list[tuple[dt.datetime, float]]


Match = Callable[[dict[str, str]], bool]


def _sum(samples: Iterable[Sample], names: tuple[str, ...], match: Match) -> float | None:
    values = [s.value for s in samples if s.name in names and match(s.labels) and math.isfinite(s.value)]
    return sum(values) if values else None


def _rate(history: list[tuple[dt.datetime, list[Sample]]], names: tuple[str, ...],
          match: Match, per: tuple[str, ...] | None = None,
          scale: float = 1.0) -> list[tuple[dt.datetime, float]]:
    """Per-second increase of counters ``names`` between consecutive samples (or per increase of ``per``)."""
    points = []
    for (t0, s0), (t1, s1) in itertools.pairwise(history):
        a, b = _sum(s0, names, match), _sum(s1, names, match)
        if a is None or b is None or b < a:
            continue  # not there yet, or a counter reset (the instance restarted)
        if per is None:
            span = (t1 - t0).total_seconds()
            if span > 0:
                points.append((t1, (b - a) / span * scale))
            continue
        c, d = _sum(s0, per, match), _sum(s1, per, match)
        if c is not None and d is not None and d > c:
            points.append((t1, (b - a) / (d - c) * scale))
    return points


def instance_series(history: list[tuple[dt.datetime, list[Sample]]], applications: set[str]) -> list[Series]:
    """The charts of the application named one of ``applications`` on its device (``application`` label)."""
    def mine(labels: dict[str, str]) -> bool:
        return labels.get("application") in applications

    fps = [(t, v) for t, s in history if (v := _sum(s, ("panoflow_stream_fps",), mine)) is not None]
    out = [
        Series("chart-fps", "Frames per second", "fps", fps),
        Series("chart-drops", "Dropped frames", "frames/s",
               _rate(history, _DROPS, mine)),
        Series("chart-inference", "Inference time (ms)", "ms",
               _rate(history, ("panoflow_inference_seconds_total",), mine,
                     per=("panoflow_inference_batches_total",), scale=1000.0)),
    ]
    keys: dict[tuple[str, str], None] = {}
    for _t, samples in history:
        for s in samples:
            if s.name == "panoflow_cloudwatch_metric" and mine(s.labels):
                keys[(s.labels.get("namespace", ""), s.labels.get("metric", ""))] = None
    for n, (ns, metric) in enumerate(keys):
        def this(labels: dict[str, str], ns: str = ns, metric: str = metric) -> bool:
            return mine(labels) and labels.get("namespace", "") == ns and labels.get("metric", "") == metric

        points = [(t, v) for t, s in history
                  if (v := _sum(s, ("panoflow_cloudwatch_metric",), this)) is not None]
        out.append(Series(f"chart-app-{n}", f"{metric} ({ns})" if ns else metric, "", points))
    return out


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.3e}"


def svg_chart(series: Series, width: int = 320, height: int = 140) -> Markup:
    """An inline SVG line chart of ``series`` (empty axes with "no data yet" before two points exist)."""
    left, right, top, bottom = 44, 8, 8, 22
    pw, ph = width - left - right, height - top - bottom
    pts = series.points
    last = f"latest {_fmt(pts[-1][1])} {series.unit}".strip() if pts else "no data yet"
    parts = [(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
              f'aria-label="{escape(series.title)}: {escape(last)}">'),
             f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>']
    if pts:
        lo, hi = min(0.0, min(v for _t, v in pts)), max(v for _t, v in pts)
        hi = hi if hi > lo else lo + 1.0
        t0, t1 = pts[0][0], pts[-1][0]
        span = max((t1 - t0).total_seconds(), 1e-9)

        def xy(t: dt.datetime, v: float) -> str:
            x = left + (pw * (t - t0).total_seconds() / span if len(pts) > 1 else pw)
            return f"{x:.1f},{top + ph - ph * (v - lo) / (hi - lo):.1f}"

        parts.append(f'<polyline class="series" points="{" ".join(xy(t, v) for t, v in pts)}"/>')
        parts.append(f'<text x="{left - 4}" y="{top + 9}" text-anchor="end">{escape(_fmt(hi))}</text>')
        parts.append(f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{escape(_fmt(lo))}</text>')
        parts.append(f'<text x="{left}" y="{height - 6}">{t0:%H:%M:%S}</text>')
        parts.append(f'<text x="{left + pw}" y="{height - 6}" text-anchor="end">{t1:%H:%M:%S}</text>')
    else:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no data yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
