"""Shared by the converter workers: they run inside a converter environment (never panoflow's), so they import
nothing from panoflow. A worker reads a request JSON (argv[1]), writes the ONNX file, a sample .npz (the
inputs it made and the source framework's outputs on them) and a result JSON (argv[2]): ``{"outputs": [...],
"notes": [...]}`` or ``{"error": "..."}`` for a problem with the model (exit status 3)."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np


class ModelProblem(Exception):
    """Something wrong with the model the user gave (not a bug): reported as one line."""


def sample_input(shape: list[int], dtype: str, seed: int, index: int) -> np.ndarray:
    """The deterministic input both frameworks run on: uniform [0, 1) floats, or 0..255 for uint8/int
    types."""
    rng = np.random.default_rng(seed + index)
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        high = 256 if dt.kind == "u" else 10
        return rng.integers(0, high, size=shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.random(size=shape, dtype=np.float64).astype(dt)


def rename_io(path: str, inputs: dict[str, str], outputs: list[str]) -> None:
    """Rename the ONNX file's graph inputs (old -> new) and outputs (in order, to ``outputs``) in place."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    old_out = [o.name for o in graph.output]
    renames = dict(inputs)
    if len(old_out) == len(outputs):
        renames.update({o: n for o, n in zip(old_out, outputs) if o != n})
    if not renames:
        return
    taken = {n for n in renames.values()}
    for node in graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
        for attr in node.attribute:  # subgraphs (Loop, If) read outer names too
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                for inner in sub.node:
                    inner.input[:] = [renames.get(i, i) for i in inner.input]
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name in renames:
            vi.name = renames[vi.name]
    for init in graph.initializer:
        if init.name in taken and init.name not in renames:
            raise ModelProblem(f"the converted graph already has a tensor named {init.name!r}")
    onnx.save(model, path)


def drop_initializer_inputs(path: str) -> None:
    """Remove weights that are also listed as graph inputs (MXNet's exporter lists them): only data is fed."""
    import onnx

    model = onnx.load(path)
    weights = {i.name for i in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    if len(kept) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(kept)
        onnx.save(model, path)


def main(convert: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Run ``convert(request)`` and write its result JSON; a ModelProblem exits 3 with {"error": ...}."""
    with open(sys.argv[1], encoding="utf-8") as fh:
        request = json.load(fh)
    result_path = sys.argv[2]
    try:
        result = convert(request)
        code = 0
    except ModelProblem as exc:
        result, code = {"error": str(exc)}, 3
    except Exception as exc:  # noqa: BLE001 (a framework refusing the model: its own words, and the trace for the log
        result = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-4000:]}
        code = 3
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    sys.exit(code)
