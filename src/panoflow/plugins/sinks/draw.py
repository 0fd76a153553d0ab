"""Overlay rendering and tiling, shared by the display and record sinks.

Everything here runs in a sink's worker thread, never on the event loop. Overlays are drawn on a copy (or on
the tiled canvas, itself a new array): a frame's ``image`` is never written to. Coordinates of :class:`Label`
and
:class:`Rect` are relative to the picture, in [0, 1].
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from panoflow.core.frame import Frame, Label, Overlay, Rect

__all__ = [
    "DEFAULT_SIZE",
    "RECT_COLOR",
    "RECT_THICKNESS",
    "compose",
    "draw_overlays",
    "encode_jpeg",
    "grid_shape",
    "host_array",
    "output_size",
]

#: output size when several streams are tiled and the user gave none
DEFAULT_SIZE = (1280, 720)
RECT_COLOR = (0, 0, 255)  # BGR red
RECT_THICKNESS = 2
TEXT_COLOR = (255, 255, 255)

Region = tuple[int, int, int, int]  # x, y, width, height in canvas pixels


def host_array(image: Any) -> np.ndarray:
    """``image`` as a numpy array on the CPU (CuPy arrays are copied over; numpy ones are returned as they
    are)."""
    if isinstance(image, np.ndarray):
        return image
    get = getattr(image, "get", None)
    return np.asarray(get() if callable(get) else image)


def grid_shape(n: int) -> tuple[int, int]:
    """``(columns, rows)`` of the smallest near-square grid holding ``n`` tiles: 1 -> 1x1, 2 -> 2x1, 4 ->
    2x2."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return cols, max(1, math.ceil(n / cols))


def output_size(frames: Sequence[Frame], size: tuple[int, int] | None) -> tuple[int, int]:
    """The composed picture's ``(width, height)``: ``size`` if given, else one stream's own size, else
    :data:`DEFAULT_SIZE`."""
    if size is not None:
        return size
    if len(frames) == 1:
        return frames[0].width, frames[0].height
    return DEFAULT_SIZE


def compose(frames: Sequence[Frame], size: tuple[int, int] | None = None) -> np.ndarray:
    """One BGR picture of ``size`` showing every frame (grid of aspect-preserving tiles) with its overlays.

    A single frame at its own size with no overlays comes back as its own image (read-only use: no copy).
    """
    width, height = output_size(frames, size)
    if len(frames) == 1 and (frames[0].width, frames[0].height) == (width, height):
        frame = frames[0]
        image = host_array(frame.image)
        if not frame.overlays:
            return image
        canvas = np.array(image, copy=True, order="C")
        draw_overlays(canvas, frame.overlays, (0, 0, width, height))
        return canvas
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    cols, rows = grid_shape(len(frames))
    tile_w, tile_h = width // cols, height // rows
    for i, frame in enumerate(frames):
        tile = ((i % cols) * tile_w, (i // cols) * tile_h, tile_w, tile_h)
        region = _fit_into(canvas, host_array(frame.image), tile)
        draw_overlays(canvas, frame.overlays, region)
    return canvas


def _fit_into(canvas: np.ndarray, image: np.ndarray, tile: Region) -> Region:
    """Scale ``image`` (keeping its aspect ratio) into the centre of ``tile``; return where it landed."""
    tx, ty, tw, th = tile
    ih, iw = image.shape[:2]
    scale = min(tw / iw, th / ih)
    w, h = max(1, min(tw, round(iw * scale))), max(1, min(th, round(ih * scale)))
    x, y = tx + (tw - w) // 2, ty + (th - h) // 2
    if (w, h) == (iw, ih):
        canvas[y : y + h, x : x + w] = image
    else:  # channel order does not matter to a resize: BGR passes through as "RGB"
        src = _pil(image)
        canvas[y : y + h, x : x + w] = np.asarray(src.resize((w, h), Image.Resampling.BILINEAR))
    return x, y, w, h


def _pil(image: np.ndarray, rawmode: str = "RGB") -> Image.Image:
    """A Pillow RGB image of an ``HxWx3`` uint8 array (``rawmode="BGR"`` swaps channels while unpacking)."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return Image.frombuffer("RGB", (width, height), image, "raw", rawmode, 0, 1)


def draw_overlays(canvas: np.ndarray, overlays: Iterable[Overlay], region: Region) -> None:
    """Draw ``overlays`` (relative to ``region``) into ``canvas`` in place: rects red, 2 px; labels white text
    with a dark outline. Anything outside the region is clipped."""
    for overlay in overlays:
        if isinstance(overlay, Rect):
            _draw_rect(canvas, overlay, region)
        elif isinstance(overlay, Label):
            _draw_label(canvas, overlay, region)


def _clamp01(v: float) -> float:
    return 0.0 if not v > 0 else 1.0 if v > 1 else float(v)  # NaN -> 0


def _draw_rect(canvas: np.ndarray, rect: Rect, region: Region) -> None:
    rx, ry, rw, rh = region
    xs = sorted(_clamp01(v) for v in (rect.left, rect.right))
    ys = sorted(_clamp01(v) for v in (rect.top, rect.bottom))
    x0, x1 = rx + round(xs[0] * (rw - 1)), rx + round(xs[1] * (rw - 1)) + 1
    y0, y1 = ry + round(ys[0] * (rh - 1)), ry + round(ys[1] * (rh - 1)) + 1
    t = RECT_THICKNESS
    canvas[y0 : min(y0 + t, y1), x0:x1] = RECT_COLOR
    canvas[max(y1 - t, y0) : y1, x0:x1] = RECT_COLOR
    canvas[y0:y1, x0 : min(x0 + t, x1)] = RECT_COLOR
    canvas[y0:y1, max(x1 - t, x0) : x1] = RECT_COLOR


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def font_size_for(height: int) -> int:
    """Text height used for labels in a picture (or tile) ``height`` pixels high."""
    return max(12, round(height / 30))


def _draw_label(canvas: np.ndarray, label: Label, region: Region) -> None:
    if not label.text:
        return
    rx, ry, rw, rh = region
    font = _font(font_size_for(rh))
    x = rx + round(_clamp01(label.x) * (rw - 1))
    y = ry + round(_clamp01(label.y) * (rh - 1))
    left, top, right, bottom = font.getbbox(label.text, stroke_width=1)
    # patch of the canvas the text covers, clipped to the region: draw there with Pillow, copy back
    px0, py0 = max(rx, x + int(left)), max(ry, y + int(top))
    px1, py1 = min(rx + rw, x + int(right) + 1), min(ry + rh, y + int(bottom) + 1)
    if px1 <= px0 or py1 <= py0:
        return
    patch = _pil(canvas[py0:py1, px0:px1])
    ImageDraw.Draw(patch).text(
        (x - px0, y - py0), label.text, fill=TEXT_COLOR, font=font, stroke_width=1, stroke_fill=(0, 0, 0)
    )
    canvas[py0:py1, px0:px1] = np.asarray(patch)


def encode_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of a BGR ``image`` (Pillow swaps the channels while unpacking: no extra numpy pass)."""
    out = io.BytesIO()
    _pil(host_array(image), "BGR").save(out, format="JPEG", quality=quality)
    return out.getvalue()
