"""panoramasdk.node: construction styles, ports, and model calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import panoramasdk
from panoflow.core.ports import CodeNodeIO
from panoramasdk import _client
from panoramasdk._client import StreamsExhausted
from tests.panoramasdk.harness import serve

if TYPE_CHECKING:
    from tests.panoramasdk.harness import Harness


def test_public_names() -> None:
    assert sorted(panoramasdk.__all__) == sorted(["media", "node", "port", "TimeoutException"])
    assert all(hasattr(panoramasdk, name) for name in panoramasdk.__all__)
    assert issubclass(panoramasdk.TimeoutException, TimeoutError)


def test_unbound_node_explains_how_to_run() -> None:
    with pytest.raises(
        RuntimeError, match=r"needs the panoflow runtime: run this application with `panoflow run"
    ):
        panoramasdk.node()


def test_connection_from_the_inherited_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside tests the SDK finds its runtime by itself: the socket the runtime passed, named by
    PANOFLOW_SDK_FD."""
    import socket
    import threading

    from panoflow.plugins.appproc.memory import FramePool
    from panoflow.plugins.appproc.server import AppServer
    from panoramasdk._wire import Channel

    ours, theirs = socket.socketpair()
    server = AppServer(CodeNodeIO(node_id="from_fd"), Channel(ours), FramePool("t"))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    monkeypatch.setenv(_client.ENV_FD, str(theirs.detach()))
    _client.unbind()
    try:
        assert _client.current().node["node_id"] == "from_fd"
        assert _client.current() is _client.current()
    finally:
        _client.current().channel.close()
        _client.unbind()
        thread.join(5)
        ours.close()


def test_subclass_without_super_init(harness: Harness) -> None:
    class Application(panoramasdk.node):
        def __init__(self) -> None:
            self.threshold = self.inputs.threshold.get()

    app = Application()
    assert app.threshold == 0.5
    assert isinstance(app.inputs.video_in, panoramasdk.port)


def test_subclass_with_super_init_and_arguments(harness: Harness) -> None:
    class Application(panoramasdk.node):
        def __init__(self, scale: int) -> None:
            super().__init__()
            super().__init__()
            self.scale = scale

    app = Application(3)
    assert app.scale == 3 and app.inputs.threshold.get() == 0.5


def test_composition(harness: Harness) -> None:
    node = panoramasdk.node()

    class Application:
        def __init__(self, node: panoramasdk.node) -> None:
            self.threshold = node.inputs.threshold.get()

    # the debug-server sample rebuilds its wrapper with the same node and re-reads parameters
    assert Application(node).threshold == Application(node).threshold == 0.5


def test_unknown_port_lists_known_ones(harness: Harness) -> None:
    node = panoramasdk.node()
    with pytest.raises(AttributeError, match=r"no input port 'video'.*threshold, video_in"):
        node.inputs.video  # noqa: B018
    with pytest.raises(AttributeError, match=r"video_out"):
        node.outputs.hdmi  # noqa: B018
    assert dir(node.inputs) == ["threshold", "video_in"]


def test_port_direction_errors(harness: Harness) -> None:
    node = panoramasdk.node()
    with pytest.raises(ValueError, match="only by input ports"):
        node.outputs.video_out.get()
    with pytest.raises(ValueError, match="only by output ports"):
        node.inputs.video_in.put([])
    with pytest.raises(ValueError, match="only by output ports"):
        node.inputs.threshold.put([])


def test_media_get_put_roundtrip(harness: Harness) -> None:
    node = panoramasdk.node()
    sent = harness.push("cam1")
    streams = node.inputs.video_in.get()
    assert len(streams) == 1 and isinstance(streams[0], panoramasdk.media)
    node.outputs.video_out.put(streams)
    out = harness.hdmi.get(timeout=5)[1]
    # nothing added: the same frame goes on (its pixels, in the shared segment)
    assert (out.stream_id, out.seq, out.capture_time, out.overlays) == \
        (sent.stream_id, 0, sent.capture_time, ())
    assert np.array_equal(out.image, sent.image)
    harness.push("cam2", 1)
    streams = node.inputs.video_in.get(timeout=1)
    assert [(m.stream_id, m.is_cached) for m in streams] == [("cam1", True), ("cam2", False)]
    node.outputs.video_out.put(tuple(streams))
    harness.sync()
    assert set(harness.hdmi.get_batch(timeout=0)) == {"cam1", "cam2"}


