"""Drive the RTSP decoding thread without a network: a raw H.264 clip's access units through the real
:class:`~panoflow.plugins.rtsp.decode.Intake`, queue and :class:`~panoflow.plugins.rtsp.decode.FrameDecoder`."""

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
