"""Prometheus text exposition (format 0.0.4) for a runtime's counters: small enough to write by hand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["MetricFamily", "render"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MetricFamily:
    """One metric name with its help, type and samples (labels -> value)."""

    def __init__(self, name: str, kind: str, help_text: str):
        self.name, self.kind, self.help = name, kind, help_text
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, value: float, **labels: str) -> MetricFamily:
        self.samples.append((labels, float(value)))
        return self

    def lines(self, extra_labels: Mapping[str, str] | None = None) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            merged = {**(extra_labels or {}), **labels}
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in merged.items())
            number = repr(value) if value != int(value) or abs(value) >= 1e15 else str(int(value))
            out.append(f"{self.name}{{{text}}} {number}" if text else f"{self.name} {number}")
        return out


def render(families: Iterable[MetricFamily], extra_labels: Mapping[str, str] | None = None) -> str:
    lines: list[str] = []
    for family in families:
        lines.extend(family.lines(extra_labels))
    return "\n".join(lines) + "\n"
