"""What the ``kserve`` backend knows about its server: outages (logged once each), request latency and errors
by status code, as Prometheus families for ``/metrics`` and a dict for status output."""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import structlog

from panoflow.core.metrics import MetricFamily

__all__ = ["BUCKETS", "HistogramFamily", "RemoteHealth"]

log = structlog.get_logger("panoflow.plugins.kserve")

#: latency histogram bucket bounds, seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: codes that mean "the server is not there" (an outage), as opposed to a request the server refused
OUTAGE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


class HistogramFamily(MetricFamily):
    """A Prometheus histogram: ``_bucket`` (cumulative, with ``le``), ``_sum`` and ``_count`` samples."""

    def __init__(self, name: str, help_text: str):
        super().__init__(name, "histogram", help_text)

    def add_histogram(self, counts: list[int], total: float, **labels: str) -> HistogramFamily:
        """``counts[i]``: observations in bucket ``i`` of :data:`BUCKETS` (the last one: above them all)."""
        running = 0
        for bound, count in zip((*map(repr, BUCKETS), "+Inf"), counts):
            running += count
            self.samples.append(({**labels, "le": bound, "__suffix__": "_bucket"}, running))
        self.samples.append(({**labels, "__suffix__": "_sum"}, total))
        self.samples.append(({**labels, "__suffix__": "_count"}, running))
        return self

    def lines(self, extra_labels: Mapping[str, str] | None = None) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            own = dict(labels)
            suffix = own.pop("__suffix__", "")
            out += MetricFamily(self.name + suffix, "", "").add(value, **own).lines(extra_labels)[2:]
        return out


class RemoteHealth:
    """Counters and the outage state of one model node's server. Updated from the client's event loop
    thread."""

    def __init__(self, node_id: str, endpoint: str):
        self.node_id, self.endpoint = node_id, endpoint
        self.log = log.bind(node_id=node_id, endpoint=endpoint)
        self._lock = threading.Lock()
        self.counts = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0
        self.errors: Counter[str] = Counter()
        self.down_since: float | None = None
        self.failed_in_outage = 0
        self.last_error = ""
        self._logged: set[str] = set()

    @property
    def up(self) -> bool:
        return self.down_since is None

    def succeeded(self, seconds: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.seconds += seconds
            down_since, self.down_since = self.down_since, None
            failed, self.failed_in_outage = self.failed_in_outage, 0
            self._logged.clear()
        if down_since is not None:
            self.log.info("kserve_server_back", outage_s=round(time.monotonic() - down_since, 3),
                          failed_calls=failed)

    def failed(self, code: str, message: str) -> None:
        """Count a failed request; log the first failure of an outage (or of each other code until a
        success)."""
        with self._lock:
            self.errors[code] += 1
            self.last_error = f"{code}: {message}"
            if code in OUTAGE_CODES:
                first = self.down_since is None
                if first:
                    self.down_since = time.monotonic()
                self.failed_in_outage += 1
            else:
                first = code not in self._logged
                self._logged.add(code)
        if first and code in OUTAGE_CODES:
            self.log.warning("kserve_server_unavailable", code=code, error=message)
        elif first:
            self.log.error("kserve_inference_failed", code=code, error=message)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"endpoint": self.endpoint, "up": self.up, "requests": sum(self.counts),
                    "errors": dict(self.errors), "last_error": self.last_error}

    def metric_families(self, node_id: str) -> list[MetricFamily]:
        labels = {"node": node_id, "endpoint": self.endpoint}
        with self._lock:
            latency = HistogramFamily("panoflow_remote_inference_seconds",
                                      "Round-trip time of successful remote (KServe V2) inference requests")
            latency.add_histogram(list(self.counts), self.seconds, **labels)
            errors = MetricFamily("panoflow_remote_inference_errors_total", "counter",
                                  "Failed remote inference requests by status code")
            for code, count in sorted(self.errors.items()):
                errors.add(count, **labels, code=code)
            up = MetricFamily("panoflow_remote_model_up", "gauge",
                              "1 while the last request to the model's server succeeded")
            up.add(1 if self.up else 0, **labels)
        return [latency, errors, up]
