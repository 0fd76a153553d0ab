"""A Triton Inference Server model repository from an application's model nodes
(``panoflow export-triton-repo``).

Layout (what Triton's ``--model-repository`` reads; other V2 servers serve the same ``model.onnx``)::

    OUT/<model node>/config.pbtxt
    OUT/<model node>/1/model.onnx

``config.pbtxt`` names the ``onnxruntime_onnx`` platform and the model's inputs and outputs. When every input
and output has a dynamic first axis, ``max_batch_size`` is set and ``dynamic_batching`` lets Triton merge
requests from several devices (``dims`` then leave out the batch axis); otherwise ``max_batch_size: 0`` and
full shapes. A dynamic axis the descriptor compiled to a size gets that size; others stay ``-1``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from panoflow.core.inference import ModelFiles, TensorInfo

__all__ = ["ExportedModel", "export_model", "triton_config"]

_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "uint8": "TYPE_UINT8",
          "int8": "TYPE_INT8", "uint16": "TYPE_UINT16", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
          "int64": "TYPE_INT64", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "bool": "TYPE_BOOL"}


@dataclass(frozen=True)
class ExportedModel:
    """One model written to the repository: its folder and whether Triton may batch it."""

    node_id: str
    folder: Path
    max_batch_size: int


def _tensors(kind: str, tensors: tuple[TensorInfo, ...], batched: bool,
             compiled: Mapping[str, tuple[int | None, ...]]) -> str:
    blocks = []
    for t in tensors:
        shape = list(t.shape)
        fill = compiled.get(t.name)
        if fill and len(fill) == len(shape):
            shape = [d if d is not None else f for d, f in zip(shape, fill)]
        dims = [-1 if d is None else int(d) for d in (shape[1:] if batched else shape)]
        blocks.append(f"  {{\n    name: {json.dumps(t.name)}\n    data_type: {_TYPES[t.dtype]}\n"
                      f"    dims: [ {', '.join(map(str, dims))} ]\n  }}")
    return f"{kind} [\n" + ",\n".join(blocks) + "\n]\n"


def triton_config(name: str, inputs: tuple[TensorInfo, ...], outputs: tuple[TensorInfo, ...], *,
                  max_batch: int = 16, compiled: Mapping[str, tuple[int | None, ...]] | None = None,
                  max_queue_delay_us: int = 2000) -> tuple[str, int]:
    """``config.pbtxt`` text for an ONNX model, and the ``max_batch_size`` it sets (0: no batching)."""
    for t in (*inputs, *outputs):
        if t.dtype not in _TYPES:
            raise ValueError(f"tensor {t.name!r} has type {t.dtype}, which Triton's ONNX backend has no type "
                             "for")
    batched = max_batch > 0 and all(t.shape and t.shape[0] is None for t in (*inputs, *outputs))
    size = max_batch if batched else 0
    text = (f"name: {json.dumps(name)}\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: {size}\n"
            + _tensors("input", inputs, batched, compiled or {})
            + _tensors("output", outputs, batched, compiled or {}))
    if batched:
        text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
    return text, size


def export_model(files: ModelFiles, out: Path, *, max_batch: int = 16) -> ExportedModel:
    """Write ``out/<node>/config.pbtxt`` and ``out/<node>/1/model.onnx`` for one prepared model node."""
    from panoflow.plugins.kserve.backend import onnx_signature

    inputs, outputs = onnx_signature(files.path)
    compiled = {t.name: t.shape for t in files.inputs}
    if len(files.inputs) == len(inputs) == 1:  # the descriptor may name the input differently
        compiled = {inputs[0].name: files.inputs[0].shape}
    text, size = triton_config(files.node_id, inputs, outputs, max_batch=max_batch, compiled=compiled)
    folder = out / files.node_id
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files.path, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(text)
    return ExportedModel(files.node_id, folder, size)
