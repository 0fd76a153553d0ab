"""``panoflow compile-model`` on real models of each framework, packaged by ``add-raw-model``: the ONNX model
equals the source framework within 1e-4 on a fixed input, the measured difference is printed and recorded, and
a batch axis is dynamic where the graph allows it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.compiler.models import Model, fixed_input, package_model, panoflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test may create the envs

FRAMEWORK_MODELS = ["squeezenet", "gluon", "ssd_mxnet", "ssd_tf", "frozen_tf", "keras_tf"]


@pytest.mark.parametrize("key", FRAMEWORK_MODELS)
def test_compile_model_matches_the_source_framework(key: str, models: dict[str, Model],
                                                    tmp_path: Path) -> None:
    model = models[key]
    packaged = package_model(model, tmp_path / "project")
    out = tmp_path / "out" / "model.onnx"
    done = panoflow("compile-model", "--model-local-path", str(packaged.archive), "--descriptor-path",
                    str(packaged.descriptor), "--output", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # progress says what it does; the result names the measured difference
    assert f"converting {packaged.archive}" in done.stderr and f"({model.framework}:" in done.stderr
    report = json.loads((tmp_path / "out" / "model.verification.json").read_text())
    assert f"max abs diff {report['max_abs_diff']:.3g}" in done.stdout
    assert report["max_abs_diff"] < 1e-4 and report["framework"] == model.framework
    # an independent check: ONNX Runtime on the compiled file vs the framework itself on another fixed input
    x = fixed_input(model)
    want = model.fixed_output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [model.input_name]  # named by the descriptor
    got = session.run(None, {model.input_name: x})
    assert len(got) == len(want)  # the source framework's outputs, in its order
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)
    batch = session.get_inputs()[0].shape[0]
    if key == "frozen_tf":  # its placeholder is [1,32,32,3]: the batch stays fixed, and the report says why
        assert batch == 1 and not report["dynamic_batch"] and "batch axis kept" in report["notes"][0]
    else:
        assert not isinstance(batch, int) and report["dynamic_batch"]
        two = np.concatenate([x, fixed_input(model, seed=7)])
        got2 = session.run(None, {model.input_name: two})
        for g1, g2 in zip(got, got2):
            np.testing.assert_allclose(g2[:1], g1, rtol=0, atol=1e-5)


def test_output_names_and_order_follow_the_source_framework(models: dict[str, Model], tmp_path: Path) -> None:
    outputs = {}
    for key in ("ssd_mxnet", "ssd_tf"):
        packaged = package_model(models[key], tmp_path / key)
        out = tmp_path / f"{key}.onnx"
        done = panoflow("compile-model", "--model-local-path", str(packaged.archive), "--descriptor-path",
                        str(packaged.descriptor), "--output", str(out), "--cache-dir",
                        str(tmp_path / "cache"))
        assert done.returncode == 0, done.stderr
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        outputs[key] = [(o.name, o.shape[1:]) for o in session.get_outputs()]
    # GluonCV's SSD: class ids, scores, boxes
    assert [name for name, _ in outputs["ssd_mxnet"]] == ["ids", "scores", "bboxes"]
    assert outputs["ssd_mxnet"][2][1] == [32, 4]
    # the TensorFlow Object Detection API's four outputs, in the signature's (sorted) order
    assert [name for name, _ in outputs["ssd_tf"]] == ["detection_boxes", "detection_classes",
                                                       "detection_scores", "num_detections"]


def test_two_processes_compile_a_model_once_and_a_second_load_compiles_nothing(models: dict[str, Model],
                                                                               tmp_path: Path) -> None:
    import subprocess
    import sys

    packaged = package_model(models["gluon"], tmp_path / "project")
    args = ["--model-local-path", str(packaged.archive), "--descriptor-path", str(packaged.descriptor),
            "--cache-dir", str(tmp_path / "cache")]
    procs = [subprocess.Popen([sys.executable, "-m", "panoflow", "compile-model", *args, "--output",
                               str(tmp_path / f"{n}.onnx")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    errs = [err for _, err in outs]
    assert sum("converting " in e for e in errs) == 1 and sum("nothing converted" in e for e in errs) == 1
    assert (tmp_path / "0.onnx").read_bytes() == (tmp_path / "1.onnx").read_bytes()
    # again, with no converter environment to be had: the cache answers
    again = panoflow("compile-model", *args, "--output", str(tmp_path / "2.onnx"), "--converters-dir",
                     str(tmp_path / "none"), "--no-index")
    assert again.returncode == 0 and "nothing converted" in again.stderr and not (tmp_path / "none").exists()
