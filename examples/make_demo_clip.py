"""Write the demo clip: 10 s of a moving test pattern, H.264 in MP4, made with PyAV (nothing is downloaded)."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np


def make_clip(path: Path, *, frames: int = 300, size: tuple[int, int] = (1280, 720), fps: int = 30) -> Path:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 255 // (w + h))], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "x264-params": f"keyint={fps}:sliced-threads=0"}
        for i in range(frames):
            img = base.copy()
            x = int((i / frames) * (w - 160))
            img[h // 2 - 80: h // 2 + 80, x: x + 160] = (40, 200, 240)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "clip.mp4")
    if not target.exists():
        make_clip(target)
    print(target)
