"""Frames with a deferred image: converted on first access of ``image``, once, whichever threads ask; the size
and ``replace`` never convert."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoflow.core.frame import DeferredImage, Frame, Label, Rect


class Conversion:
    """A converter that counts its calls and takes a while (so concurrent callers overlap)."""

    def __init__(self, shape: tuple[int, int, int] = (4, 6, 3), *, fail_first: bool = False):
        self.shape = shape
        self.calls = 0
        self.fail_first = fail_first

    def __call__(self) -> np.ndarray:
        self.calls += 1
        time.sleep(0.02)
        if self.fail_first and self.calls == 1:
            raise RuntimeError("conversion failed (on purpose)")
        return np.full(self.shape, self.calls, np.uint8)


def _frame(image: object) -> Frame:
    return Frame(image, "cam", 7, (1, 2), stream_uri="file:///c.mp4", t_produced=3.0)


def test_a_deferred_image_converts_once_for_every_thread() -> None:
    convert = Conversion()
    frame = _frame(DeferredImage(convert, convert.shape))
    start, seen = threading.Barrier(8), []

    def read() -> None:
        start.wait()
        seen.append(frame.image)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert convert.calls == 1 and len(seen) == 8
    assert all(image is seen[0] for image in seen) and frame.pixels.converted


def test_size_and_replace_do_not_convert() -> None:
    convert = Conversion((720, 1280, 3))
    deferred = DeferredImage(convert, convert.shape)
    frame = _frame(deferred)
    cached = frame.replace(is_cached=True)
    assert (frame.width, frame.height) == (1280, 720) and (cached.width, cached.height) == (1280, 720)
    assert cached.pixels is deferred and convert.calls == 0 and not deferred.converted
    assert cached.image is frame.image and convert.calls == 1  # the repeat shares the one conversion


def test_a_failed_conversion_is_tried_again() -> None:
    convert = Conversion(fail_first=True)
    frame = _frame(DeferredImage(convert, convert.shape))
    with pytest.raises(RuntimeError, match="on purpose"):
        _ = frame.image
    assert int(frame.image[0, 0, 0]) == 2 and convert.calls == 2


def test_replace_names_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="Frame has no field 'colour'"):
        _frame(np.zeros((2, 2, 3), np.uint8)).replace(colour=1)


_overlays = st.lists(st.one_of(
    st.builds(Label, st.text(max_size=8), st.floats(0, 1), st.floats(0, 1)),
    st.builds(Rect, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
), max_size=3).map(tuple)


@given(seq=st.integers(0, 2**40), cached=st.booleans(), overlays=_overlays, deferred=st.booleans(),
       new_image=st.booleans())
def test_replace_keeps_every_other_field(seq: int, cached: bool, overlays: tuple, deferred: bool,
                                         new_image: bool) -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    pixels = DeferredImage(lambda: image, image.shape) if deferred else image
    frame = _frame(pixels)
    other = np.ones((5, 5, 3), np.uint8)
    changes: dict[str, object] = {"seq": seq, "is_cached": cached, "overlays": overlays}
    if new_image:
        changes["image"] = other
    out = frame.replace(**changes)
    assert (out.seq, out.is_cached, out.overlays) == (seq, cached, overlays)
    kept = (out.stream_id, out.capture_time, out.stream_uri, out.t_produced)
    assert kept == ("cam", (1, 2), "file:///c.mp4", 3.0)
    assert out.pixels is (other if new_image else pixels)
    assert out.image is (other if new_image else image)
