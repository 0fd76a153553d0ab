"""Does the compiled ONNX model compute what the source framework computed?

The converter worker ran the source model on a deterministic input and saved both (``sample.npz``:
``in:<name>``, ``out:<k>``). Here ONNX Runtime (panoflow's own dependency) runs the ONNX file on the same
input, and each output is compared: the largest absolute difference, and the relative one, ``max|onnx -
source| / max|source|`` per output (the largest over outputs is reported). A model beyond the tolerance is
refused with both numbers.

:func:`batch_problem` checks that a dynamic batch axis really is one: two copies of the input in one batch
must give two copies of the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Verification", "batch_problem", "compare"]


@dataclass(frozen=True)
class Verification:
    """The measured difference between the ONNX model and the source framework on the sample input."""

    max_abs_diff: float
    max_rel_diff: float
    outputs: list[dict[str, Any]] = field(default_factory=list)  # per output: name, shape, dtype, abs, rel

    def as_dict(self) -> dict[str, Any]:
        return {"max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff, "outputs": self.outputs}


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _samples(sample: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    with np.load(sample) as data:
        inputs = {k[3:]: data[k] for k in data.files if k.startswith("in:")}
        outs = [data[f"out:{k}"] for k in range(sum(1 for f in data.files if f.startswith("out:")))]
    return inputs, outs


def compare(onnx_path: Path, sample: Path, output_names: list[str]) -> Verification:
    """Run ``onnx_path`` on the sample inputs and measure the difference; ValueError when the outputs cannot
    be compared (another count, shape or a run failure), naming what differs."""
    inputs, expected = _samples(sample)
    session = _session(onnx_path)
    feed_names = [i.name for i in session.get_inputs()]
    missing = [n for n in feed_names if n not in inputs]
    if missing:
        raise ValueError(f"the ONNX model's input(s) {', '.join(missing)} are not the descriptor's "
                         f"({', '.join(inputs)})")
    try:
        got = session.run(None, {n: inputs[n] for n in feed_names})
    except Exception as exc:  # noqa: BLE001 (onnxruntime's own exception types)
        raise ValueError(f"ONNX Runtime cannot run the converted model: {exc}") from None
    if len(got) != len(expected):
        raise ValueError(f"the ONNX model has {len(got)} outputs, the source model {len(expected)}")
    rows, worst_abs, worst_rel = [], 0.0, 0.0
    for k, (a, b) in enumerate(zip(got, expected)):
        name = output_names[k] if k < len(output_names) else f"output{k}"
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"output {k} ({name}) has shape {list(a.shape)} in ONNX and {list(b.shape)} in "
                             "the source framework")
        if a.size == 0:
            diff, scale = 0.0, 0.0
        else:
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            diff = float(np.nanmax(d)) if not np.isnan(d).all() else 0.0
            if np.isnan(a).sum() != np.isnan(b).sum():
                diff = float("inf")
            scale = float(np.nanmax(np.abs(b.astype(np.float64)))) if not np.isnan(b).all() else 0.0
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        rows.append({"name": name, "shape": list(a.shape), "dtype": str(a.dtype), "max_abs_diff": diff,
                     "max_rel_diff": rel})
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
    return Verification(worst_abs, worst_rel, rows)


def batch_problem(onnx_path: Path, sample: Path) -> str:
    """Why the model's batch axis is not dynamic after all ("" when two stacked inputs give two stacked
    outputs)."""
    inputs, _ = _samples(sample)
    if any(a.ndim == 0 or a.shape[0] != 1 for a in inputs.values()):
        return "the descriptor's batch size is not 1"
    session = _session(onnx_path)
    try:
        one = session.run(None, inputs)
        two = session.run(None, {n: np.concatenate([a, a]) for n, a in inputs.items()})
    except Exception as exc:  # noqa: BLE001 (onnxruntime's own exception types)
        return f"a batch of 2 does not run ({str(exc).splitlines()[0][:200]})"
    for k, (a, b) in enumerate(zip(one, two)):
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 0 or b.shape != (2 * a.shape[0], *a.shape[1:]):
            return f"output {k} has no batch axis (shape {list(b.shape)} for a batch of 2)"
        if not (np.allclose(b[: a.shape[0]], a, atol=1e-4, equal_nan=True)
                and np.allclose(b[a.shape[0]:], a, atol=1e-4, equal_nan=True)):
            return f"output {k} mixes the items of a batch"
    return ""
