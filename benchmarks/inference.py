"""Inference: one model through a bare ONNX Runtime session and through panoflow's model calls and batcher.

    .venv/bin/python benchmarks/inference.py [--batch 8] [--size 224] [--seconds 0.5] [--rounds 10]

(a) a bare ``onnxruntime.InferenceSession`` at batch 1 and at batch N; (b) ``ModelSet.call`` (what
``node.call`` runs) once per frame from one thread; (c) N threads, as N camera streams would, each calling
once per frame: the batcher combines them into batches of up to N. Figures are frames (items) per second,
medians over alternating rounds in this one process; each ratio is the median of per-round ratios (both sides
measured back to back), so the ratios hold on a noisy machine. The acceptance ratio is (c) / (a at batch N).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from panoflow.core.inference import InferenceSettings, ModelFiles, ModelSet, TensorInfo
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from tests.support.models import conv_model

__all__ = ["bare_rate", "call_rate", "open_model", "streams_rate"]


def open_model(model: bytes, folder: Path, shape: tuple[int, ...], max_batch: int) -> ModelSet:
    path = folder / "bench.onnx"
    path.write_bytes(model)
    files = ModelFiles("model_node", path, hashlib.sha256(model).hexdigest(),
                       inputs=(TensorInfo("data", shape),))
    return ModelSet.open({"model_node": files}, {"onnxruntime": OnnxRuntimeBackend},
                         InferenceSettings(max_batch=max_batch, backend="onnxruntime"))


def _timed(seconds: float, step: Callable[[], int]) -> float:
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        done += step()
    return done / elapsed


def bare_rate(session: ort.InferenceSession, x: np.ndarray, seconds: float) -> float:
    """Items per second of ``session.run`` on the batch ``x``."""
    return _timed(seconds, lambda: (session.run(None, {"data": x}), x.shape[0])[1])


def call_rate(ms: ModelSet, x: np.ndarray, seconds: float) -> float:
    """Items per second of ``ModelSet.call`` on ``x`` from one thread."""
    return _timed(seconds, lambda: (ms.call("model_node", {"data": x}), x.shape[0])[1])


def streams_rate(ms: ModelSet, x: np.ndarray, streams: int, seconds: float) -> float:
    """Items per second of ``streams`` threads each calling ``ModelSet.call`` on its own frame ``x`` in a
    loop."""
    counts = [0] * streams
    start = threading.Barrier(streams + 1)
    stop = threading.Event()

    def stream(i: int) -> None:
        frame = x.copy()
        start.wait()
        while not stop.is_set():
            ms.call("model_node", {"data": frame})
            counts[i] += 1

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8, help="streams, and the bare session's batch (default 8)")
    ap.add_argument("--size", type=int, default=224, help="model input height and width (default 224)")
    ap.add_argument("--seconds", type=float, default=0.5,
                    help="length of one timed measurement (default 0.5)")
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds; medians are reported")
    args = ap.parse_args(argv)
    n, size = args.batch, args.size
    model = conv_model(size=(size, size), channels=32, depth=3, classes=10)
    rng = np.random.default_rng(0)
    x1 = rng.random((1, 3, size, size), dtype=np.float32)
    xn = rng.random((n, 3, size, size), dtype=np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rates: dict[str, list[float]] = {k: [] for k in ("bare1", "bareN", "call", "streams")}
    with tempfile.TemporaryDirectory() as tmp:
        ms = open_model(model, Path(tmp), (1, 3, size, size), n)
        for fn in (lambda: bare_rate(session, xn, 0.3), lambda: streams_rate(ms, x1, n, 0.3)):
            fn()  # warm up both paths
        formed = [0, 0]  # items, batches during (c)
        for _ in range(args.rounds):
            rates["bare1"].append(bare_rate(session, x1, args.seconds))
            rates["call"].append(call_rate(ms, x1, args.seconds))
            rates["bareN"].append(bare_rate(session, xn, args.seconds))
            before = ms.stats()["model_node"]
            rates["streams"].append(streams_rate(ms, x1, n, args.seconds))
            after = ms.stats()["model_node"]
            formed[0] += after["items"] - before["items"]
            formed[1] += after["batches"] - before["batches"]
        ms.close()
    med = {k: statistics.median(v) for k, v in rates.items()}

    def paired(a: str, b: str) -> float:
        """Median of the per-round ratios: each round measures both sides back to back."""
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    rows = [
        ("(a) bare ORT session, batch 1", med["bare1"], "baseline", 1.0),
        (f"(a) bare ORT session, batch {n}", med["bareN"], "(a) batch 1", paired("bareN", "bare1")),
        ("(b) node.call per frame, 1 stream", med["call"], "(a) batch 1", paired("call", "bare1")),
        (f"(c) node.call, {n} streams, batched", med["streams"], f"(a) batch {n}",
         paired("streams", "bareN")),
        (f"(c) node.call, {n} streams, batched", med["streams"], "(a) batch 1", paired("streams", "bare1")),
    ]
    print(f"{'path':<38} {'frames/s':>10}  {'vs':<14} {'ratio':>7}")
    for name, rate, vs, ratio in rows:
        print(f"{name:<38} {rate:>10.1f}  {vs:<14} {ratio:>6.2f}x")
    print(f"(model: conv net 3x{size}x{size}, 3+1 conv layers of 32 channels; {args.rounds} alternating "
          f"rounds of {args.seconds} s per path, medians; onnxruntime {ort.__version__} CPU; mean batch "
          f"formed in (c): {formed[0] / max(1, formed[1]):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
