"""Drive the RTSP decoding thread without a network: a raw H.264 clip's access units through the real
:class:`~panoflow.plugins.rtsp.decode.Intake`, queue and
:class:`~panoflow.plugins.rtsp.decode.FrameDecoder`."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import av
import numpy as np

from panoflow.core.frame import Frame
from panoflow.plugins.rtsp.decode import FrameDecoder, Intake, UnitQueue


def access_units(path: Path) -> list[tuple[bytes, bool]]:
    """(Annex B bytes, keyframe) for every coded picture of a raw ``.h264`` clip."""
    with av.open(str(path)) as container:
        return [(bytes(p), bool(p.is_keyframe)) for p in container.demux(video=0) if p.size]


def decode_units(path: Path, *, expect: int, decoder: str = "auto", keyframes_only: bool = False) -> tuple[
        list[Frame], FrameDecoder, Intake]:
    """Offer every unit of ``path`` as a camera session would, and decode until ``expect`` frames came out."""
    frames: list[Frame] = []
    done = threading.Event()

    def emit(frame: Frame) -> bool:
        frames.append(frame)
        if len(frames) >= expect:
            done.set()
        return True

    queue = UnitQueue(256)
    dec = FrameDecoder(stream_id="cam", stream_uri="rtsp://cam/x", emit=emit, downscale=None,
                       decoder=decoder, keyframes_only=keyframes_only)
    intake = Intake(queue, dec.need_keyframe, keyframes_only=keyframes_only)
    intake.restart("h264")
    for data, key in access_units(path):
        intake.offer(data, keyframe=key, intact=True, wall=time.time())
    worker = threading.Thread(target=dec.run, args=(queue,), daemon=True)
    worker.start()
    done.wait(60)
    time.sleep(0.2)  # anything more that would (wrongly) come out
    dec.stop.set()
    worker.join(10)
    return frames, dec, intake


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


class SlowConsumer:
    """A source's ``emit`` into a real ``latest`` inbox, and an application thread that takes a frame every
    ``1 / fps`` seconds and reads its image (as an app's ``get()`` does). ``fps`` may change while it runs."""

    def __init__(self, fps: float, *, stop_after: float | None = None):
        from panoflow.core.bus import Inbox

        self.fps = fps
        self.inbox: Inbox[Frame] = Inbox("app", "latest", ["cam"])
        self.taken: list[Frame] = []
        self.images: list[np.ndarray] = []
        self.stop = threading.Event()
        self.stop_after = stop_after  # seconds after the first frame
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def __call__(self, frame: Frame) -> bool:
        self.inbox.put("cam", frame)
        return not self.stop.is_set()

    def _run(self) -> None:
        first: float | None = None
        while not self.stop.is_set():
            try:
                _sid, frame = self.inbox.get(timeout=0.1)
            except TimeoutError:
                continue
            now = time.monotonic()
            first = now if first is None else first
            self.images.append(frame.image)
            self.taken.append(frame)
            if self.stop_after is not None and now - first >= self.stop_after:
                self.stop.set()
            self.stop.wait(max(0.0, 1.0 / self.fps - (time.monotonic() - now)))

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()

    @property
    def delivered(self) -> int:
        return self.inbox.stats.snapshot()["delivered"]
