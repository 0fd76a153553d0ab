"""A camera's decode budget: BGR conversion only for the frames someone takes, and which pictures to decode.

:class:`PictureConverter` turns a decoded picture into a frame's image. By default (``?convert=demand``) it
hands out a :class:`~panoflow.core.frame.DeferredImage`: the picture is converted to BGR the first time a
consumer reads ``frame.image`` (the application's request for frames, a sink), so a frame the ``latest``
policy replaces before the application takes it is never converted. ``?convert=eager`` converts every picture
in the decoding thread, as panoflow did before (kept for comparison: benchmarks/decode_budget.py). Pictures
still in device memory (a hardware decoder's surfaces) are always converted at once: holding them would pin
the decoder's few surfaces. The converter counts its conversions (``conversions`` in the sources' ``stats()``,
``panoflow_source_conversions_total``).

:class:`KeyframeGate` decides, coded picture by coded picture, what reaches the decoder: everything
(``?decode=all``), only keyframes (``?decode=keyframes``), or ``?decode=auto``, which switches at a keyframe:

* to keyframes only when, over the last ``auto_window`` seconds, the consumers took fewer than
  ``auto_below`` of the decoded pictures *and* no more than 0.8 of the keyframe rate (so an application never
  gets fewer frames per second than it was taking: a 5 fps app on a 30 fps camera with a 1 s GOP stays on
  every picture);
* back to every picture when, over a window, the consumers took at least 0.95 of the keyframes (they wait
  for each one: demand rose).

"Took" is the conversions: a frame any consumer read. Each change is logged once (``decode_mode_changed``,
with the figures that decided it and the ``effective_fps`` it leads to); ``decoding`` (what is decoded now)
and ``effective_fps`` (pictures per second since the last change) are in ``stats()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import structlog
from av.video.reformatter import VideoReformatter

from panoflow.core.frame import DeferredImage

__all__ = [
    "AUTO_DOWN_KEYFRAME_SHARE",
    "AUTO_UP_TAKEN_SHARE",
    "BgrConverter",
    "KeyframeGate",
    "PictureConverter",
]

log = structlog.get_logger(__name__)

#: ``decode=auto`` goes to keyframes only when the consumers took at most this share of the keyframe rate...
AUTO_DOWN_KEYFRAME_SHARE = 0.8
#: ...and back to every picture when, in keyframes mode, they took at least this share of the keyframes.
AUTO_UP_TAKEN_SHARE = 0.95
#: pixel formats of pictures that are still in a device's memory (hardware decoders' surfaces)
_DEVICE_FORMATS = frozenset({"cuda", "vaapi", "vdpau", "qsv", "drm_prime", "d3d11", "d3d12", "dxva2_vld",
                             "videotoolbox_vld", "vulkan", "mediacodec", "opencl"})


class BgrConverter:
    """Decoded pictures to BGR ``ndarray``s at the least CPU per frame, for one caller at a time.

    ``picture.to_ndarray(format="bgr24")`` builds a new swscale context (with a pool of threads) for every
    frame and copies the converted picture into a fresh array. This keeps one context (reused while the size
    stays the same), converts in the calling thread by default (a camera's decoder thread is already one of
    many: hand-offs to helper threads only add wake-ups; ``threads=0`` lets swscale use its pool, for a file
    read as fast as possible), and hands out the converted picture's own buffer as the array (writable; it
    keeps the buffer alive), so nothing is copied. Same pixels as ``to_ndarray`` (the source tests compare
    them bit for bit; benchmarks/source_path.py measures the CPU).
    """

    def __init__(self, threads: int = 1) -> None:
        self._reformatter = VideoReformatter()
        # 0: swscale's own choice (a pool per context; for throughput, not live cameras)
        self._threads = threads

    def __call__(self, picture: av.VideoFrame, width: int | None = None, height: int | None = None,
                 interpolation: str | None = None) -> np.ndarray:
        out = self._reformatter.reformat(picture, width=width, height=height, format="bgr24",
                                         interpolation=interpolation, threads=self._threads)
        plane = out.planes[0]
        w, h = out.width, out.height
        if plane.line_size != w * 3:  # rows padded: a strided view would surprise OpenCV; copy instead
            return out.to_ndarray()
        return np.frombuffer(memoryview(plane), np.uint8, count=h * w * 3).reshape(h, w, 3)


class PictureConverter:
    """A stream's decoded pictures to frame images: deferred (converted on first use) unless ``eager``.

    Thread-safe: consumers in any thread may convert; one lock per stream serialises them on its swscale
    context. ``conversions`` counts pictures converted (each at most once).
    """

    def __init__(self, *, eager: bool = False, threads: int = 1):
        self.eager = eager
        self._bgr = BgrConverter(threads)
        self._lock = threading.Lock()
        self.conversions = 0

    def image(self, picture: av.VideoFrame, size: tuple[int, int] | None = None,
              interpolation: str | None = None) -> Any:
        """``picture`` as a frame's image: a :class:`DeferredImage` of ``size`` (``(width, height)``; the
        picture's own when None), or the BGR array itself when eager or when the picture is in device
        memory."""
        if self.eager or picture.format.name in _DEVICE_FORMATS:
            return self._convert(picture, size, interpolation)
        width, height = size if size is not None else (picture.width, picture.height)
        return DeferredImage(lambda: self._convert(picture, size, interpolation), (height, width, 3), "uint8")

    def _convert(self, picture: av.VideoFrame, size: tuple[int, int] | None,
                 interpolation: str | None) -> Any:
        width, height = size if size is not None else (None, None)
        with self._lock:
            image = self._bgr(picture, width, height, interpolation)
            self.conversions += 1
        return image


class KeyframeGate:
    """Which coded pictures of one stream reach its decoder; see the module docstring for ``auto``.

    Whoever filters the stream's coded pictures (the file source's decoder, an RTSP camera's intake) calls
    :meth:`admit` for each, in order; a change of mode happens only at a keyframe, so the decoder always
    restarts on a clean reference chain. :meth:`bind` tells it where the decoded and taken counts are.
    """

    def __init__(self, mode: str = "all", *, below: float = 0.5, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, logger: Any = None):
        if mode not in ("all", "keyframes", "auto"):
            raise ValueError(f"unknown decode mode {mode!r}: expected all, keyframes or auto")
        self.mode = mode
        self.below = below
        self.window = window
        self.keyframes_only = mode == "keyframes"
        self.log = logger if logger is not None else log
        self._clock = clock
        self._decoded: Callable[[], int] = lambda: 0
        self._taken: Callable[[], int] = lambda: 0
        self.keyframes = 0  # keyframes seen (decoded or not)
        self.skipped = 0  # non-keyframes left out
        self.changes = 0
        self._window_start: tuple[float, int, int, int] | None = None  # (time, decoded, taken, keyframes)
        self._since: tuple[float, int] | None = None  # the last change: (time, decoded then)
        self._all_fps: float | None = None  # pictures per second decoded in the last window of every picture

    def bind(self, *, decoded: Callable[[], int], taken: Callable[[], int]) -> None:
        """Where to read the pictures decoded and the frames consumers took (both counts only grow)."""
        self._decoded, self._taken = decoded, taken

    @property
    def decoding(self) -> str:
        """What is decoded now: ``all`` or ``keyframes``."""
        return "keyframes" if self.keyframes_only else "all"

    def admit(self, keyframe: bool) -> bool:
        """Whether to decode this coded picture (False: leave it out, counted in ``skipped``)."""
        if keyframe:
            self.keyframes += 1
            if self.mode == "auto":
                self._decide()
            return True
        if self.keyframes_only:
            self.skipped += 1
            return False
        return True

    def rate_since_change(self) -> tuple[float, int] | None:
        """``(time, pictures decoded then)`` of the last change of mode, or None before the first."""
        return self._since

    def _decide(self) -> None:
        now = self._clock()
        decoded, taken = self._decoded(), self._taken()
        if self._window_start is None:
            self._window_start = (now, decoded, taken, self.keyframes)
            return
        t0, d0, k0, kf0 = self._window_start
        elapsed = now - t0
        if elapsed < self.window:
            return
        self._window_start = (now, decoded, taken, self.keyframes)
        n_decoded, n_taken, n_keys = decoded - d0, taken - k0, self.keyframes - kf0
        if n_decoded <= 0:
            return
        taken_fps, key_fps = n_taken / elapsed, n_keys / elapsed
        if not self.keyframes_only:
            self._all_fps = n_decoded / elapsed
            switch = n_taken < self.below * n_decoded and taken_fps <= AUTO_DOWN_KEYFRAME_SHARE * key_fps
        else:
            switch = n_taken >= AUTO_UP_TAKEN_SHARE * n_decoded
        if not switch:
            return
        self.keyframes_only = not self.keyframes_only
        self.changes += 1
        self._since = (now, decoded)
        # the rate it decodes at from now on: the keyframes', or what every picture gave last time
        effective = key_fps if self.keyframes_only else self._all_fps
        self.log.info("decode_mode_changed", decoding=self.decoding, window_s=round(elapsed, 2),
                      decoded=n_decoded, taken=n_taken, taken_fps=round(taken_fps, 2),
                      keyframe_fps=round(key_fps, 2), decoded_fps=round(n_decoded / elapsed, 2),
                      effective_fps=round(effective, 2) if effective is not None else None)

    def stats(self) -> dict[str, Any]:
        return {"decode": self.mode, "decoding": self.decoding, "decode_mode_changes": self.changes}
