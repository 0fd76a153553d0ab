"""The inference tests' model backends by name (:data:`BACKENDS`) and a model written to disk and described as
the model store would (:func:`model_files`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from panoflow.core.inference import ModelFiles, TensorInfo
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from panoflow.plugins.tensorrt_backend import TensorRtBackend

BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "tensorrt": TensorRtBackend}


def model_files(path: Path, model: bytes, *, node_id: str = "model_node",
                shape: tuple[int, ...] | None = None, precision: str = "FP32",
                input_name: str = "data") -> ModelFiles:
    """Write ``model`` to ``path`` and describe it as the model store would."""
    path.write_bytes(model)
    inputs = (TensorInfo(input_name, shape),) if shape else ()
    digest = hashlib.sha256(model).hexdigest()
    return ModelFiles(node_id, path, digest, "ONNX", precision, inputs, path.parent)
