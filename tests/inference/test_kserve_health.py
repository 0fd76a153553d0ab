"""The ``kserve`` backend's health bookkeeping: one log line per outage and one per recovery whatever the
sequence of results, and a Prometheus exposition that Prometheus's own parser (prometheus_client) reads
back."""

from __future__ import annotations

import structlog
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from panoflow.core.metrics import render
from panoflow.plugins.kserve.health import BUCKETS, RemoteHealth

RESULTS = st.lists(st.one_of(st.floats(0.0, 20.0), st.sampled_from(
    ["UNAVAILABLE", "DEADLINE_EXCEEDED", "INVALID_ARGUMENT", "INTERNAL"])), max_size=60)


@given(RESULTS)
def test_one_log_line_per_outage_and_per_recovery(results: list[float | str]) -> None:
    health = RemoteHealth("model_node", "grpc://gpu:8001/det")
    with structlog.testing.capture_logs() as logs:
        for r in results:
            if isinstance(r, str):
                health.failed(r, "boom")
            else:
                health.succeeded(r)
    up, outages, recoveries, refused_logged = True, 0, 0, 0
    refused: set[str] = set()
    # the model: an outage starts at the first UNAVAILABLE/DEADLINE_EXCEEDED after a success
    for r in results:
        if isinstance(r, str) and r in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            outages += up
            up = False
        elif isinstance(r, str):
            refused_logged += r not in refused
            refused.add(r)
        else:
            recoveries += not up
            up = True
            refused.clear()
    events = [e["event"] for e in logs]
    assert events.count("kserve_server_unavailable") == outages
    assert events.count("kserve_server_back") == recoveries
    assert events.count("kserve_inference_failed") == refused_logged
    assert health.up == up


@given(RESULTS)
def test_metrics_parse_as_prometheus_text(results: list[float | str]) -> None:
    health = RemoteHealth("model_node", "grpc://gpu:8001/det")
    for r in results:
        if isinstance(r, str):
            health.failed(r, "x")
        else:
            health.succeeded(r)
    text = render(health.metric_families("model_node"), {"instance_id": "i-1"})
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = families["panoflow_remote_inference_seconds"]
    assert latency.type == "histogram"
    ok = [r for r in results if not isinstance(r, str)]
    buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets] == [*map(repr, BUCKETS), "+Inf"]
    assert all(s.labels["instance_id"] == "i-1" and s.labels["node"] == "model_node" for s in latency.samples)
    for s in buckets:
        bound = float(s.labels["le"])
        assert s.value == sum(1 for r in ok if r <= bound)
    count = next(s for s in latency.samples if s.name.endswith("_count"))
    assert count.value == len(ok)
    errors = {s.labels["code"]: s.value for s in families["panoflow_remote_inference_errors"].samples}
    assert errors == {c: results.count(c) for c in {r for r in results if isinstance(r, str)}}
    up = families["panoflow_remote_model_up"].samples[0].value
    assert up == (1.0 if health.up else 0.0)
