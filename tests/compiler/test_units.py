"""The compiler's parts that need no converter environment: finding the model files of an archive, the cache
key, the comparison with ONNX Runtime, the batch-axis check and the environments' pip arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from panoflow.compiler import CompileRequest, InputSpec, PipSource, cache_key, default_cache_dir
from panoflow.compiler.archives import descriptor_digest, generated_asset_name
from panoflow.compiler.sources import locate
from panoflow.compiler.verify import batch_problem, compare
from panoflow.exceptions import ModelError

LABEL = "model archive a.tar.gz (descriptor d.json)"


def _files(root: Path, names: dict[str, bytes]) -> Path:
    for name, data in names.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


SYMBOL = json.dumps({"nodes": [{"op": "null", "name": "data"}]}).encode()


def test_mxnet_takes_the_highest_epoch_and_names_a_missing_params_file(tmp_path: Path) -> None:
    root = _files(tmp_path / "a", {"m/net-symbol.json": SYMBOL, "m/net-0000.params": b"p",
                                   "m/net-0012.params": b"p", "m/other-0099.params": b"p"})
    found = locate(root, "mxnet", LABEL)
    assert found.files == {"symbol": root / "m/net-symbol.json", "params": root / "m/net-0012.params"}
    root = _files(tmp_path / "b", {"ssd_512_resnet50-symbol.json": SYMBOL})
    with pytest.raises(ModelError, match=r"^model archive a\.tar\.gz \(descriptor d\.json\): the params file "
                                         r"of ssd_512_resnet50-symbol\.json is missing: expected "
                                         r"ssd_512_resnet50-<epoch>\.params \(e\.g\. "
                                         r"ssd_512_resnet50-0000\.params\)"):
        locate(root, "MXNET", LABEL)
    root = _files(tmp_path / "c", {"x-symbol.json": b"not json", "x-0000.params": b"p"})
    with pytest.raises(ModelError, match=r"x-symbol\.json is not an MXNet symbol file"):
        locate(root, "MXNET", LABEL)


def test_pytorch_needs_one_torchscript_file(tmp_path: Path) -> None:
    import zipfile

    root = tmp_path / "a"
    root.mkdir()
    with zipfile.ZipFile(root / "model.pth", "w") as z:
        z.writestr("model/data.pkl", b"x")
    assert locate(root, "PYTORCH", LABEL).files == {"model": root / "model.pth"}
    (root / "extra.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"several PyTorch files \(extra\.pt, model\.pth\)"):
        locate(root, "PYTORCH", LABEL)
    with pytest.raises(ModelError, match=r"holds a TorchScript \.pth or \.pt file, and this one holds "
                                         r"readme\.txt"):
        locate(_files(tmp_path / "b", {"readme.txt": b""}), "PYTORCH", LABEL)


def test_tensorflow_prefers_a_saved_model_then_a_frozen_graph_then_keras(tmp_path: Path) -> None:
    root = _files(tmp_path / "a", {"export/saved_model/saved_model.pb": b"",
                                   "export/saved_model/variables/v": b"",
                                   "frozen_inference_graph.pb": b"", "model.h5": b""})
    assert locate(root, "TENSORFLOW", LABEL).files == {"saved_model": root / "export/saved_model"}
    root = _files(tmp_path / "b", {"frozen_inference_graph.pb": b"", "model.h5": b""})
    assert locate(root, "TENSORFLOW", LABEL).files == {"frozen": root / "frozen_inference_graph.pb"}
    root = _files(tmp_path / "c", {"model.h5": b""})
    assert locate(root, "TENSORFLOW", LABEL).files == {"keras": root / "model.h5"}
    with pytest.raises(ModelError, match=r"SavedModel folder \(saved_model\.pb\), a frozen graph"):
        locate(_files(tmp_path / "d", {"labels.txt": b""}), "TENSORFLOW", LABEL)


def _request(digest: str = "a" * 64, framework: str = "MXNET", name: str = "data",
             shape: tuple[int, ...] = (1, 3, 8, 8)) -> CompileRequest:
    return CompileRequest(Path("/x"), digest, framework, (InputSpec(name, shape),), "a.tar.gz", "d.json")


@settings(max_examples=60, deadline=None)
@given(digest=st.sampled_from(["a" * 64, "b" * 64]),
       framework=st.sampled_from(["PYTORCH", "MXNET", "TENSORFLOW"]),
       name=st.sampled_from(["data", "image_tensor"]), side=st.integers(1, 512))
def test_cache_key_changes_with_archive_framework_and_inputs_only(digest: str, framework: str, name: str,
                                                                  side: int) -> None:
    base = _request(digest, framework, name, (1, 3, side, side))
    same = CompileRequest(Path("/elsewhere"), digest, framework.lower(), base.inputs, "b.tar.gz", "e.json")
    # where it was extracted and how the files are named do not count
    assert cache_key(base) == cache_key(same)
    assert cache_key(base) != cache_key(_request("c" * 64, framework, name, (1, 3, side, side)))
    assert cache_key(base) != cache_key(_request(digest, framework, name + "_2", (1, 3, side, side)))
    assert cache_key(base) != cache_key(_request(digest, framework, name, (1, 3, side + 1, side)))
    other = "PYTORCH" if framework != "PYTORCH" else "MXNET"  # another converter: another version
    assert cache_key(base) != cache_key(_request(digest, other, name, (1, 3, side, side)))


def _onnx(path: Path, *, scale: float = 1.0, batch: int | str = "N") -> Path:
    """y = x * scale + 1 and z = sum over the batch (no batch axis): a model whose outputs can be compared."""
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["m", "one"], ["y"]),
             helper.make_node("ReduceSum", ["x", "axes"], ["z"], keepdims=0)]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
             helper.make_tensor("one", TensorProto.FLOAT,
                                                                                         [], [1.0]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [0])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_compare_measures_absolute_and_relative_differences(tmp_path: Path) -> None:
    x = np.array([[1.0, 2.0, -3.0, 0.5]], np.float32)
    sample = tmp_path / "sample.npz"
    np.savez(sample, **{"in:x": x, "out:0": x * 2 + 1, "out:1": x.sum(axis=0)})
    exact = compare(_onnx(tmp_path / "a.onnx", scale=2.0), sample, ["y", "z"])
    assert exact.max_abs_diff == pytest.approx(0, abs=1e-6) and exact.max_rel_diff == pytest.approx(
        0, abs=1e-6
    )
    off = compare(_onnx(tmp_path / "b.onnx", scale=2.001), sample, ["y", "z"])
    # y differs by 0.001 * |x|, at most 0.003 (x = -3), against max|y| = 5: 6e-4 relative
    assert off.max_abs_diff == pytest.approx(0.003, rel=1e-3)
    assert off.max_rel_diff == pytest.approx(0.003 / 5, rel=1e-3)
    assert [o["name"] for o in off.outputs] == ["y", "z"] and off.outputs[1]["max_abs_diff"] == pytest.approx(
        0
    )
    np.savez(sample, **{"in:x": x, "out:0": x * 2 + 1})
    with pytest.raises(ValueError, match="the ONNX model has 2 outputs, the source model 1"):
        compare(_onnx(tmp_path / "c.onnx", scale=2.0), sample, ["y"])


def test_batch_problem_finds_outputs_without_a_batch_axis(tmp_path: Path) -> None:
    x = np.ones((1, 4), np.float32)
    sample = tmp_path / "sample.npz"
    np.savez(sample, **{"in:x": x, "out:0": x, "out:1": x[0]})
    assert "output 1 has no batch axis" in batch_problem(_onnx(tmp_path / "a.onnx"), sample)
    assert "a batch of 2 does not run" in batch_problem(_onnx(tmp_path / "b.onnx", batch=1), sample)


def test_generated_asset_names_and_pip_sources(tmp_path: Path) -> None:
    assert generated_asset_name("a" * 64, "b" * 64) == f"compiled-{'a' * 64}-{'b' * 16}.onnx"
    assert descriptor_digest(f"{'c' * 64}.json") == "c" * 64 and descriptor_digest("descriptor.json") == ""
    pip = PipSource.from_environment({"PANOFLOW_CONVERTER_FIND_LINKS": "/w1:/w2",
                                      "PANOFLOW_CONVERTER_NO_INDEX": "1"})
    assert pip.arguments() == ["--find-links", "/w1", "--find-links", "/w2", "--no-index"]
    assert PipSource.from_environment({}).arguments() == []
    assert default_cache_dir({"PANOFLOW_CACHE": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/panoflow")
