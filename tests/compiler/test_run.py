"""``panoflow run`` on applications whose model package is exactly what ``add-raw-model`` made from a PyTorch,
MXNet or TensorFlow model: the model node compiles it on first load (no manual export), every frame's results
equal what the source framework computes on the same input, and a second run compiles nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.compiler.models import Model, package_model, references, run_app
from tests.support.cli import log_records

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # the first test of a session may create the converter environments
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces"),
]


@pytest.mark.parametrize("key", ["squeezenet", "gluon", "ssd_mxnet", "ssd_tf"])
def test_run_compiles_the_package_and_every_frame_matches_the_framework(key: str, models: dict[str, Model],
                                                                        clip: Path, tmp_path: Path) -> None:
    model = models[key]
    app = package_model(model, tmp_path / "app").project
    state = tmp_path / "state"
    proc = run_app(app, clip, state)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    compiled = [e for e in log_records(proc.stderr)
                if e.get("event") == "model_compiled" and e.get("node_id")]
    assert len(compiled) == 1 and compiled[0]["framework"] == model.framework
    assert float(compiled[0]["max_abs_diff"]) < 1e-4  # type: ignore[arg-type]
    assert json.loads((state / "storage" / "result.json").read_text())["frames"] == 8
    with np.load(state / "storage" / "io.npz") as saved:
        inputs = {str(n): saved[f"{n}/in"] for n in range(8)}
        got = {str(n): [saved[f"{n}/out{k}"] for k in range(len(model.fixed_output))] for n in range(8)}
        assert not any(f"{n}/out{len(model.fixed_output)}" in saved.files for n in range(8))
    want = references([(model, inputs)], tmp_path / "ref")[0]
    for n, x in inputs.items():
        assert x.shape == model.shape and x.dtype == np.dtype(model.dtype)
        for g, w in zip(got[n], want[n], strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)
    if key == "squeezenet":
        # A second run finds the compiled model: with no converter environment to be had, it still runs.
        again = run_app(app, clip, state, PANOFLOW_CACHE=str(tmp_path / "empty-cache"),
                        PANOFLOW_CONVERTER_NO_INDEX="1")
        assert again.returncode == 0, again.stderr[-3000:]
        assert not [e for e in log_records(again.stderr) if e.get("event") in ("model_compiled",
                                                                             "model_compiler_progress")]
        assert not (tmp_path / "empty-cache").exists()
