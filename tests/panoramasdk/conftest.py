"""The ``harness`` fixture: a hand-built code node served to panoramasdk in this process
(:mod:`tests.panoramasdk.harness`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame
from panoflow.core.ports import CodeNodeIO, MediaInput, MediaOutput, ParameterInput
from tests.panoramasdk.harness import CAMERAS, Harness, serve


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
    with serve(io) as server:
        yield Harness(io, video, hdmi, calls, server)
