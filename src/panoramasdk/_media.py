"""``panoramasdk.media``: one camera frame as application code sees it."""

from __future__ import annotations

import numbers
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["media"]


def _coordinate(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number in [0, 1], got {type(value).__name__}")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 1] (relative to the image size), got {number!r}")
    return number


class media:
    """One frame of one stream, as the runtime delivered it (or, for tests and tools, built from an image
    array).

    ``image`` is the frame's own array, the same object on every access: drawing on it in place shows on the
    output. ``add_label`` and ``add_rect`` attach overlays, drawn later by the output (as on the device);
    coordinates are relative to the image size, in [0, 1].
    """

    __slots__ = ("_image", "_info", "_overlays", "_segment_image")

    def __init__(self, image: Any, info: Optional[Dict[str, Any]] = None):
        if not hasattr(image, "shape"):
            raise TypeError(f"media needs an image array, got {type(image).__name__}")
        if info is None:
            now = time.time_ns() // 1000
            info = {"stream_id": "", "seq": 0, "capture_time": [now // 1_000_000, now % 1_000_000]}
        self._info: Dict[str, Any] = info
        self._image: Any = image
        self._segment_image: Any = image if "segment" in info else None
        self._overlays: List[List[Any]] = []

    def __repr__(self) -> str:
        shape = getattr(self._image, "shape", "?")
        return f"<panoramasdk.media stream_id={self.stream_id!r} seq={self._info.get('seq')} image={shape}>"

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
        return bool(self._info.get("is_cached", False))

    @property
    def stream_id(self) -> str:
        return str(self._info.get("stream_id", ""))

    @property
    def stream_uri(self) -> str:
        return str(self._info.get("stream_uri", ""))

    @property
    def time_stamp(self) -> Tuple[int, int]:
        """Capture time as ``(seconds, microseconds)`` since the epoch."""
        sec, usec = self._info.get("capture_time") or (0, 0)
        return int(sec), int(usec)

    def add_label(self, text: str, x: Any, y: Any) -> None:
        """Attach ``text`` at (``x``, ``y``), relative to the image size."""
        if not isinstance(text, str):
            raise TypeError(f"add_label text must be a str, got {type(text).__name__}")
        self._overlays.append(["label", text, _coordinate("add_label x", x), _coordinate("add_label y", y)])

    def add_rect(self, left: Any, top: Any, right: Any, bottom: Any) -> None:
        """Attach a rectangle with corners relative to the image size."""
        self._overlays.append([
            "rect",
            _coordinate("add_rect left", left),
            _coordinate("add_rect top", top),
            _coordinate("add_rect right", right),
            _coordinate("add_rect bottom", bottom),
        ])

    def to_wire(self) -> Dict[str, Any]:
        """What ``put`` sends: the frame's identity, its overlays, and its pixels only when they are not the
        runtime's shared segment any more (the app assigned another array to ``image``)."""
        out = {k: v for k, v in self._info.items() if k != "segment"}
        out["overlays"] = self._overlays
        if self._segment_image is not None and self._image is self._segment_image:
            out["segment"] = self._info["segment"]
            out["shape"], out["dtype"] = list(self._image.shape), self._image.dtype.str
        else:
            import numpy as np

            out["image"] = np.asarray(self._image)
        return out
