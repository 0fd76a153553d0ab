"""The display sink: overlays on a copy, tiling, and the composed picture; plus the null sink."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from panoflow.core.frame import Frame, Label, Rect
from panoflow.plugins.sinks import DisplaySink, NullSink
from panoflow.plugins.sinks.draw import RECT_COLOR, compose, grid_shape
from tests.support.sources_and_sinks import feed_sink, frame

pytestmark = pytest.mark.anyio

RED = np.array(RECT_COLOR, dtype=np.uint8)


def _gray(w: int, h: int, level: int = 90) -> np.ndarray:
    return np.full((h, w, 3), level, dtype=np.uint8)


async def test_rect_and_label_are_drawn_on_a_copy() -> None:
    image = _gray(320, 240)
    before = image.copy()
    overlays = (Rect(0.25, 0.25, 0.75, 0.75), Label("hello", 0.05, 0.8))
    sink = DisplaySink(node_id="hdmi", options={})
    await feed_sink(sink, [{"cam": frame(image, overlays=overlays)}])
    out = sink.last_output
    assert out is not None and out.shape == (240, 320, 3)
    assert np.array_equal(image, before), "the source image was drawn into"
    assert not np.shares_memory(out, image)
    # the rectangle: 2 px red edges at 25%..75% of (w-1, h-1), inside untouched
    x0, x1, y0, y1 = round(0.25 * 319), round(0.75 * 319), round(0.25 * 239), round(0.75 * 239)
    assert (out[y0, x0 : x1 + 1] == RED).all() and (out[y0 + 1, x0 : x1 + 1] == RED).all()
    assert (out[y1, x0 : x1 + 1] == RED).all() and (out[y0 : y1 + 1, x1] == RED).all()
    assert (out[y0 + 2, x0 + 2] == 90).all() and (out[(y0 + y1) // 2, (x0 + x1) // 2] == 90).all()
    # the label: white text pixels appear just below/right of (5%, 80%)
    lx, ly = round(0.05 * 319), round(0.8 * 239)
    patch = out[ly : ly + 20, lx : lx + 60]
    assert (patch > 200).all(axis=2).sum() > 20
    assert sink.frames_in == 1 and sink.outputs == 1


async def test_frame_without_overlays_passes_through_unchanged() -> None:
    image = _gray(200, 100)
    sink = DisplaySink(node_id="hdmi", options={})
    await feed_sink(sink, [{"cam": frame(image)}])
    assert sink.last_output is image  # read-only use: no copy needed


async def test_out_of_range_and_inverted_overlays_are_clipped() -> None:
    image = _gray(160, 120)
    overlays = (
        Rect(1.5, -1.0, 0.5, 2.0),
        Label("edge", 0.99, 0.99),
        Label("", 0.5, 0.5),
        Rect(0.5, 0.5, 0.5, 0.5),
    )
    out = compose([frame(image, overlays=overlays)])
    assert out.shape == image.shape and (out[0, 80:] == RED).all()


@pytest.mark.parametrize(
    ("n", "grid"), [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)), (9, (3, 3))]
)
def test_grid_shape(n: int, grid: tuple[int, int]) -> None:
    assert grid_shape(n) == grid


async def test_tiles_one_two_and_four_streams() -> None:
    levels = [40, 100, 160, 220]
    frames = {f"cam{i}": frame(_gray(320, 240, lvl), f"cam{i}") for i, lvl in enumerate(levels)}
    for n, expected_centres in [
        (2, [(320, 180), (960, 180)]),  # 2x1 grid of 640x720 tiles; 4:3 pictures are letterboxed vertically
        (4, [(320, 180), (960, 180), (320, 540), (960, 540)]),
    ]:
        sink = DisplaySink(node_id="hdmi", options={})
        await feed_sink(sink, [dict(list(frames.items())[:n])])
        out = sink.last_output
        assert out is not None and out.shape == (720, 1280, 3)
        for (x, y), lvl in zip(expected_centres, levels):
            assert (out[y, x] == lvl).all()
        assert sink.streams == tuple(list(frames)[:n])
    sink = DisplaySink(node_id="hdmi", options={"size": "640x360"})
    await feed_sink(sink, [{"cam0": frames["cam0"]}])
    assert sink.last_output is not None and sink.last_output.shape == (360, 640, 3)
    assert (sink.last_output[:, :80] == 0).all() and (sink.last_output[:, 80] == 40).all()  # 4:3 pillarboxed
    assert (sink.last_output[180, 320] == 40).all()


async def test_tiled_overlays_land_in_their_tile() -> None:
    a = frame(_gray(320, 240), "a", overlays=(Rect(0.0, 0.0, 1.0, 1.0),))
    b = frame(_gray(320, 240), "b")
    out = compose([a, b], (1280, 480))  # 2 tiles of 640x480, each filled exactly (same aspect)
    assert (out[0, 0:640] == RED).all() and (out[479, 0:640] == RED).all()
    assert (out[0, 641:] == 90).all() and not (out[:, 640:] == RED).all(axis=2).any()


async def test_a_stream_missing_from_a_batch_keeps_its_last_tile() -> None:
    sink = DisplaySink(node_id="hdmi", options={})
    first = {"a": frame(_gray(320, 240, 10), "a"), "b": frame(_gray(320, 240, 200), "b")}
    await feed_sink(sink, [first, {"a": frame(_gray(320, 240, 30), "a", 1)}])
    assert sink.streams == ("a", "b") and sink.outputs == 2
    out = sink.last_output
    assert out is not None and (out[360, 320] == 30).all() and (out[360, 960] == 200).all()


async def test_compose_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    sink = DisplaySink(node_id="hdmi", options={})
    original = sink._process

    def spy(frames: list[Frame]) -> np.ndarray:
        threads.append(threading.current_thread())
        return original(frames)

    monkeypatch.setattr(sink, "_process", spy)
    await feed_sink(sink, [{"cam": frame(_gray(64, 64))}])
    assert threads and threading.main_thread() not in threads


def test_bad_sink_options_are_value_errors() -> None:
    with pytest.raises(
        ValueError, match="unknown option 'fullscreen'.*valid options: preview, preview_key, quality, size"
    ):
        DisplaySink(node_id="hdmi", options={"fullscreen": "1"})
    with pytest.raises(ValueError, match="HOST:PORT"):
        DisplaySink(node_id="hdmi", options={"preview": "nowhere"})
    with pytest.raises(ValueError, match="unknown option"):
        NullSink(node_id="n", options={"x": 1})


async def test_null_sink_counts() -> None:
    sink = NullSink(node_id="n", options={})
    img = _gray(16, 16)
    await feed_sink(sink, [{"a": frame(img, "a"), "b": frame(img, "b")}, {"a": frame(img, "a", 1)}])
    assert sink.frames == 3 and sink.per_stream == {"a": 2, "b": 1}
