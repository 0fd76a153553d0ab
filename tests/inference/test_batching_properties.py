"""Property: whatever requests arrive together, in whatever order, with whatever batch sizes, each caller gets
exactly what the model gives for its own items alone.

The model is tiny (3x6x6 input, 4 channels) so that an example (up to six threads, a real ONNX Runtime run per
item and per batch) costs about 25 ms, most of it the batcher's deliberate 3 ms waits for company rather than
work. Examples are capped at 500 (about 12 s) when CI asks for 2000 for every property test: past a few
hundred, more examples only repeat compositions already seen (fixed and dynamic batch, padding, requests that
do not fit and wait for the next batch, cancellations).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panoflow.core.inference import InferenceSettings, ModelFiles, ModelSet, TensorInfo
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from tests.support.models import conv_model

EXAMPLES = min(int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "100")), 500)
SIZE = (6, 6)
MODELS = {"dynamic": conv_model(size=SIZE, channels=4, classes=3),
          "fixed4": conv_model(batch=4, size=SIZE, channels=4,
                                                                                        classes=3)}


@pytest.fixture(scope="module")
def model_sets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModelSet]]:
    folder: Path = tmp_path_factory.mktemp("models")
    sets = {}
    for kind, model in MODELS.items():
        (folder / f"{kind}.onnx").write_bytes(model)
        files = ModelFiles("m", folder / f"{kind}.onnx", hashlib.sha256(model).hexdigest(),
                           inputs=(TensorInfo("data", (1, 3, *SIZE)),))
        # a long wait and a small limit make batches, carry-overs and partial fills all likely
        sets[kind] = ModelSet.open({"m": files}, {"onnxruntime": OnnxRuntimeBackend},
                                   InferenceSettings(max_batch=5, max_wait_ms=3.0))
    yield sets
    for ms in sets.values():
        ms.close()


@pytest.fixture(scope="module")
def reference() -> dict[str, ort.InferenceSession]:
    return {k: ort.InferenceSession(m, providers=["CPUExecutionProvider"]) for k, m in MODELS.items()}


def _item(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, *SIZE)).astype(np.float32)


requests = st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2**16)), min_size=1, max_size=12)


@settings(max_examples=EXAMPLES, deadline=None)
@given(kind=st.sampled_from(sorted(MODELS)), reqs=requests, threads=st.integers(1, 6), data=st.data())
def test_batched_results_equal_per_item_results(model_sets: dict[str, ModelSet],
                                                reference: dict[str, ort.InferenceSession], kind: str,
                                                reqs: list[tuple[int, int]], threads: int,
                                                data: st.DataObject) -> None:
    ms = model_sets[kind]
    order = data.draw(st.permutations(range(len(reqs))), label="arrival order")
    owner = data.draw(st.lists(st.integers(0, threads - 1), min_size=len(reqs), max_size=len(reqs)),
                      label="thread")
    cancel = data.draw(st.sets(st.sampled_from(range(len(reqs))), max_size=2), label="timed out")
    batches = {i: np.concatenate([_item(seed + k) for k in range(n)]) for i, (n, seed) in enumerate(reqs)}
    results: dict[int, tuple[np.ndarray, ...]] = {}
    barrier = threading.Barrier(threads)

    def run(t: int) -> None:
        mine = [i for i in order if owner[i] == t]
        barrier.wait()
        futures = {i: ms["m"].submit({"data": batches[i]}) for i in mine}
        for i in mine:
            if i in cancel:
                futures[i].cancel()  # what a caller's time_out does; the others must not notice
        for i in mine:
            if i not in cancel or not futures[i].cancelled():
                results[i] = futures[i].result(30)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    session = reference[kind]
    pad = np.zeros((3, 3, *SIZE), np.float32)
    for i, got in results.items():
        n, seed = reqs[i]
        assert [g.shape[0] for g in got] == [n, n]
        for k in range(n):
            x = _item(seed + k)
            want = session.run(None, {"data": np.concatenate([x, pad]) if kind == "fixed4" else x})
            for g, w in zip(got, want):
                np.testing.assert_allclose(g[k], w[0], rtol=0, atol=1e-5)
    assert set(results) >= set(range(len(reqs))) - cancel
