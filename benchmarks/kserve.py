"""Remote inference: 8 camera streams batched through the ``kserve`` backend (a KServe V2 server on loopback,
gRPC and HTTP) against the same through the local ``onnxruntime`` backend, in one run.

    .venv/bin/python -m benchmarks.kserve [--streams 8] [--size 112] [--seconds 1] [--rounds 3]

Each path: ``--streams`` threads each call ``ModelSet.call`` once per frame (what ``node.call`` runs), the
batcher combines them. Reported: frames/s and the ratio to local ORT (median of per-round ratios, paths
measured back to back in alternating rounds), and the mean time one call takes; "added latency per call" is
the remote call's minus the local one's, with 8 streams and with 1 (medians over rounds). The server (KServe's
Python ModelServer, from the tests) runs ONNX Runtime with its default threads, as the local backend does, on
the same cores: the ratio prices the protocol, the copies and the server's Python, not a faster machine.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.inference import streams_rate
from panoflow.core.inference import InferenceSettings, ModelFiles, ModelSet, TensorInfo
from panoflow.plugins.kserve import KServeBackend
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from tests.inference.kserve_harness import KServeServer
from tests.support.models import conv_model

__all__ = ["measure"]


def measure(ms: ModelSet, x: np.ndarray, streams: int, seconds: float) -> tuple[float, float]:
    """Frames per second of ``streams`` threads each calling in a loop, and the mean seconds one call takes
    (Little's law on that closed loop: streams / rate)."""
    rate = streams_rate(ms, x, streams, seconds)
    return rate, streams / rate


def raw_rest_ms(port: int, model: str, x: np.ndarray, calls: int = 5) -> float:
    """Median ms of one binary-extension REST inference sent with http.client (no tritonclient): the server's
    own share of an HTTP call."""
    head = json.dumps({"inputs": [{"name": "data", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    try:
        for _ in range(calls):
            t = time.perf_counter()
            conn.request("POST", f"/v2/models/{model}/infer", body=head + x.tobytes(),
                         headers={"Inference-Header-Content-Length": str(len(head))})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"raw REST inference failed: HTTP {answer.status}")
            times.append(time.perf_counter() - t)
    finally:
        conn.close()
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--size", type=int, default=112, help="model input height and width (default 112)")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one timed measurement (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    n, size = args.streams, args.size
    model = conv_model(size=(size, size), channels=32, depth=3, classes=10)
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bench.onnx").write_bytes(model)
        server = KServeServer({"bench": folder / "bench.onnx"}, folder, threads=0)
        server.start()
        try:
            files = ModelFiles("model_node", folder / "bench.onnx", hashlib.sha256(model).hexdigest(),
                               inputs=(TensorInfo("data", (1, 3, size, size)),))
            backends = {"onnxruntime": OnnxRuntimeBackend, "kserve": KServeBackend}
            paths = {"local ORT": "onnxruntime", "kserve gRPC": server.uri("grpc", "bench"),
                     "kserve HTTP": server.uri("http", "bench")}
            sets = {name: ModelSet.open({"model_node": files}, backends,  # type: ignore[dict-item]
                                        InferenceSettings(max_batch=n, node_backends={"model_node": b}))
                    for name, b in paths.items()}
            rates: dict[str, list[float]] = {k: [] for k in paths}
            lat: dict[str, list[float]] = {k: [] for k in paths}  # mean call seconds per round, 8 streams
            lat1: dict[str, list[float]] = {k: [] for k in paths}  # and 1 stream
            formed = {k: [0, 0] for k in paths}
            for ms in sets.values():
                measure(ms, x, n, 0.3)  # warm up
            for _ in range(args.rounds):
                for name, ms in sets.items():
                    before = ms.stats()["model_node"]
                    rate, call = measure(ms, x, n, args.seconds)
                    after = ms.stats()["model_node"]
                    formed[name][0] += after["items"] - before["items"]
                    formed[name][1] += after["batches"] - before["batches"]
                    rates[name].append(rate)
                    lat[name].append(call)
                    lat1[name].append(measure(ms, x, 1, args.seconds / 2)[1])
            for ms in sets.values():
                ms.close()
            raw = raw_rest_ms(server.http_port, "bench", x)
        finally:
            server.stop()
    base = "local ORT"
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{'path':<14} {'frames/s':>9} {'vs local':>9} {'mean batch':>11} {'call ms (8 streams)':>20} "
          f"{'added ms':>9} {'call ms (1 stream)':>19} {'added ms':>9}")
    for name in paths:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates[base]))
        p50, p50_1 = statistics.median(lat[name]) * 1e3, statistics.median(lat1[name]) * 1e3
        added = p50 - statistics.median(lat[base]) * 1e3
        added1 = p50_1 - statistics.median(lat1[base]) * 1e3
        batch = formed[name][0] / max(1, formed[name][1])
        print(f"{name:<14} {med[name]:>9.1f} {ratio:>8.2f}x {batch:>11.2f} {p50:>20.2f} {added:>+9.2f} "
              f"{p50_1:>19.2f} {added1:>+9.2f}")
    print(f"(the server alone: one raw binary REST call with http.client, batch 1: {raw:.1f} ms; the HTTP "
          "rows are bound by KServe's Python REST server, the gRPC rows by the model)")
    print(f"({n} streams calling once per frame, batched up to {n}; model: conv net 3x{size}x{size}, 3+1 "
          f"conv layers of 32 channels; {args.rounds} alternating rounds of {args.seconds} s per path, "
          f"medians; server: KServe ModelServer + onnxruntime {ort.__version__} on the same CPU, loopback)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
