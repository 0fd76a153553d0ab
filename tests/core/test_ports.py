"""Code-node ports: Panorama's multi-camera ``get`` semantics, parameters, outputs and CodeNodeIO."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame
from panoflow.core.ports import (
    CodeNodeIO,
    InputTimeout,
    MediaInput,
    MediaOutput,
    ParameterInput,
    StreamsExhausted,
)
from panoflow.exceptions import PanoflowError

EXAMPLES = int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "100"))
IMAGE = np.zeros((4, 6, 3), np.uint8)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def frame(stream: str, seq: int) -> Frame:
    return Frame(image=IMAGE, stream_id=stream, seq=seq, capture_time=(seq, 0))


def test_exception_types() -> None:
    assert issubclass(InputTimeout, TimeoutError) and issubclass(InputTimeout, PanoflowError)
    assert issubclass(StreamsExhausted, SystemExit) and not issubclass(StreamsExhausted, Exception)
    exc = StreamsExhausted("done")
    assert exc.code == 0 and str(exc) == "done"


def test_single_camera_get_and_timeout() -> None:
    inbox: Inbox[Frame] = Inbox("in", "queue", ["cam"])
    port = MediaInput("video_in", inbox, ["cam"])
    inbox.put("cam", frame("cam", 1))
    got = port.get()
    assert [f.seq for f in got] == [1] and not got[0].is_cached
    with pytest.raises(InputTimeout, match="video_in"):
        port.get(timeout=0.01)
    with pytest.raises(TimeoutError):
        port.get(timeout=0)


def test_cached_frames_share_pixels_and_come_in_camera_order() -> None:
    inbox: Inbox[Frame] = Inbox("in", "queue", ["a", "b"])
    port = MediaInput("video_in", inbox, ["b", "a"])
    inbox.put("a", frame("a", 1))
    assert [(f.stream_id, f.is_cached) for f in port.get()] == [("a", False)]
    inbox.put("b", frame("b", 1))
    got = port.get()
    assert [(f.stream_id, f.is_cached) for f in got] == [("b", False), ("a", True)]
    assert got[1].image is IMAGE


def test_exhausted_when_all_streams_end_and_forever_after() -> None:
    inbox: Inbox[Frame] = Inbox("in", "queue", ["a", "b"])
    port = MediaInput("video_in", inbox, ["a", "b"])
    inbox.put("a", frame("a", 1))
    inbox.end_stream("a")
    inbox.end_stream("b")
    assert len(port.get()) == 1
    for _ in range(2):
        with pytest.raises(StreamsExhausted, match="ended"):
            port.get()


def test_exhausted_when_runtime_stops() -> None:
    inbox: Inbox[Frame] = Inbox("in", "latest", ["a"])
    port = MediaInput("video_in", inbox, ["a"])
    result: list[BaseException] = []

    def app() -> None:
        while True:
            try:
                port.get()
            except Exception:  # noqa: BLE001, S112 (what Panorama apps write; must not swallow the stop)
                continue
            except BaseException as exc:  # noqa: BLE001 (the stop, whatever it is, ends the app)
                result.append(exc)
                return

    worker = threading.Thread(target=app)
    worker.start()
    time.sleep(0.01)
    inbox.put("a", frame("a", 1))
    inbox.close(drain=False)
    worker.join(5)
    assert isinstance(result[0], StreamsExhausted) and "stopping" in str(result[0])


@pytest.mark.anyio
async def test_aget_semantics() -> None:
    inbox: Inbox[Frame] = Inbox("in", "queue", ["a", "b"])
    port = MediaInput("video_in", inbox, ["a", "b"])
    task = asyncio.create_task(port.aget())
    await asyncio.sleep(0.01)
    inbox.put("b", frame("b", 1))
    assert [f.stream_id for f in await task] == ["b"]
    inbox.put("a", frame("a", 1))
    assert [(f.stream_id, f.is_cached) for f in await port.aget()] == [("a", False), ("b", True)]
    inbox.end_stream("a")
    inbox.end_stream("b")
    with pytest.raises(StreamsExhausted):
        await port.aget()
    with pytest.raises(StreamsExhausted):
        await port.aget()


def test_parameter_input_is_repeatable() -> None:
    param = ParameterInput("threshold", 0.5)
    assert param.get() == param.get(timeout=1) == 0.5


def test_media_output_fans_out_and_closes() -> None:
    sinks: list[Inbox[Frame]] = [Inbox("hdmi", "queue"), Inbox("record", "block(2)")]
    out = MediaOutput("video_out", sinks, node_id="code")
    with pytest.raises(ValueError, match="video_out"):
        out.put([])
    f1, f2 = frame("a", 1), frame("b", 1)
    out.put([f1, f2])
    for sink in sinks:
        assert sink.streams == ("a", "b")
        assert sink.get_batch(timeout=0) == {"a": f1, "b": f2}
        assert sink.depth == 0
    out.close()
    out.close()
    assert all(sink.ended for sink in sinks)


def test_media_output_close_without_frames_closes_empty_targets() -> None:
    sink: Inbox[Frame] = Inbox("hdmi", "queue")
    MediaOutput("video_out", [sink], node_id="code").close()
    assert sink.closed


def test_code_node_io_defaults() -> None:
    io = CodeNodeIO(node_id="code")
    with pytest.raises(KeyError, match="model_node"):
        io.call("model_node", {}, None)
    assert not io.stop_event.is_set()
    io.close_outputs()


# ---- stateful: multi-camera get semantics
# -------------------------------------------------------------------------
CAMERAS = ("cam0", "cam1", "cam2")


class MediaInputModel(RuleBasedStateMachine):
    """Frames pushed per camera (queue(3), so drops happen), ends, and polling gets, checked against a
    model."""

    @initialize(order=st.permutations(CAMERAS))
    def setup(self, order: list[str]) -> None:
        self.order = list(order)
        self.inbox: Inbox[Frame] = Inbox("in", "queue(3)", CAMERAS)
        self.port = MediaInput("video_in", self.inbox, self.order)
        self.pending: dict[str, deque[int]] = {c: deque() for c in CAMERAS}
        self.last: dict[str, int] = {}
        self.next_seq = {c: 0 for c in CAMERAS}
        self.ended: set[str] = set()
        self.exhausted = False

    @rule(camera=st.sampled_from(CAMERAS))
    def push(self, camera: str) -> None:
        if camera in self.ended:
            return
        seq = self.next_seq[camera]
        self.next_seq[camera] += 1
        assert self.inbox.put(camera, frame(camera, seq), timeout=0)
        queue = self.pending[camera]
        if len(queue) == 3:
            queue.popleft()
        queue.append(seq)

    @rule(camera=st.sampled_from(CAMERAS))
    def end(self, camera: str) -> None:
        self.inbox.end_stream(camera)
        self.ended.add(camera)

    @rule()
    def get(self) -> None:
        fresh = {c: q.popleft() for c, q in self.pending.items() if q}
        if not fresh:
            if self.exhausted or self.ended == set(CAMERAS):
                self.exhausted = True
                with pytest.raises(StreamsExhausted):
                    self.port.get(timeout=0)
            else:
                with pytest.raises(InputTimeout):
                    self.port.get(timeout=0)
            return
        got = self.port.get(timeout=0)
        self.last.update(fresh)
        expected = [(c, self.last[c], c not in fresh) for c in self.order if c in self.last]
        assert [(f.stream_id, f.seq, f.is_cached) for f in got] == expected
        assert any(not f.is_cached for f in got)  # never only cached frames
        assert all(f.image is IMAGE for f in got)  # never a pixel copy

    @invariant()
    def bounded(self) -> None:
        assert all(s.depth <= 3 for s in self.inbox.stats.streams.values())


MediaInputModel.TestCase.settings = settings(max_examples=EXAMPLES, deadline=None, stateful_step_count=40)
TestMediaInputModel = MediaInputModel.TestCase
