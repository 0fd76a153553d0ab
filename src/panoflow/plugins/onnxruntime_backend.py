"""The ``onnxruntime`` model backend: ONNX Runtime on the CPU, and on the GPU when onnxruntime-gpu is
installed.

Execution providers: ``CUDAExecutionProvider`` first when this onnxruntime has it (the ``onnxruntime-gpu``
package) and a device is there, then ``CPUExecutionProvider``. ``options``: ``providers`` (a list, overriding
that choice), ``intra_op_num_threads``, ``inter_op_num_threads``, ``graph_optimization_level`` (``all``
default, ``extended``, ``basic``, ``disable``). ONNX Runtime releases the GIL while it runs, so other threads
keep going.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import structlog

from panoflow.core.bases import ModelBackend
from panoflow.core.hookspecs import hookimpl
from panoflow.core.inference import ModelFiles, TensorInfo

__all__ = ["OnnxRuntimeBackend", "ort_dtype"]

log = structlog.get_logger(__name__)

_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(uint16)": "uint16", "tensor(int16)": "int16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


def ort_dtype(type_name: str) -> str:
    """The numpy dtype name for an ONNX Runtime type string (``tensor(float)`` -> ``float32``)."""
    try:
        return _DTYPES[type_name]
    except KeyError:
        raise ValueError(f"tensor type {type_name} is not supported by panoflow") from None


def _dims(shape: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


class OnnxRuntimeBackend(ModelBackend):
    """One ``onnxruntime.InferenceSession`` per model node."""

    name = "onnxruntime"
    priority = 50

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:  # a core dependency, but say so clearly if it is broken
            return False, f"onnxruntime does not import: {exc}"
        return True, ""

    @staticmethod
    def default_providers() -> list[str]:
        import onnxruntime as ort

        have = ort.get_available_providers()
        chosen = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in have else []
        return [*chosen, "CPUExecutionProvider"]

    def __init__(self, files: ModelFiles, options: Mapping[str, Any]):
        import onnxruntime as ort

        self.files = files
        so = ort.SessionOptions()
        so.log_severity_level = 3
        for key in ("intra_op_num_threads", "inter_op_num_threads"):
            if options.get(key) is not None:
                setattr(so, key, int(options[key]))
        level = str(options.get("graph_optimization_level", "all")).lower()
        so.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[level]
        providers = list(options.get("providers") or self.default_providers())
        self.session = ort.InferenceSession(str(files.path), so, providers=providers)
        self.providers = tuple(self.session.get_providers())
        if providers[0] not in self.providers:
            log.warning("onnxruntime_provider_fallback", node_id=files.node_id, wanted=providers[0],
                        using=self.providers[0])
        self.inputs = tuple(TensorInfo(i.name, _dims(i.shape),
                                       ort_dtype(i.type)) for i in self.session.get_inputs())
        self.outputs = tuple(
            TensorInfo(o.name, _dims(o.shape or ()), ort_dtype(o.type)) for o in self.session.get_outputs())
        self.batch_limit: int | None = None
        self._output_names = [o.name for o in self.outputs]
        if files.precision == "FP16" and self.providers[0] == "CPUExecutionProvider":
            log.info("model_precision_ignored", node_id=files.node_id, precision="FP16", backend=self.name,
                     reason="ONNX Runtime runs the model's own types; use the tensorrt backend for FP16")
        log.info("onnxruntime_session", node_id=files.node_id, providers=list(self.providers))

    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        feeds = inputs if all(type(v) is np.ndarray for v in inputs.values()) else {
            # CuPy -> host
            k: v.get() if hasattr(v, "__cuda_array_interface__") else v for k, v in inputs.items()}
        return tuple(self.session.run(self._output_names, feeds))

    def close(self) -> None:
        self.session = None


@hookimpl
def panoflow_model_backends() -> list[type[ModelBackend]]:
    return [OnnxRuntimeBackend]
