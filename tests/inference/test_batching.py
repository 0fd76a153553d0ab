"""ModelSet.call through the batcher and the real onnxruntime backend: results, errors, batching, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from panoflow.core.inference import InferenceTimeout, ModelSet
from panoflow.exceptions import ModelError
from tests.support.models import conv_model

Open = Callable[..., ModelSet]


def bare(model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def frames(n: int, seed: int = 0, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)


def test_call_returns_what_onnxruntime_returns(open_models: Open) -> None:
    model = conv_model()
    ms = open_models(model)
    x = frames(1)
    got = ms.call("model_node", {"data": x})
    want = bare(model).run(None, {"data": x})
    assert isinstance(got, tuple) and len(got) == 2
    assert [o.shape for o in got] == [(1, 5), (1, 8, 8, 8)]
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray)
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_unknown_model_name_is_a_key_error_listing_the_model_nodes(open_models: Open) -> None:
    ms = open_models(nodes=("detector", "classifier"))
    with pytest.raises(KeyError, match="no model node named 'model_nodee'.*classifier, detector"):
        ms.call("model_nodee", {"data": frames(1)})


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"data": np.zeros((3, 16, 16), np.float32)}, (r"input 'data' has shape \[3, 16, 16\], the model "
                                                       r"expects \[N,3,16,16\]")),
        ({"data": np.zeros((1, 3, 8, 16), np.float32)}, (r"input 'data' has shape \[1, 3, 8, 16\], the model "
                                                         r"expects \[N,3,16,16\]")),
        ({"image": np.zeros((1, 3, 16, 16), np.float32)}, (r"do not match the model's inputs "
                                                           r"\['data'\].*missing \['data'\]")),
        ({"data": np.zeros((1, 3, 16, 16), np.float32), "x": 1}, r"unknown \['x'\]"),
        ({"data": np.full((1, 3, 16, 16), "a")}, r"input 'data' is <U1, the model expects float32"),
    ],
)
def test_mismatched_inputs_name_the_node_the_input_and_the_expected_shape(
        open_models: Open, inputs: dict[str, np.ndarray], message: str) -> None:
    ms = open_models()
    with pytest.raises(ModelError, match=message) as info:
        ms.call("model_node", inputs)
    assert info.value.node_id == "model_node" and str(info.value).startswith("node model_node: ")


def test_bare_array_and_float64_inputs_are_accepted(open_models: Open) -> None:
    model = conv_model()
    ms = open_models(model)
    x = frames(1).astype(np.float64)
    got = ms.call("model_node", x)
    want = bare(model).run(None, {"data": x.astype(np.float32)})
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)


def test_a_request_with_its_own_batch_passes_through(open_models: Open) -> None:
    """APP-POSE pads to 4 and calls a batch-4 model: the 4 come back as 4, in order."""
    model = conv_model()
    ms = open_models(model)
    x = frames(4, seed=3)
    got = ms.call("model_node", {"data": x})
    want = bare(model).run(None, {"data": x})
    assert got[0].shape == (4, 5) and got[1].shape == (4, 8, 8, 8)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)


def test_fixed_batch_model_takes_its_batch_and_pads_smaller_requests(open_models: Open) -> None:
    model = conv_model(batch=4)
    ms = open_models(model, shape=(4, 3, 16, 16))
    x = frames(4, seed=5)
    full = ms.call("model_node", {"data": x})
    np.testing.assert_allclose(full[0], bare(model).run(None, {"data": x})[0], atol=1e-5)
    one = ms.call("model_node", {"data": x[1:2]})
    assert one[0].shape == (1, 5)
    np.testing.assert_allclose(one[0], full[0][1:2], atol=1e-5)
    with pytest.raises(ModelError, match=r"shape \[5, 3, 16, 16\], the model expects \[4,3,16,16\]"):
        ms.call("model_node", {"data": frames(5)})


def test_fixed_batch_one_model_runs_each_request_alone(open_models: Open) -> None:
    model = conv_model(batch=1)
    ms = open_models(model)
    assert ms["model_node"].limit == 1
    results: dict[int, tuple[np.ndarray, ...]] = {}

    def worker(i: int) -> None:
        results[i] = ms.call("model_node", {"data": frames(1, seed=i)})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    session = bare(model)
    for i, got in results.items():
        np.testing.assert_allclose(got[0], session.run(None, {"data": frames(1, seed=i)})[0], atol=1e-5)
    assert ms.stats()["model_node"]["batches"] == 6


def test_concurrent_callers_are_batched_and_get_their_own_results(open_models: Open) -> None:
    # a model slow enough (~10 ms an item) that the streams' calls overlap even on a busy machine
    model = conv_model(size=(48, 48), channels=48, depth=3)
    ms = open_models(model, shape=(1, 3, 48, 48), max_wait_ms=50.0)
    barrier = threading.Barrier(8)
    results: dict[int, tuple[np.ndarray, ...]] = {}

    def stream(i: int) -> None:
        for k in range(5):
            barrier.wait()
            results[i * 100 + k] = ms.call("model_node", {"data": frames(1, seed=i * 100 + k, size=48)})

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    session = bare(model)
    for key, got in results.items():
        want = session.run(None, {"data": frames(1, seed=key, size=48)})
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=1e-5)
    stats = ms.stats()["model_node"]
    assert stats["items"] == 40 and stats["batches"] < 40 and stats["mean_batch"] > 1


def test_time_out_is_honoured(open_models: Open) -> None:
    ms = open_models(conv_model(size=(192, 192), channels=32, depth=4), shape=(1, 3, 192, 192))
    x = frames(8, size=192)
    with pytest.raises(InferenceTimeout, match=r"node model_node: no result within 0.001 s") as info:
        ms.call("model_node", {"data": x}, time_out=0.001)
    assert isinstance(info.value, TimeoutError)
    assert ms.call("model_node", {"data": x[:1]}, time_out=30)[0].shape == (1, 5)


def test_other_threads_keep_running_during_inference(open_models: Open) -> None:
    """onnxruntime releases the GIL: a pure-Python counting thread advances while a slow model runs."""
    ms = open_models(conv_model(size=(192, 192), channels=32, depth=4), shape=(1, 3, 192, 192))
    x = frames(8, size=192)
    ms.call("model_node", {"data": x})  # warm up
    count = [0]
    running = threading.Event()
    stop = threading.Event()

    def counter() -> None:
        running.set()
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=counter)
    thread.start()
    running.wait()
    try:
        before = count[0]
        t0 = time.perf_counter()
        ms.call("model_node", {"data": x})
        elapsed = time.perf_counter() - t0
        during = count[0] - before
    finally:
        stop.set()
        thread.join()
    assert elapsed > 0.02, "the model is too fast to tell"
    assert during > 10_000, f"the counting thread advanced only {during} times in {elapsed:.3f} s"


def test_close_finishes_queued_requests_then_refuses_new_ones(open_models: Open) -> None:
    ms = open_models()
    batcher = ms["model_node"]
    futures = [batcher.submit({"data": frames(1, seed=i)}) for i in range(5)]
    ms.close()
    assert all(f.result(5)[0].shape == (1, 5) for f in futures)
    with pytest.raises(ModelError, match="closed"):
        ms.call("model_node", {"data": frames(1)})


def test_descriptor_names_map_onto_differently_named_model_inputs(open_models: Open) -> None:
    """A PyTorch export often names its input ``input.1`` while the descriptor (and the app) say ``data``."""
    model = conv_model(input_name="input.1")
    ms = open_models(model)
    x = frames(1)
    got = ms.call("model_node", {"data": x})
    np.testing.assert_allclose(got[0], bare(model).run(None, {"input.1": x})[0], atol=1e-5)


def test_descriptor_shape_that_contradicts_the_model_fails_at_start(open_models: Open) -> None:
    with pytest.raises(ModelError, match=r"descriptor says shape \[1, 3, 32, 32\], the model file has "
                                         r"\['N', 3, 16, 16\]"):
        open_models(shape=(1, 3, 32, 32))


def test_dynamic_spatial_axes_take_the_descriptor_shape(tmp_path: Path, open_models: Open) -> None:
    import onnx

    proto = onnx.load_from_string(conv_model())
    for dim in proto.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "S"
    ms = open_models(proto.SerializeToString(), shape=(1, 3, 16, 16))
    assert ms.call("model_node", {"data": frames(2)})[0].shape == (2, 5)
    with pytest.raises(ModelError, match=r"the model expects \[N,3,16,16\]"):
        ms.call("model_node", {"data": frames(1, size=8)})


def test_applications_in_one_process_share_a_batcher_through_a_pool(tmp_path: Path) -> None:
    """Two applications (two model sets) using the same model package: their requests are batched together."""
    from panoflow.core.inference import InferenceSettings, ModelPool
    from tests.inference.modelfiles import BACKENDS, model_files

    model = conv_model(size=(48, 48), channels=48, depth=3)
    pool = ModelPool()
    apps = [ModelSet.open({"detector": model_files(tmp_path / f"{i}.onnx", model, node_id="detector",
                                                   shape=(1, 3, 48, 48))},
                          BACKENDS, InferenceSettings(max_wait_ms=100.0), pool) for i in range(2)]
    assert apps[0]["detector"] is apps[1]["detector"]
    x = np.random.default_rng(0).random((1, 3, 48, 48), dtype=np.float32)
    futures = [app["detector"].submit({"data": x}) for app in apps for _ in range(3)]
    assert all(f.result(30)[0].shape == (1, 5) for f in futures)
    assert apps[0].stats()["detector"]["items"] == 6 and apps[0].stats()["detector"]["batches"] < 6
    apps[0].close()
    with pytest.raises(ModelError, match="closed"):
        apps[0].call("detector", {"data": x})
    assert apps[1].call("detector", {"data": x})[0].shape == (1, 5)  # still open for the other application
    apps[1].close()
    with pytest.raises(ModelError, match="closed"):
        apps[1]["detector"].submit({"data": x})
