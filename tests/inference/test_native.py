"""Async inference: ``ModelSet.acall`` and the native code runner, in-process with real inboxes and models."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import onnxruntime as ort
import pytest

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame, Label
from panoflow.core.graph import resolve
from panoflow.core.inference import InferenceTimeout, ModelSet
from panoflow.core.manifest import load_application
from panoflow.core.ports import CodeNodeIO, MediaInput, MediaOutput, ParameterInput
from panoflow.core.runtime import CodeNodeContext, RunOptions
from panoflow.exceptions import NodeError
from panoflow.modelstore import ModelStore
from panoflow.plugins.native_runner import NativeRunner
from panoflow.plugins.onnxruntime_backend import OnnxRuntimeBackend
from tests.support.models import conv_model

Open = Callable[..., ModelSet]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "native_counter"


def frames(n: int, seed: int = 0, size: tuple[int, int] = (16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, *size), dtype=np.float32)


@pytest.mark.anyio
async def test_one_task_group_keeps_many_requests_in_flight(open_models: Open) -> None:
    # a model slow enough (tens of ms a batch) that requests arriving during one batch must wait for the next,
    # however loaded the machine is: with a tiny model a fast worker could take each request alone
    size = (192, 192)
    model = conv_model(size=size, channels=32, depth=4)
    ms = open_models(model, shape=(1, 3, *size), max_wait_ms=20.0)
    results: dict[int, tuple[np.ndarray, ...]] = {}

    async def one(i: int) -> None:
        results[i] = await ms.acall("model_node", {"data": frames(1, seed=i, size=size)})

    async with anyio.create_task_group() as tg:
        for i in range(24):
            tg.start_soon(one, i)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for i, got in results.items():
        assert isinstance(got, tuple) and len(got) == 2
        np.testing.assert_allclose(got[0], session.run(None, {"data": frames(1, seed=i, size=size)})[0],
                                   atol=1e-5)
    stats = ms.stats()["model_node"]
    assert stats["items"] == 24 and stats["batches"] < 24  # no thread per request, and they were batched


@pytest.mark.anyio
async def test_acall_errors_and_time_out(open_models: Open) -> None:
    ms = open_models(conv_model(size=(192, 192), channels=32, depth=4), shape=(1, 3, 192, 192))
    with pytest.raises(KeyError, match="no model node named 'nope'"):
        await ms.acall("nope", {"data": np.zeros((1, 3, 192, 192), np.float32)})
    x = np.random.default_rng(0).random((8, 3, 192, 192), dtype=np.float32)
    with pytest.raises(InferenceTimeout, match="no result within 0.001 s"):
        await ms.acall("model_node", {"data": x}, time_out=0.001)
    assert (await ms.acall("model_node", {"data": x[:1]}, time_out=30))[0].shape == (1, 5)


def _native_context(tmp_path: Path, code: str | None,
                    in_flight: int = 8) -> tuple[CodeNodeContext, Inbox[Frame], Inbox[Frame], ModelSet]:
    """The example app's code node, wired by hand: a real inbox in, a real inbox out, the real model set."""
    app = load_application(EXAMPLE)
    graph = resolve(app, cameras={"camera_node": ["a", "b"]})
    spec = graph.code_nodes["code_node"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    entry = tmp_path / "app.py"
    src = EXAMPLE / "packages" / "123456789012-NATIVE_COUNTER-1.0" / "src" / "app.py"
    entry.write_text(code if code is not None else src.read_text())
    assert spec.runtime is not None and spec.runtime.entry_path == "native"
    spec = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, entry_name=str(entry)))
    files = {n: ModelStore(tmp_path / "models").prepare(m) for n, m in graph.models.items()}
    models = ModelSet.open(files, {"onnxruntime": OnnxRuntimeBackend})
    inbox: Inbox[Frame] = Inbox("code_node.video_in", "block(64)", ["a", "b"])
    out: Inbox[Frame] = Inbox("out", "block(256)")
    io = CodeNodeIO("code_node", {"video_in": MediaInput("video_in", inbox, ["a", "b"]),
                                  "in_flight": ParameterInput("in_flight", in_flight)},
                    {"video_out": MediaOutput("video_out", [out], "code_node")}, call=models.call)
    io.acall = models.acall  # type: ignore[attr-defined]
    (tmp_path / "storage").mkdir()
    return CodeNodeContext(spec, io, RunOptions(state_dir=tmp_path), tmp_path / "logs",
                           tmp_path / "storage"), \
        inbox, out, models


@pytest.mark.anyio
async def test_native_example_runs_in_process_with_many_frames_in_flight(tmp_path: Path) -> None:
    ctx, inbox, out, models = _native_context(tmp_path, None)
    rng = np.random.default_rng(0)
    images = {s: [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(30)] for s in ("a", "b")}
    for i in range(30):
        for s in ("a", "b"):
            inbox.put(s, Frame(images[s][i], s, i, (0, 0)))
    inbox.end_stream("a")
    inbox.end_stream("b")
    try:
        with anyio.fail_after(30):
            await NativeRunner().run(ctx)
    finally:
        models.close()
    result = json.loads((tmp_path / "storage" / "native_counter.json").read_text())
    assert result["counts"] == {"a": 30, "b": 30}
    assert result["peak_in_flight"] >= 2  # the node did not wait for one result before asking for the next
    from panoflow import ops

    for s in ("a", "b"):
        want = [ops.resize(img, (64, 64)).mean(axis=(0, 1)) for img in images[s]]
        np.testing.assert_allclose(result["means"][s], want, atol=1e-3)
    got = []
    while out.depth:
        got.append(out.get(0)[1])
    assert len(got) == 60 and all(isinstance(f.overlays[-1], Label) for f in got)
    assert [f.seq for f in got if f.stream_id == "a"] == list(range(30))  # results leave in arrival order


@pytest.mark.anyio
async def test_native_node_errors_name_the_node(tmp_path: Path) -> None:
    code = "async def main(node):\n    await node.call({'data': 1}, 'no_such_model')\n"
    ctx, _inbox, _out, models = _native_context(tmp_path, code)
    try:
        with pytest.raises(NodeError, match=r"node code_node: native node raised KeyError: .*no_such_model"):
            await NativeRunner().run(ctx)
        ctx2, *_rest, models2 = _native_context(tmp_path / "2", "def main(node):\n    pass\n")
        try:
            with pytest.raises(NodeError, match=r"must define 'async def main\(node\)'"):
                await NativeRunner().run(ctx2)
        finally:
            models2.close()
    finally:
        models.close()
