"""The ``kserve`` backend against a real KServe V2 server (KServe's ModelServer with an ONNX Runtime model, in
a child process on loopback), through the real batcher and model set, over gRPC and HTTP/REST."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import structlog

from panoflow.core.inference import InferenceSettings, InferenceTimeout, ModelFiles, ModelSet, TensorInfo
from panoflow.core.metrics import render
from panoflow.exceptions import ModelError
from panoflow.plugins.kserve import KServeBackend
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from tests.inference.kserve_harness import SHAPE, KServeServer, TlsTerminator, make_tls, own_server

BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "kserve": KServeBackend}
TRANSPORTS = ("grpc", "http")


def _files(path: Path, node_id: str = "model_node") -> ModelFiles:
    """The model package's side: the same ONNX file the server serves, described as the model store would."""
    data = path.read_bytes()
    return ModelFiles(node_id, path, hashlib.sha256(data).hexdigest(), "ONNX", "FP32",
                      (TensorInfo("data", SHAPE),), path.parent)


def _open(server: KServeServer, uri: str, model: str = "conv", **settings: object) -> ModelSet:
    return ModelSet.open({"model_node": _files(server.models[model])}, BACKENDS,
                         InferenceSettings(node_backends={"model_node": uri}, **settings))  # type: ignore[arg-type]


@contextmanager
def _opened(server: KServeServer, uri: str, **settings: object) -> Iterator[ModelSet]:
    models = _open(server, uri, **settings)
    try:
        yield models
    finally:
        models.close()


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE[1:])).astype(np.float32)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_remote_results_equal_local_onnxruntime(kserve_server: KServeServer, transport: str) -> None:
    session = ort.InferenceSession(str(kserve_server.models["conv"]), providers=["CPUExecutionProvider"])
    with _opened(kserve_server, kserve_server.uri(transport)) as models:
        for n in (1, 3):
            x = _inputs(n, seed=n)
            got = models.call("model_node", {"data": x})
            want = session.run(None, {"data": x})
            assert [g.shape for g in got] == [w.shape for w in want]
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
        status = models.health()["model_node"]
    assert status["up"] and status["requests"] == 2 and status["errors"] == {}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_model_that_differs_from_the_package_fails_at_load_naming_both(
        kserve_server: KServeServer, transport: str) -> None:
    # the server's "renamed" model calls its input "image"; the package's model.onnx calls it "data"
    with pytest.raises(ModelError) as err:
        _open(kserve_server, kserve_server.uri(transport, "renamed"), model="conv")
    text = str(err.value)
    assert text.startswith("node model_node: the server's model ")
    assert "/renamed does not match the model package's conv.onnx" in text
    assert (
        "inputs: the server has [image float32 [N,3,24,32]], conv.onnx has [data float32 [N,3,24,32]]" in text
    )
    assert "outputs" not in text  # only what differs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_model_and_unreachable_server_fail_at_load(kserve_server: KServeServer,
                                                           transport: str) -> None:
    with pytest.raises(ModelError, match=r"has no model 'nope'"):
        _open(kserve_server, kserve_server.uri(transport, "nope"))
    closed = KServeServer({}, kserve_server.workdir)  # free ports, nothing listening
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"cannot read the model's metadata from .* within 1 s: UNAVAILABLE"):
        _open(kserve_server, closed.uri(transport, connect_timeout=1))
    # the 1 s connect timeout, not the 60 s request timeout (a deadline that only tells the two apart, so a
    # loaded machine does not fail it)
    assert time.monotonic() - t0 < 30


