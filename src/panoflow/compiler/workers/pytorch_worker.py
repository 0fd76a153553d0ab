"""PYTORCH converter worker (runs in the PyTorch converter environment): a traced or scripted TorchScript file
to ONNX with ``torch.onnx.export(..., dynamo=False)``, and TorchScript's own outputs on the sample input. See
``_common`` for the protocol."""

# mypy: disable-error-code="import-not-found,import-untyped,arg-type"
from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from _common import ModelProblem, main, sample_input


def _flatten(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for k in value for t in _flatten(value[k])]
    raise ModelProblem(f"the model returns a {type(value).__name__}; a model node's outputs are tensors")


def convert(req: dict[str, Any]) -> dict[str, Any]:
    import torch

    path = req["files"]["model"]
    try:
        model = torch.jit.load(path, map_location="cpu")
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelProblem(f"{os.path.basename(path)} is not a TorchScript model (torch.jit.trace or "
                           f"torch.jit.script, then .save(), as SageMaker Neo requires): {first}") from None
    model.eval()
    names = [i["name"] for i in req["inputs"]]
    try:
        declared = [a.name for a in model.forward.schema.arguments[1:]]
    except (AttributeError, RuntimeError):
        declared = []
    if declared and len(declared) != len(names):
        raise ModelProblem(f"the model's forward takes {len(declared)} input(s) ({', '.join(declared)}); the "
                           f"descriptor names {len(names)} ({', '.join(names)})")
    arrays = [sample_input(i["shape"], i.get("type") or "float32", req["seed"], k)
              for k, i in enumerate(req["inputs"])]
    tensors = tuple(torch.from_numpy(a) for a in arrays)
    with torch.no_grad():
        try:
            outs = _flatten(model(*tensors))
        except RuntimeError as exc:
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            raise ModelProblem("the model does not run on inputs of shape "
                               f"{', '.join(str(list(i['shape'])) for i in req['inputs'])} (the "
                               f"descriptor's): {lines[-1] if lines else type(exc).__name__}") from None
    out_names = [f"output{k}" for k in range(len(outs))]
    axes = {n: {0: "batch"} for n in names + out_names} if req["dynamic_batch"] else None
    torch.onnx.export(model, tensors, req["output"], input_names=names, output_names=out_names,
                      dynamic_axes=axes, opset_version=req["opset"], dynamo=False)
    np.savez(req["sample"], **{f"in:{n}": a for n, a in zip(names, arrays)},
             **{f"out:{k}": o.detach().cpu().numpy() for k, o in enumerate(outs)})
    return {"outputs": out_names, "framework_version": torch.__version__, "notes": []}


if __name__ == "__main__":
    main(convert)
