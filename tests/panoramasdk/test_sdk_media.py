"""panoramasdk.media: image identity, metadata, overlays reaching the output."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import panoramasdk
from panoflow.core.frame import Frame, Label, Rect

if TYPE_CHECKING:
    from tests.panoramasdk.harness import Harness


def get_one(harness: Harness) -> tuple[panoramasdk.node, panoramasdk.media, Frame]:
    node = panoramasdk.node()
    sent = harness.push("cam1")
    return node, node.inputs.video_in.get()[0], sent


def test_metadata(harness: Harness) -> None:
    _, stream, _ = get_one(harness)
    assert stream.stream_id == "cam1" and stream.stream_uri == "rtsp://cam1"
    assert stream.time_stamp == (1700000000, 250000)
    assert stream.is_cached is False


def test_image_identity_and_in_place_drawing_reaches_output(harness: Harness) -> None:
    node, stream, sent = get_one(harness)
    assert stream.image is stream.image
    assert np.array_equal(stream.image, sent.image) and stream.image.flags.writeable
    stream.image[0:2, 0:2] = 255  # as cv2.rectangle(stream.image, ...) does
    node.outputs.video_out.put([stream])
    out = harness.hdmi.get(timeout=5)[1]
    assert out.image[0, 0, 0] == 255 and out.image.shape == sent.image.shape
    # the pixels crossed once (into shared memory); the put sent none back
    assert harness.server is not None and harness.server.pool.copies == 1


def test_image_setter(harness: Harness) -> None:
    node, stream, sent = get_one(harness)
    replacement = np.full_like(sent.image, 7)
    stream.image = replacement
    assert stream.image is replacement
    node.outputs.video_out.put([stream])
    out = harness.hdmi.get(timeout=5)[1].image
    assert np.array_equal(out, replacement) and out.dtype == replacement.dtype
    with pytest.raises(TypeError):
        stream.image = "not an image"


def test_overlays_reach_output_in_call_order(harness: Harness) -> None:
    node, stream, sent = get_one(harness)
    stream.add_rect(0, 0, 1, 1)
    stream.add_label("person 0.93", np.float32(0.25), np.float64(0.5))
    stream.add_rect(np.int64(0), 0.1, 0.5, 1.0)
    node.outputs.video_out.put([stream])
    out = harness.hdmi.get(timeout=5)[1]
    assert out.overlays == (Rect(0, 0, 1, 1), Label("person 0.93", 0.25, 0.5), Rect(0, 0.1, 0.5, 1.0))
    assert np.array_equal(out.image, sent.image) and sent.overlays == ()


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_coordinates_outside_unit_range(harness: Harness, bad: float) -> None:
    _, stream, _ = get_one(harness)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stream.add_label("x", bad, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stream.add_rect(0, 0, bad, 1)


def test_argument_types(harness: Harness) -> None:
    _, stream, _ = get_one(harness)
    with pytest.raises(TypeError, match="str"):
        stream.add_label(3, 0.5, 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="number"):
        stream.add_label("x", "0.5", 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="number"):
        stream.add_rect(0, 0, None, 1)  # type: ignore[arg-type]


def test_parameter_get_is_repeatable(harness: Harness) -> None:
    node = panoramasdk.node()
    assert node.inputs.threshold.get() == node.inputs.threshold.get(timeout=5) == 0.5


def test_media_from_bare_array() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    m = panoramasdk.media(image)
    assert m.image is image and isinstance(m.time_stamp[0], int)
    with pytest.raises(TypeError):
        panoramasdk.media("nope")