def test_bad_endpoints_are_refused_with_the_fix(kserve_server: KServeServer) -> None:
    with pytest.raises(ModelError, match=r"needs its server: --model-backend model_node=kserve\+grpc://"):
        _open(kserve_server, "kserve")
    with pytest.raises(ModelError, match=r"unknown endpoint option 'tiemout'"):
        _open(kserve_server, kserve_server.uri("grpc", tiemout=3))
    with pytest.raises(ModelError, match=r"the token_file file /nonexistent/token .* does not exist"):
        _open(kserve_server, kserve_server.uri("http", token_file="/nonexistent/token"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_calls_from_many_streams_are_batched_into_one_request(kserve_server: KServeServer,
                                                              transport: str) -> None:
    session = ort.InferenceSession(str(kserve_server.models["conv"]), providers=["CPUExecutionProvider"])
    streams, rounds = 8, 6
    results: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    barrier = threading.Barrier(streams)
    with _opened(kserve_server, kserve_server.uri(transport), max_wait_ms=20.0) as models:
        def stream(i: int) -> None:
            for r in range(rounds):
                barrier.wait(30)
                results[i, r] = models.call("model_node", {"data": _inputs(1, seed=100 * i + r)})

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = models.stats()["model_node"]
        remote = models.health()["model_node"]
    assert len(results) == streams * rounds
    for (i, r), got in results.items():
        want = session.run(None, {"data": _inputs(1, seed=100 * i + r)})
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
    assert stats["calls"] == streams * rounds
    assert stats["mean_batch"] >= 2.0  # coalesced across streams
    assert remote["requests"] == stats["batches"] < streams * rounds  # one request per batch


def test_call_deadline_is_honoured_while_the_server_hangs(tmp_path: Path) -> None:
    with own_server(tmp_path) as server, _opened(server, server.uri("grpc", timeout=60)) as models:
        x = _inputs(1)
        models.call("model_node", {"data": x})
        server.pause()  # the process stops answering, connections stay open
        try:
            t0 = time.monotonic()
            with pytest.raises(InferenceTimeout, match=r"no result within 0.3 s"):
                models.call("model_node", {"data": x}, time_out=0.3)
            # the call's 0.3 s, not the endpoint's 60 s (the message says which deadline fired; this bound
            # only tells the two apart, so a loaded machine does not fail it)
            assert time.monotonic() - t0 < 30
        finally:
            server.resume()
        np.testing.assert_allclose(models.call("model_node", {"data": x}, time_out=10)[0],
                                   models.call("model_node", {"data": x})[0], rtol=0, atol=0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_outage_fails_calls_logs_once_and_recovers(tmp_path: Path, transport: str) -> None:
    """Calls fail at once while the server is down and succeed again soon after it is back: the channel
    retries its connection every 0.5 s at most (gRPC's own back-off grows to 2 minutes). The bounds below are
    deadlines that tell the designed path from the failure (a call hanging for the 60 s request timeout, a
    channel backing off for minutes), not stopwatches: about 0.1 s each on a quiet machine."""
    x = _inputs(1)
    with own_server(tmp_path) as server, _opened(server, server.uri(transport, timeout=60)) as models, \
            structlog.testing.capture_logs() as logs:
        want = models.call("model_node", {"data": x})
        server.kill()
        failures = 0
        for _ in range(20):  # an app calling every frame: each call fails fast and can be caught
            t0 = time.monotonic()
            with pytest.raises(ModelError, match=r"remote inference at .* failed: UNAVAILABLE"):
                models.call("model_node", {"data": x})
            assert time.monotonic() - t0 < 15  # refused at once, not after the 60 s request timeout
            failures += 1
        server.start(wait=False)
        back = server.wait_ready()
        while True:
            try:
                got = models.call("model_node", {"data": x})
                break
            except ModelError:
                assert time.monotonic() - back < 15, ("results did not resume within 15 s of the server's "
                                                      "return")
                time.sleep(0.02)
        resumed = time.monotonic() - back
        text = render(models.metric_families())
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=0)
    events = [e["event"] for e in logs]
    assert events.count("kserve_server_unavailable") == 1  # one line per outage, no storm
    assert events.count("kserve_server_back") == 1
    assert "model_run_failed" not in events
    back_event = next(e for e in logs if e["event"] == "kserve_server_back")
    assert back_event["failed_calls"] >= failures
    assert resumed < 15
    assert 'panoflow_remote_inference_errors_total{node="model_node",' in text
    assert 'code="UNAVAILABLE"} ' in text
    assert text.split("panoflow_remote_model_up{")[1].split()[1] == "1"
    assert 'panoflow_remote_inference_seconds_bucket{node="model_node"' in text
    count = [line for line in text.splitlines() if line.startswith("panoflow_remote_inference_seconds_count")]
    assert count and count[0].endswith(" 2")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unavailable_is_retried_with_backoff_until_the_server_is_back(tmp_path: Path, transport: str) -> None:
    x = _inputs(1)
    with own_server(tmp_path) as server, _opened(server, server.uri(transport, timeout=60,
                                                                    retries=100)) as models:
        want = models.call("model_node", {"data": x})
        server.kill()
        server.start(wait=False)  # restarting: refused connections for a few seconds
        with structlog.testing.capture_logs() as logs:
            got = models.call("model_node", {"data": x})  # retried until the server answers
        assert server.ready()
        status = models.health()["model_node"]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=0)
    assert not [e for e in logs if e["event"].startswith("kserve_server")]
    assert status["errors"] == {} and status["up"]


def test_tls_with_a_ca_file_and_a_bearer_token(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    token = tmp_path / "token"
    token.write_text("s3cr3t-token-value\n")
    x = _inputs(2)
    with own_server(tmp_path, tls=tls, token_file=token) as server:
        want = ort.InferenceSession(str(server.models["conv"]),
                                    providers=["CPUExecutionProvider"]).run(None, {"data": x})
        with structlog.testing.capture_logs() as logs:
            for uri in (server.uri("https", ca=tls.ca, token_file=token),
                        server.uri("grpc", token_file=token)):  # the token travels as gRPC metadata too
                with _opened(server, uri) as models:
                    got = models.call("model_node", {"data": x})
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
            # without the token the server refuses the request; the app gets an exception it can catch
            with (_opened(server, server.uri("https", ca=tls.ca)) as models,
                  pytest.raises(ModelError, match=r"failed: INVALID_ARGUMENT: .*bearer token")):
                models.call("model_node", {"data": x})
        assert "s3cr3t" not in repr(logs)
        # a server certificate the CA file did not sign is refused at load
        other = make_tls(tmp_path / "other")
        with pytest.raises(ModelError, match=r"cannot read the model's metadata .*CERTIFICATE_VERIFY_FAILED"):
            _open(server, server.uri("https", ca=other.ca, connect_timeout=2))


def test_grpcs_and_https_with_mutual_tls(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    x = _inputs(2)
    with own_server(tmp_path) as server:
        fronts = {"grpcs": TlsTerminator(server.grpc_port, tls, client_ca=tls.ca),
                  "https": TlsTerminator(server.http_port, tls, client_ca=tls.ca)}
        try:
            want = ort.InferenceSession(str(server.models["conv"]),
                                        providers=["CPUExecutionProvider"]).run(None, {"data": x})
            for transport, front in fronts.items():
                base = f"kserve+{transport}://127.0.0.1:{front.port}/conv?ca={tls.ca}"
                with _opened(server, f"{base}&cert={tls.client_cert}&key={tls.client_key}") as models:
                    got = models.call("model_node", {"data": x})
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
                # the front refuses a device without a client certificate: the node fails at load, saying why
                with pytest.raises(
                    ModelError,
                    match=r"cannot read the model's metadata from "
                    rf"{transport}://127.0.0.1:{front.port}/conv within 2 s",
                ):
                    _open(server, f"{base}&connect_timeout=2")
        finally:
            for front in fronts.values():
                front.close()
