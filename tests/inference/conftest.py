"""Fixtures for the inference tests: real ONNX models on disk, loaded through the real backends and batcher,
and a real KServe V2 server for the session (:mod:`tests.inference.kserve_harness`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from panoflow.core.inference import InferenceSettings, ModelSet
from tests.inference.kserve_harness import KServeServer, served_models
from tests.inference.modelfiles import BACKENDS, model_files
from tests.support.models import conv_model


@pytest.fixture
def open_models(tmp_path: Path) -> Iterator[Callable[..., ModelSet]]:
    """``open_models(model_bytes, shape=..., **settings)`` -> a ModelSet with one node ``model_node`` on
    onnxruntime; every set opened is closed after the test."""
    opened: list[ModelSet] = []

    def make(model: bytes | None = None, *, shape: tuple[int, ...] | None = (1, 3, 16, 16),
             nodes: tuple[str, ...] = ("model_node",), **settings: object) -> ModelSet:
        model = model if model is not None else conv_model()
        files = {n: model_files(tmp_path / f"{n}-{len(opened)}.onnx", model, node_id=n,
                                shape=shape) for n in nodes}
        settings.setdefault("backend", "onnxruntime")
        ms = ModelSet.open(files, BACKENDS, InferenceSettings(**settings))  # type: ignore[arg-type]
        opened.append(ms)
        return ms

    yield make
    for ms in opened:
        ms.close()


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real H.264 clips: ``a`` 40 frames (MP4), ``b`` 25 frames (Matroska), both 320x240."""
    from tests.media import make_clip

    d = tmp_path_factory.mktemp("clips")
    return {
        "a": make_clip(d / "a.mp4", frames=40, size=(320, 240), seed=1),
        "b": make_clip(d / "b.mkv", frames=25, size=(320, 240), container="mkv", seed=2),
    }


@pytest.fixture(scope="session")
def kserve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeServer]:
    """A KServe V2 server for the whole session (tests that kill or pause a server start their own)."""
    folder = tmp_path_factory.mktemp("kserve")
    server = KServeServer(served_models(folder / "models"), folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
