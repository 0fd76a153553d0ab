"""TENSORFLOW converter worker (runs in the TensorFlow converter environment): a SavedModel folder, a frozen
GraphDef ``.pb`` or a Keras ``.h5``/``.keras`` file to ONNX with tf2onnx, and TensorFlow's own outputs on the
sample input. A SavedModel's outputs come in its signature's order (TensorFlow flattens the output dict by
key), so an object-detection export gives ``detection_boxes, detection_classes, detection_scores,
num_detections``. See ``_common`` for the protocol."""

# mypy: disable-error-code="import-not-found,import-untyped,arg-type"
from __future__ import annotations

import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from _common import ModelProblem, main, rename_io, sample_input

_NOT_OUTPUTS = {"Const", "NoOp", "Placeholder", "Assert", "VarHandleOp", "VariableV2", "SaveV2", "RestoreV2"}


def _plain(name: str) -> str:
    return name.removesuffix(":0")


def _names_problem(wanted: list[str], have: list[str]) -> ModelProblem:
    missing = [n for n in wanted if n not in have]
    return ModelProblem(f"the model has no input named {', '.join(map(repr, missing))}; its inputs are "
                        f"{', '.join(map(repr, have)) or 'none'} (set the descriptor's inputs[].name)")


def _specs(tf: Any, req: dict[str, Any], dtypes: list[Any]) -> list[Any]:
    dynamic = req["dynamic_batch"]
    return [tf.TensorSpec([None, *i["shape"][1:]] if dynamic else i["shape"], dt, name=i["name"])
            for i, dt in zip(req["inputs"], dtypes)]


def _saved_model(tf: Any, req: dict[str, Any], names: list[str]) -> tuple[Any, list[Any], list[str]]:
    loaded = tf.saved_model.load(req["files"]["saved_model"])
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelProblem("the SavedModel has no signature (save it with signatures=..., as exporters do)")
    fn = signatures.get("serving_default") or signatures[min(signatures)]
    _, kwargs = fn.structured_input_signature
    if sorted(names) != sorted(kwargs):
        raise _names_problem(names, sorted(kwargs))
    keys = sorted(fn.structured_outputs)
    specs = _specs(tf, req, [kwargs[n].dtype for n in names])

    def run(*args: Any) -> tuple[Any, ...]:
        result = fn(**dict(zip(names, args)))
        return tuple(result[k] for k in keys)

    keep = loaded  # the function's variables live as long as the loaded object
    run.keep = keep  # type: ignore[attr-defined]
    return tf.function(run, input_signature=specs), specs, keys


def _keras(tf: Any, req: dict[str, Any], names: list[str]) -> tuple[Any, list[Any], list[str]]:
    model = tf.keras.models.load_model(req["files"]["keras"], compile=False)
    have = [_plain(t.name.split("/")[0]) for t in model.inputs]
    if sorted(names) != sorted(have):
        raise _names_problem(names, have)
    if names != have:
        raise ModelProblem(f"list the descriptor's inputs in the model's order: {', '.join(have)}")
    specs = _specs(tf, req, [t.dtype for t in model.inputs])
    outs = [_plain(t.name.split("/")[0]) for t in model.outputs]

    def run(*args: Any) -> tuple[Any, ...]:
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        return tuple(result) if isinstance(result, (list, tuple)) else (result,)

    return tf.function(run, input_signature=specs), specs, outs


def _frozen(tf: Any, tf2onnx: Any, req: dict[str, Any], names: list[str]) -> tuple[Any, list[str], list[str]]:
    graph_def = tf.compat.v1.GraphDef()
    with open(req["files"]["frozen"], "rb") as fh:
        try:
            graph_def.ParseFromString(fh.read())
        except Exception as exc:  # noqa: BLE001 (protobuf's DecodeError)
            raise ModelProblem(f"{os.path.basename(req['files']['frozen'])} is not a frozen TensorFlow "
                               f"GraphDef: {exc}") from None
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
    wanted = [_plain(n) for n in names]
    if any(n not in placeholders for n in wanted):
        raise _names_problem(wanted, placeholders)
    consumed = {_plain(i.lstrip("^")).split(":")[0] for n in graph_def.node for i in n.input}
    outputs = [n.name for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS]
    if not outputs:
        raise ModelProblem("the frozen graph has no output node (a node nothing else consumes)")
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    fn = wrapped.prune([graph.as_graph_element(f"{n}:0") for n in wanted],
                       [graph.as_graph_element(f"{o}:0") for o in outputs])
    tf2onnx.convert.from_graph_def(graph_def, input_names=[f"{n}:0" for n in wanted],
                                   output_names=[f"{o}:0" for o in outputs], opset=req["opset"],
                                   output_path=req["output"])
    fixed = _fixed_batch(graph_def, wanted)
    return fn, outputs, fixed


def _fixed_batch(graph_def: Any, names: list[str]) -> list[str]:
    """Placeholders among ``names`` whose first dimension the frozen graph fixes (their batch cannot vary)."""
    fixed = []
    for node in graph_def.node:
        if node.op == "Placeholder" and node.name in names and "shape" in node.attr:
            dims = [d.size for d in node.attr["shape"].shape.dim]
            if dims and dims[0] != -1:
                fixed.append(f"{node.name} {dims}")
    return fixed


def convert(req: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf
    import tf2onnx

    names = [i["name"] for i in req["inputs"]]
    files = req["files"]
    fixed: list[str] = []
    if "frozen" in files:
        fn, out_names, fixed = _frozen(tf, tf2onnx, req, names)
        dtypes = [i.get("type") or "float32" for i in req["inputs"]]
        arrays = [sample_input(i["shape"], dt, req["seed"], k) for k, (i, dt) in enumerate(zip(req["inputs"],
                                                                                               dtypes))]
        outs = fn(*[tf.constant(a) for a in arrays])
    else:
        fn, specs, out_names = (_saved_model if "saved_model" in files else _keras)(tf, req, names)
        arrays = [sample_input(i["shape"], s.dtype.as_numpy_dtype.__name__, req["seed"], k)
                  for k, (i, s) in enumerate(zip(req["inputs"], specs))]
        outs = fn(*[tf.constant(a) for a in arrays])
        tf2onnx.convert.from_function(fn, input_signature=specs, opset=req["opset"],
                                      output_path=req["output"])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    import onnx

    graph_inputs = [i.name for i in onnx.load(req["output"]).graph.input]
    rename_io(req["output"], {old: new for old, new in zip(graph_inputs, names) if old != new}, out_names)
    np.savez(req["sample"], **{f"in:{n}": a for n, a in zip(names, arrays)},
             **{f"out:{k}": np.asarray(o) for k, o in enumerate(outs)})
    result: dict[str, Any] = {"outputs": out_names, "notes": [],
                              "framework_version": (f"tensorflow {tf.__version__}, tf2onnx "
                                                    f"{tf2onnx.__version__}")}
    if fixed:
        result["dynamic_batch"] = False
        result["notes"].append(f"batch axis kept at the descriptor's size: the frozen graph fixes it "
                               f"({', '.join(fixed)})")
    return result


if __name__ == "__main__":
    main(convert)
