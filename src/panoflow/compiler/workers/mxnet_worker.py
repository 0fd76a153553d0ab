"""MXNET converter worker (runs in the MXNet converter environment): a symbol JSON + params checkpoint to ONNX
with ``mx.onnx.export_model``, and MXNet's own outputs on the sample input. See ``_common`` for the
protocol."""

# mypy: disable-error-code="import-not-found,import-untyped,arg-type"
from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from _common import ModelProblem, drop_initializer_inputs, main, rename_io, sample_input


def _unsupported(symbol_file: str) -> list[str]:
    """The operators of the symbol that MXNet's ONNX exporter has no converter for (it writes the newest opset
    its onnx package knows, with each operator's newest converter)."""
    from mxnet.onnx.mx2onnx import _export_onnx

    registry = _export_onnx.MXNetGraph.registry_
    known: set[str] = set()
    for version in sorted(registry):
        known |= set(registry[version])
    with open(symbol_file, encoding="utf-8") as fh:
        nodes = json.load(fh).get("nodes", [])
    ops = sorted({n["op"] for n in nodes if n.get("op") not in ("null", None)})
    return [op for op in ops if op not in known]


def convert(req: dict[str, Any]) -> dict[str, Any]:
    import mxnet as mx

    symbol_file, params_file = req["files"]["symbol"], req["files"]["params"]
    sym = mx.sym.load(symbol_file)
    params = mx.nd.load(params_file)
    arg_params = {k[4:]: v for k, v in params.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in params.items() if k.startswith("aux:")}
    if not arg_params and not aux_params:  # a Gluon save_parameters file: plain names
        arg_params = dict(params)
    data_names = [n for n in sym.list_inputs() if n not in arg_params and n not in aux_params]
    wanted = [i["name"] for i in req["inputs"]]
    missing = [n for n in wanted if n not in data_names]
    if missing:
        raise ModelProblem(f"the model has no input named {', '.join(map(repr, missing))}; its inputs are "
                           f"{', '.join(map(repr, data_names)) or 'none'} (set the descriptor's "
                           "inputs[].name)")
    unfed = [n for n in data_names if n not in wanted]
    if unfed:
        raise ModelProblem(f"the model's input(s) {', '.join(map(repr, unfed))} are neither in the params "
                           "file nor in the descriptor's inputs (the params file may belong to another "
                           "model)")
    bad = _unsupported(symbol_file)
    if bad:
        raise ModelProblem(f"MXNet's ONNX exporter has no converter for operator(s) {', '.join(bad)}")
    dtypes = [i.get("type") or "float32" for i in req["inputs"]]
    arrays = {n: sample_input(i["shape"], t, req["seed"], k)
              for k, (n, i, t) in enumerate(zip(wanted, req["inputs"], dtypes))}
    try:
        block = mx.gluon.SymbolBlock.imports(symbol_file, wanted, params_file)
    except (AssertionError, mx.base.MXNetError) as exc:
        raise ModelProblem(f"MXNet cannot load {os.path.basename(params_file)} for this symbol: "
                           f"{str(exc).strip().splitlines()[0]}") from None
    outs = block(*[mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in wanted])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    out_names = [n.removesuffix("_output") for n in sym.list_outputs()]
    dynamic = bool(req["dynamic_batch"])
    # The exporter writes the newest opset its onnx package knows, but its converters stop at opset 13
    # (ReduceMax with an ``axes`` attribute is invalid from opset 18): pin the opset it writes.
    # Its graph check also runs against the newest opset: the model is checked with its own opset below
    # instead.
    import onnx.checker
    import onnx.defs

    onnx.defs.onnx_opset_version = lambda: int(req["opset"])
    onnx.checker.check_graph = lambda graph, *args, **kwargs: None
    mx.onnx.export_model(
        symbol_file,
        params_file,
        [tuple(i["shape"]) for i in req["inputs"]],
        [np.dtype(t) for t in dtypes],
        req["output"],
        dynamic=dynamic,
        dynamic_input_shapes=[[None, *i["shape"][1:]] for i in req["inputs"]] if dynamic else None,
    )
    rename_io(req["output"], {}, out_names)
    drop_initializer_inputs(req["output"])
    onnx.checker.check_model(req["output"])
    np.savez(req["sample"], **{f"in:{n}": a for n, a in arrays.items()},
             **{f"out:{k}": o.asnumpy() for k, o in enumerate(outs)})
    return {"outputs": out_names, "framework_version": mx.__version__, "notes": []}


if __name__ == "__main__":
    main(convert)
