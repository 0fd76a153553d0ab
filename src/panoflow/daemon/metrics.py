"""The device's ``/metrics``: every instance's own Prometheus text, merged, plus the daemon's metrics.

Written by hand on :mod:`panoflow.core.metrics` rather than with ``prometheus_client``: the instances already
render their metrics as text, so the daemon's work is merging texts (one ``# HELP``/``# TYPE`` per family, as
the exposition format requires, whichever instances report it) and adding a handful of gauges and counters of
its own; a registry and collectors would add a dependency and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from panoflow.core.metrics import MetricFamily, render

__all__ = ["merge_instance_metrics"]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})?\s+(?P<rest>\S.*)$")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Family:
    def __init__(self, name: str):
        self.name = name
        self.help = ""
        self.kind = "untyped"
        self.samples: list[str] = []


def _with_labels(line: str, extra: Mapping[str, str]) -> str | None:
    m = _SAMPLE.match(line)
    if m is None:
        return None
    added = ",".join(f'{k}="{_escape(v)}"' for k, v in extra.items())
    labels = m["labels"]
    if labels and labels != "{}":
        labels = "{" + added + "," + labels[1:] if added else labels
    else:
        labels = "{" + added + "}" if added else ""
    return f"{m['name']}{labels} {m['rest']}"


def merge_instance_metrics(texts: Iterable[tuple[Mapping[str, str], str]],
                           device: Iterable[MetricFamily] = ()) -> str:
    """Merge ``(extra labels, exposition text)`` pairs and the ``device`` families into one exposition."""
    families: dict[str, _Family] = {}

    def family(name: str) -> _Family:
        fam = families.get(name)
        if fam is None:
            fam = families[name] = _Family(name)
        return fam

    for extra, text in texts:
        current: _Family | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    current = family(parts[2])
                    if parts[1] == "HELP":
                        current.help = parts[3] if len(parts) > 3 else ""
                    else:
                        current.kind = parts[3] if len(parts) > 3 else "untyped"
                continue
            sample = _with_labels(line, extra)
            if sample is None:
                continue
            name = sample.split("{", 1)[0].split(" ", 1)[0]
            owner = current if current is not None and name.startswith(current.name) else family(name)
            owner.samples.append(sample)
    lines: list[str] = []
    for fam in families.values():
        if not fam.samples:
            continue
        if fam.help:
            lines.append(f"# HELP {fam.name} {fam.help}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        lines.extend(fam.samples)
    out = "\n".join(lines) + ("\n" if lines else "")
    return out + render(device)
