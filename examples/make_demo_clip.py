"""Write the demo clip: 10 s of signs with text drifting over a gradient, H.264 in MP4, made with PyAV and
Pillow (nothing is downloaded)."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIGNS = [("PANOFLOW 2026", 64, (0.08, 0.18)), ("edge vision", 48, (0.55, 0.55)), ("EXIT 7", 56, (0.15, 0.75))]


def make_clip(path: Path, *, frames: int = 300, size: tuple[int, int] = (1280, 720), fps: int = 30) -> Path:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 160 // w) + 40, (yy * 120 // h) + 60, ((xx + yy) * 100 // (w + h)) + 80], axis=-1)
    background = Image.fromarray(base.astype(np.uint8), "RGB")
    fonts = {px: ImageFont.load_default(size=px) for _, px, _ in SIGNS}
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "x264-params": f"keyint={fps}:sliced-threads=0"}
        for i in range(frames):
            img = background.copy()
            draw = ImageDraw.Draw(img)
            for n, (text, px, (fx, fy)) in enumerate(SIGNS):
                dx = int(120 * np.sin(2 * np.pi * (i / frames + n / 3)))
                x, y = int(fx * w) + dx, int(fy * h)
                box = draw.textbbox((x, y), text, font=fonts[px])
                draw.rectangle((box[0] - 16, box[1] - 12, box[2] + 16, box[3] + 12), fill=(245, 245, 235))
                draw.text((x, y), text, font=fonts[px], fill=(20, 20, 20))
            frame = av.VideoFrame.from_image(img)
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
