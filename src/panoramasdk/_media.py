"""``panoramasdk.media``: one camera frame as application code sees it."""

from __future__ import annotations

import numbers
import time
from typing import Any, SupportsFloat

from panoflow.core.frame import Frame, Label, Overlay, Rect

__all__ = ["media"]


def _coordinate(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number in [0, 1], got {type(value).__name__}")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 1] (relative to the image size), got {number!r}")
    return number


class media:
    """One frame of one stream. Built by the SDK from a :class:`~panoflow.core.frame.Frame` (or, for tests and
    tools, from a bare image array).

    ``image`` is the frame's own array, the same object on every access: drawing on it in place shows on the
    output. ``add_label`` and ``add_rect`` attach overlays, drawn later by the sink (as on the device); coordinates
    are relative to the image size, in [0, 1].
    """

    __slots__ = ("_frame", "_image", "_overlays")

    def __init__(self, frame: Frame | Any):
        if not isinstance(frame, Frame):
            if not hasattr(frame, "shape"):
                raise TypeError(f"media needs a Frame or an image array, got {type(frame).__name__}")
            now = time.time_ns() // 1000
            frame = Frame(image=frame, stream_id="", seq=0, capture_time=(now // 1_000_000, now % 1_000_000))
        self._frame: Frame = frame
        self._image: Any = frame.image
        self._overlays: list[Overlay] = []

    def __repr__(self) -> str:
        shape = getattr(self._image, "shape", "?")
        return f"<panoramasdk.media stream_id={self.stream_id!r} seq={self._frame.seq} image={shape}>"

    @property
    def image(self) -> Any:
        """The frame's ``HxWx3 uint8`` BGR array (not a copy)."""
        return self._image

    @image.setter
    def image(self, value: Any) -> None:
        if not hasattr(value, "shape"):
            raise TypeError(f"media.image must be an image array, got {type(value).__name__}")
        self._image = value

    @property
    def is_cached(self) -> bool:
        """True when this frame was already delivered by an earlier ``get`` (multi-camera ports)."""
        return self._frame.is_cached

    @property
    def stream_id(self) -> str:
        return self._frame.stream_id

    @property
    def stream_uri(self) -> str:
        return self._frame.stream_uri

    @property
    def time_stamp(self) -> tuple[int, int]:
        """Capture time as ``(seconds, microseconds)`` since the epoch."""
        sec, usec = self._frame.capture_time
        return int(sec), int(usec)

    def add_label(self, text: str, x: SupportsFloat, y: SupportsFloat) -> None:
        """Attach ``text`` at (``x``, ``y``), relative to the image size."""
        if not isinstance(text, str):
            raise TypeError(f"add_label text must be a str, got {type(text).__name__}")
        self._overlays.append(Label(text, _coordinate("add_label x", x), _coordinate("add_label y", y)))

    def add_rect(
        self, left: SupportsFloat, top: SupportsFloat, right: SupportsFloat, bottom: SupportsFloat
    ) -> None:
        """Attach a rectangle with corners relative to the image size."""
        self._overlays.append(
            Rect(
                _coordinate("add_rect left", left),
                _coordinate("add_rect top", top),
                _coordinate("add_rect right", right),
                _coordinate("add_rect bottom", bottom),
            )
        )

    def to_frame(self) -> Frame:
        """The frame to send downstream: same pixels (no copy), with the overlays added so far."""
        frame = self._frame
        changes: dict[str, Any] = {}
        if self._overlays:
            changes["overlays"] = frame.overlays + tuple(self._overlays)
        if self._image is not frame.image:
            changes["image"] = self._image
        return frame.replace(**changes) if changes else frame