def test_a_failed_put_is_raised_by_the_next_request(harness: Harness) -> None:
    """put is not answered (one round trip less per frame); when the runtime refuses it, the app learns it
    from its next request, with what was wrong, and the connection goes on."""
    node = panoramasdk.node()
    client = _client.current()
    client.request({"op": "put", "port": "no_such_port",
                    "frames": [{"image": np.zeros((2, 2, 3), np.uint8)}]},
                   answer=False)
    with pytest.raises(ValueError, match="an earlier put failed: 'no_such_port' is not an output"):
        node.inputs.video_in.get(timeout=0)
    with pytest.raises(panoramasdk.TimeoutException):  # the connection is fine: the next get is served
        node.inputs.video_in.get(timeout=0)


def test_put_rejects_empty_and_non_media(harness: Harness) -> None:
    node = panoramasdk.node()
    with pytest.raises(ValueError, match="empty"):
        node.outputs.video_out.put([])
    with pytest.raises(TypeError):
        node.outputs.video_out.put([np.zeros(3)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        node.outputs.video_out.put("frames")  # type: ignore[arg-type]


def test_get_timeout_raises_timeout_exception(harness: Harness) -> None:
    node = panoramasdk.node()
    with pytest.raises(panoramasdk.TimeoutException):
        node.inputs.video_in.get(timeout=0.01)
    with pytest.raises(TimeoutError):  # what the reference's example catches
        node.inputs.video_in.get(timeout=0)


def test_get_after_end_of_streams_ends_the_app(harness: Harness) -> None:
    node = panoramasdk.node()
    for cam in ("cam1", "cam2"):
        harness.video.end_stream(cam)
    with pytest.raises(StreamsExhausted):
        node.inputs.video_in.get()
    with pytest.raises(SystemExit):
        node.inputs.video_in.get()


@pytest.mark.parametrize("order", ["samples", "reference", "keywords", "test-utility-keywords"])
def test_call_both_orders(harness: Harness, order: str) -> None:
    node = panoramasdk.node()
    data = {"data": np.zeros((1, 3, 4, 4), np.float32)}
    if order == "samples":
        result = node.call(data, "model_node")
    elif order == "reference":
        result = node.call("model_node", data, 2.0)
    elif order == "keywords":
        result = node.call(inputs=data, name="model_node", time_out=2.0)
    else:
        result = node.call(data, name="model_node", timeout=2.0)
    assert isinstance(result, tuple) and len(result) == 2
    name, inputs, timeout = harness.calls[-1]
    assert name == "model_node" and list(inputs) == ["data"] and np.array_equal(inputs["data"], data["data"])
    assert timeout == (None if order == "samples" else 2.0)


def test_call_accepts_media_and_bare_array(harness: Harness) -> None:
    node = panoramasdk.node()
    harness.push("cam1")
    stream = node.inputs.video_in.get()[0]
    node.call(stream, "model_node")
    assert np.array_equal(harness.calls[-1][1], stream.image)
    array = np.arange(12, dtype=np.float32).reshape((1, 3, 2, 2))
    node.call("model_node", array)
    got = harness.calls[-1][1]
    assert got.dtype == array.dtype and np.array_equal(got, array)


def test_call_errors(harness: Harness) -> None:
    node = panoramasdk.node()
    with pytest.raises(KeyError, match="nope"):
        node.call({"data": np.zeros(1)}, "nope")
    with pytest.raises(TypeError, match="model node name"):
        node.call({"data": np.zeros(1)}, np.zeros(1))
    with pytest.raises(TypeError, match="unexpected"):
        node.call({}, "model_node", bogus=1)


def test_default_call_without_models() -> None:
    with serve(CodeNodeIO(node_id="code_node")), pytest.raises(KeyError, match="no model node"):
        panoramasdk.node().call({"data": np.zeros(1)}, "model_node")


def test_call_result_is_always_a_tuple() -> None:
    outputs = [np.arange(4.0).reshape((1, 4))]
    io = CodeNodeIO(node_id="code_node", call=lambda name, inputs, timeout: outputs)  # type: ignore[arg-type, return-value]
    with serve(io):
        result = panoramasdk.node().call({"data": np.zeros(1)}, "model_node")
        assert isinstance(result, tuple) and np.array_equal(result[0], outputs[0])
