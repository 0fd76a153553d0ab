"""A hand-built code node (real inboxes, a fake model) bound to panoramasdk for each test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame
from panoflow.core.ports import CodeNodeIO, MediaInput, MediaOutput, ParameterInput
from panoramasdk import _binding

CAMERAS = ("cam1", "cam2")


@dataclass
class Harness:
    io: CodeNodeIO
    video: Inbox[Frame]
    hdmi: Inbox[Frame]
    calls: list[tuple[str, Any, float | None]] = field(default_factory=list)

    def push(self, stream: str = "cam1", seq: int = 0) -> Frame:
        frame = Frame(
            image=np.zeros((8, 10, 3), np.uint8),
            stream_id=stream,
            seq=seq,
            capture_time=(1700000000, 250000),
            stream_uri=f"rtsp://{stream}",
        )
        assert self.video.put(stream, frame)
        return frame


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def harness() -> Iterator[Harness]:
    video: Inbox[Frame] = Inbox("code.video_in", "queue", CAMERAS)
    hdmi: Inbox[Frame] = Inbox("hdmi.video_in", "queue")
    calls: list[tuple[str, Any, float | None]] = []

    def call(name: str, inputs: Any, timeout: float | None = None) -> tuple[np.ndarray, ...]:
        if name != "model_node":
            raise KeyError(f"no model node named {name!r}")
        calls.append((name, inputs, timeout))
        return (np.ones((1, 3)), np.zeros((1, 2)))

    io = CodeNodeIO(
        node_id="code_node",
        inputs={
            "video_in": MediaInput("video_in", video, CAMERAS),
            "threshold": ParameterInput("threshold", 0.5),
        },
        outputs={"video_out": MediaOutput("video_out", [hdmi], "code_node")},
        call=call,
    )
    _binding.bind(io)
    try:
        yield Harness(io, video, hdmi, calls)
    finally:
        _binding.unbind()
