"""The record sink writes an H.264 MP4 that PyAV reads back; plus the plugin hooks."""

from __future__ import annotations

from pathlib import Path

import anyio
import av
import numpy as np
import pytest

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame, Rect
from panoflow.core.plugins import build_plugins
from panoflow.plugins.sinks import DisplaySink, NullSink, RecordSink
from panoflow.plugins.sources import FileSource, TestPattern, TestSource, read_index
from tests.support.sources_and_sinks import feed_sink, frame

pytestmark = pytest.mark.anyio


def _probe(path: Path) -> tuple[int, tuple[int, int], list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        images = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return len(images), (stream.width, stream.height), images


async def test_record_single_stream_keeps_size_and_every_frame(tmp_path: Path) -> None:
    pattern = TestPattern((320, 240))
    images = [pattern.render(i) for i in range(24)]
    originals = [im.copy() for im in images]
    out = tmp_path / "sub" / "rec.mp4"
    sink = RecordSink(node_id="hdmi", options={"path": str(out), "fps": "24"})
    overlays = (Rect(0.5, 0.5, 0.9, 0.9),)
    await feed_sink(sink, [{"cam": frame(im, seq=i, overlays=overlays)} for i, im in enumerate(images)])
    count, size, decoded = _probe(out)
    assert (count, size) == (24, (320, 240)) and sink.frames_written == 24
    assert [read_index(im) for im in decoded] == list(range(24))
    assert all(np.array_equal(a, b) for a, b in zip(images, originals)), "overlays drawn into the source"

    # the rect's 2 px top edge (rows 120-121, x 160-287) survives compression as a redder line
    def redness(image: np.ndarray) -> float:
        row = image[120:122, 170:280].astype(int)
        return float((row[..., 2] - row[..., 1]).mean())

    assert redness(decoded[5]) > redness(originals[5]) + 60
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 24


async def test_record_tiles_several_streams_at_an_even_size(tmp_path: Path) -> None:
    out = tmp_path / "tiled.mp4"
    sink = RecordSink(node_id="hdmi", options={"path": str(out), "size": "641x361"})
    batches = [
        {
            sid: frame(np.full((240, 320, 3), 60 * k, np.uint8), sid, i)
            for k, sid in enumerate(("a", "b", "c"))
        }
        for i in range(10)
    ]
    await feed_sink(sink, batches)
    count, size, decoded = _probe(out)
    assert (count, size) == (10, (640, 360))
    assert abs(int(decoded[-1][270, 160, 0]) - 120) < 8  # third stream: bottom-left tile of a 2x2 grid


async def test_record_flushes_a_playable_file_when_cancelled(tmp_path: Path) -> None:
    out = tmp_path / "cancelled.mp4"
    sink = RecordSink(node_id="hdmi", options={"path": str(out)})
    inbox: Inbox[Frame] = Inbox("rec", "block(4)", ["cam"])
    pattern = TestPattern((160, 120))
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run, inbox)
        for i in range(8):
            await inbox.aput("cam", frame(pattern.render(i), seq=i))
        with anyio.fail_after(10):
            while sink.frames_written < 8:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    count, size, _ = _probe(out)
    assert (count, size) == (8, (160, 120))


def test_record_needs_a_path() -> None:
    with pytest.raises(ValueError, match="'path' is required"):
        RecordSink(node_id="hdmi", options={})
    with pytest.raises(ValueError, match="unknown option 'codec'"):
        RecordSink(node_id="hdmi", options={"path": "x.mp4", "codec": "vp9"})


def test_hooks_register_the_builtins() -> None:
    plugins = build_plugins(["panoflow.plugins.sources", "panoflow.plugins.sinks"], entry_points=False)
    assert dict(plugins.sources) == {"file": FileSource, "testsrc": TestSource}
    assert dict(plugins.sinks) == {"display": DisplaySink, "record": RecordSink, "null": NullSink}
