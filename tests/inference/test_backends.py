"""Model backend plugins: registration, selection, onnxruntime details, and TensorRT where a GPU is
present."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pytest
import structlog

from panoflow.core.bases import ModelBackend
from panoflow.core.inference import InferenceSettings, ModelSet, choose_backend
from panoflow.core.plugins import build_plugins
from panoflow.exceptions import ModelError
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from panoflow.plugins.tensorrt_backend import TensorRtBackend
from tests.inference.modelfiles import BACKENDS, model_files
from tests.support.models import conv_model

TRT_OK, TRT_WHY = TensorRtBackend.available()
needs_tensorrt = pytest.mark.skipif(not TRT_OK, reason=f"tensorrt backend unavailable here: {TRT_WHY}")


class _Missing(ModelBackend):
    name = "missing"
    priority = 1000

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return False, "needs hardware this machine lacks"

    def run(self, inputs: Any) -> tuple[Any, ...]:
        raise AssertionError("never loaded")


class _Low(ModelBackend):
    name = "low"
    priority: ClassVar[int] = 1

    def run(self, inputs: Any) -> tuple[Any, ...]:
        raise AssertionError("never loaded")


def test_builtin_plugins_provide_both_backends_and_the_native_runner() -> None:
    from panoflow.plugins import BUILTINS

    plugins = build_plugins(BUILTINS, entry_points=False)
    assert {"onnxruntime", "tensorrt"} <= set(plugins.model_backends)
    assert "native" in plugins.code_runners


def test_gpu_modules_import_cleanly_without_their_libraries() -> None:
    """Importing the backend never imports tensorrt or cupy; ``available`` says what is missing."""
    code = ("import sys; import panoflow.plugins.tensorrt_backend as t, panoflow.ops, "
            "panoflow.core.inference; assert 'tensorrt' not in sys.modules and 'cupy' not in sys.modules; "
            "print(t.TensorRtBackend.available())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ok, why = eval(out)
    assert ok == TRT_OK
    if not ok:
        assert "panoflow[gpu]" in why or "GPU" in why


def test_core_imports_no_ml_library() -> None:
    code = ("import sys, panoflow.core.inference, panoflow.core.runtime, panoflow.modelstore; "
            "print(sorted(m for m in ('onnxruntime', 'tensorrt', 'cupy', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_best_available_backend_wins_and_unavailable_ones_say_why() -> None:
    backends = {"missing": _Missing, "low": _Low, "onnxruntime": OnnxRuntimeBackend}
    assert choose_backend("m", backends) is OnnxRuntimeBackend
    with pytest.raises(ModelError, match="backend 'missing' cannot run here: needs hardware this machine "
                                         "lacks"):
        choose_backend("m", backends, "missing")
    with pytest.raises(ModelError, match=r"no model backend named 'nope' is installed \(installed: low, "
                                         r"missing, "):
        choose_backend("m", backends, "nope")
    with pytest.raises(ModelError, match="no model backend can run this model .missing: needs hardware"):
        choose_backend("m", {"missing": _Missing})


def test_selection_is_logged_once_per_model(tmp_path: Path) -> None:
    files = {n: model_files(tmp_path / f"{n}.onnx", conv_model(), node_id=n) for n in ("a", "b")}
    with structlog.testing.capture_logs() as logs:
        ms = ModelSet.open(files, BACKENDS, InferenceSettings(node_backends={"b": "onnxruntime"}))
        for _ in range(3):
            ms.call("a", np.zeros((1, 3, 16, 16), np.float32))
        ms.close()
    loaded = [e for e in logs if e["event"] == "model_loaded"]
    assert [(e["node_id"], e["backend"], e["reason"]) for e in loaded] == [
        ("a", "onnxruntime", "best available"), ("b", "onnxruntime", "explicit")]


def test_onnxruntime_backend_describes_the_model(tmp_path: Path) -> None:
    files = model_files(tmp_path / "m.onnx", conv_model(batch=2))
    backend = OnnxRuntimeBackend(files, {"intra_op_num_threads": 1, "graph_optimization_level": "basic"})
    try:
        assert [(t.name, t.shape, t.dtype) for t in backend.inputs] == [("data", (2, 3, 16, 16), "float32")]
        assert [t.name for t in backend.outputs] == ["logits", "features"]
        assert backend.providers[-1] == "CPUExecutionProvider"
        out = backend.run({"data": np.ones((2, 3, 16, 16), np.float32)})
        assert [o.shape for o in out] == [(2, 5), (2, 8, 8, 8)]
    finally:
        backend.close()


def test_onnxruntime_uses_cuda_when_onnxruntime_gpu_offers_it() -> None:
    providers = OnnxRuntimeBackend.default_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == (
        "CUDAExecutionProvider" in ort.get_available_providers()
    )


# ---------------------------------------------------------------------------------------------- GPU only
@pytest.fixture
def trt_models(tmp_path: Path) -> Iterator[Callable[..., ModelSet]]:
    opened: list[ModelSet] = []

    def make(model: bytes, precision: str = "FP32", **settings: Any) -> ModelSet:
        files = {"m": model_files(tmp_path / "m.onnx", model, node_id="m", precision=precision)}
        ms = ModelSet.open(files, BACKENDS, InferenceSettings(backend="tensorrt", **settings))
        opened.append(ms)
        return ms

    yield make
    for ms in opened:
        ms.close()


@pytest.mark.gpu
@needs_tensorrt
@pytest.mark.parametrize(("precision", "atol"), [("FP32", 1e-3), ("FP16", 3e-2)])
def test_tensorrt_matches_onnxruntime(trt_models: Callable[..., ModelSet], precision: str,
                                      atol: float) -> None:
    model = conv_model(size=(32, 32), depth=2)
    ms = trt_models(model, precision, max_batch=8)
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    got = ms.call("m", {"data": x})
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"data": x})
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)


@pytest.mark.gpu
@needs_tensorrt
def test_tensorrt_engine_is_cached_by_digest_gpu_and_version(tmp_path: Path,
                                                             trt_models: Callable[..., ModelSet]) -> None:
    model = conv_model(size=(32, 32))
    with structlog.testing.capture_logs() as logs:
        trt_models(model).close()
        trt_models(model).close()
    assert [e["event"] for e in logs].count("tensorrt_engine_built") == 1
    assert len(list(tmp_path.glob("tensorrt-*.engine"))) == 1


@pytest.mark.gpu
@needs_tensorrt
def test_tensorrt_takes_cupy_inputs_in_place(trt_models: Callable[..., ModelSet]) -> None:
    cp = importlib.import_module("cupy")
    model = conv_model(size=(32, 32))
    ms = trt_models(model)
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    got = ms.call("m", {"data": cp.asarray(x)})
    np.testing.assert_allclose(got[0], ms.call("m", {"data": x})[0], atol=1e-5)


def _cupy_or_reason() -> tuple[Any, str]:
    try:
        cp = importlib.import_module("cupy")
        return (cp, "") if cp.cuda.runtime.getDeviceCount() else (None, "CuPy found no GPU")
    except Exception as exc:  # noqa: BLE001 (not installed, no driver, no device)
        return None, f"CuPy with a GPU is needed: {type(exc).__name__}: {exc}"


CP, CP_WHY = _cupy_or_reason()


@pytest.mark.gpu
@pytest.mark.skipif(CP is None, reason=CP_WHY)
def test_cupy_inputs_are_batched_and_reach_onnxruntime(open_models: Callable[..., ModelSet]) -> None:
    """GPU-preprocessed frames (CuPy arrays) go through the batcher as they are; a CPU backend copies them
    back."""
    model = conv_model()
    ms = open_models(model)
    x = np.random.default_rng(2).random((3, 3, 16, 16), dtype=np.float32)
    futures = [ms["model_node"].submit({"data": CP.asarray(x[i:i + 1])}) for i in range(3)]
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"data": x})
    for i, future in enumerate(futures):
        got = future.result(30)
        np.testing.assert_allclose(got[0], want[0][i:i + 1], atol=1e-5)
