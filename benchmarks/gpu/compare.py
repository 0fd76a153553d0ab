"""GPU inference and preprocessing: one model through every backend path, and panoflow.ops on CuPy vs numpy.

    .venv/bin/python benchmarks/gpu/compare.py [--size 224] [--batches 1,8] [--seconds 1] [--results FILE]

Paths (each through ``ModelSet.call``, the code ``node.call`` runs, host arrays in and out): ONNX Runtime on
the CPU, ONNX Runtime with the CUDA execution provider (needs onnxruntime-gpu), TensorRT FP32 and FP16 (needs
``panoflow[gpu]``). Preprocessing: ``ops.preprocess`` of a 1920x1080 BGR frame to 1x3x224x224, numpy against
CuPy (frame already on the GPU, and with its upload counted). Paths that cannot run here are listed with the
reason. Prints a table and appends it, with a hardware line, to ``--results`` (default benchmarks/RESULTS.md).
Ratios are against ORT-CPU at the same batch and numpy, measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from panoflow import ops
from panoflow.core.inference import InferenceSettings, ModelFiles, ModelSet, TensorInfo
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from panoflow.plugins.tensorrt_backend import TensorRtBackend
from tests.support.models import conv_model

BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "tensorrt": TensorRtBackend}
Row = tuple[str, str, str, float | None, str]  # benchmark, path, batch, rate, note


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Items per second of ``fn`` (which returns how many items it did), after two warm-up calls."""
    fn()
    fn()
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        done += fn()
    return done / elapsed


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        gpu = out.splitlines()[0] if out else gpu
    except (OSError, subprocess.SubprocessError):
        pass
    versions = []
    for mod in ("onnxruntime", "tensorrt", "cupy", "numpy"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001 (not installed, or broken: say so in the line)
            versions.append(f"{mod} -")
    import os

    return f"{cpu} ({os.cpu_count()} threads); GPU: {gpu}; {', '.join(versions)}"


def model_paths(size: int, batches: list[int], seconds: float, folder: Path) -> list[Row]:
    import onnxruntime as ort

    model = conv_model(size=(size, size), channels=32, depth=3, classes=1000)
    path = folder / "bench.onnx"
    path.write_bytes(model)
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    trt_ok, trt_why = TensorRtBackend.available()
    plans: list[tuple[str, dict[str, Any], str, str]] = [
        ("ORT-CPU", {"backend": "onnxruntime", "backend_options": {"onnxruntime": {
            "providers": ["CPUExecutionProvider"]}}}, "FP32", ""),
        ("ORT-CUDA", {"backend": "onnxruntime", "backend_options": {"onnxruntime": {
            "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}}}, "FP32",
         "" if cuda else "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"),
        ("TensorRT FP32", {"backend": "tensorrt"}, "FP32", "" if trt_ok else trt_why),
        ("TensorRT FP16", {"backend": "tensorrt"}, "FP16", "" if trt_ok else trt_why),
    ]
    rows: list[Row] = []
    rng = np.random.default_rng(0)
    for name, settings, precision, why in plans:
        if why:
            rows.append(("model", name, "-", None, why))
            continue
        files = ModelFiles("m", path, hashlib.sha256(model).hexdigest(), "ONNX", precision,
                           (TensorInfo("data", (1, 3, size, size)),), folder)
        ms = ModelSet.open({"m": files}, BACKENDS, InferenceSettings(max_batch=max(batches), **settings))
        try:
            for n in batches:
                x = rng.random((n, 3, size, size), dtype=np.float32)
                def step(ms: ModelSet = ms, x: np.ndarray = x, n: int = n) -> int:
                    ms.call("m", {"data": x})
                    return n

                rows.append(("model", name, str(n), rate(step, seconds), ""))
        finally:
            ms.close()
    return rows


def preprocessing(seconds: float) -> list[Row]:
    frame = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    rows: list[Row] = [("preprocess 1080p->224", "numpy", "1",
                        rate(lambda: (ops.preprocess(frame, (224, 224)), 1)[1], seconds), "")]
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() == 0:
            raise RuntimeError("no GPU")
    except Exception as exc:  # noqa: BLE001 (no CuPy, no driver, no device: the row says why)
        return [*rows, ("preprocess 1080p->224", "CuPy", "1", None, f"CuPy with a GPU is needed ({exc})")]
    on_gpu = cp.asarray(frame)

    def device_only() -> int:
        ops.preprocess(on_gpu, (224, 224))
        cp.cuda.Stream.null.synchronize()
        return 1

    def with_upload() -> int:
        ops.preprocess(cp.asarray(frame), (224, 224))
        cp.cuda.Stream.null.synchronize()
        return 1

    rows.append(("preprocess 1080p->224", "CuPy (frame on GPU)", "1", rate(device_only, seconds), ""))
    rows.append(("preprocess 1080p->224", "CuPy (with upload)", "1", rate(with_upload, seconds), ""))
    return rows


def table(rows: list[Row]) -> list[str]:
    base = {(b, n): r for b, p, n, r, _ in rows if p in ("ORT-CPU", "numpy") and r}
    lines = ["| benchmark | path | batch | per second | vs ORT-CPU / numpy | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    for bench, path, n, r, note in rows:
        ref = base.get((bench, n)) or base.get((bench, "1"))
        ratio = f"{r / ref:.2f}x" if r and ref else "-"
        lines.append(f"| {bench} | {path} | {n} | {f'{r:.1f}' if r else '-'} | {ratio} | {note} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = model_paths(args.size, [int(b) for b in args.batches.split(",")], args.seconds, Path(tmp))
    rows += preprocessing(args.seconds)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    model_line = (f"model: conv net 3x{args.size}x{args.size}, 4 conv layers of 32 channels, through "
                  f"ModelSet.call (host arrays in and out); {args.seconds} s per row")
    lines = [f"## GPU inference and preprocessing ({stamp}, benchmarks/gpu/compare.py)", "",
             f"hardware: {hardware()}", model_line, "", *table(rows), ""]
    print("\n".join(lines))
    with open(args.results, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
