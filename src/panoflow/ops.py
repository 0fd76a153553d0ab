"""Preprocessing helpers for model inputs, the same on the CPU (numpy) and the GPU (CuPy).

Every function takes numpy or CuPy arrays and returns an array of the same kind, so one pipeline serves both::

    from panoflow import ops
    x = ops.preprocess(frame.image, (224, 224), mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD)  # [1,3,224,224]
    scores, = node.call({"data": x}, "model_node")

Images are ``HxWxC`` (or ``NxHxWxC``) as panoflow delivers them: ``uint8``, BGR. The two implementations use
the same arithmetic (bilinear resize with half-pixel centres, as OpenCV's ``INTER_LINEAR`` and PyTorch's
``align_corners=False``; float32 throughout), so their results agree to float32 rounding.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "array_module",
    "batch",
    "convert_color",
    "hwc_to_nchw",
    "normalize",
    "preprocess",
    "resize",
    "to_numpy",
]

#: ImageNet statistics in RGB order, for pixels scaled to 0..1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Array = Any  # numpy.ndarray or cupy.ndarray


def array_module(array: Array) -> Any:
    """``numpy`` for numpy arrays (and anything else), ``cupy`` for CuPy arrays; never imports CuPy itself."""
    if isinstance(array, np.ndarray):
        return np
    top = type(array).__module__.partition(".")[0]
    return sys.modules.get(top, np) if top == "cupy" else np


def to_numpy(array: Array) -> np.ndarray:
    """A numpy array (copied from the GPU when ``array`` is a CuPy array)."""
    return array.get() if array_module(array) is not np else np.asarray(array)


def _axis_weights(xp: Any, src: int, dst: int) -> tuple[Array, Array, Array]:
    """For each output index along one axis: the two source indices and the weight of the second one."""
    scale = src / dst
    pos = (xp.arange(dst, dtype=xp.float32) + 0.5) * xp.float32(scale) - 0.5
    pos = xp.clip(pos, 0, src - 1)
    low = xp.floor(pos).astype(xp.int64)
    high = xp.minimum(low + 1, src - 1)
    return low, high, (pos - low).astype(xp.float32)


def resize(image: Array, size: tuple[int, int], interpolation: str = "bilinear") -> Array:
    """Resize ``HxWxC`` / ``NxHxWxC`` (or ``HxW``) to ``size`` = (width, height). ``bilinear`` returns
    float32, ``nearest`` keeps the dtype. Sizes must be positive."""
    xp = array_module(image)
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"resize: size must be positive, got {size}")
    hw_axis = 0 if image.ndim == 2 else image.ndim - 3
    src_h, src_w = image.shape[hw_axis], image.shape[hw_axis + 1]
    if interpolation == "nearest":
        rows = xp.minimum(((xp.arange(height) + 0.5) * (src_h / height)).astype(xp.int64), src_h - 1)
        cols = xp.minimum(((xp.arange(width) + 0.5) * (src_w / width)).astype(xp.int64), src_w - 1)
        return xp.take(xp.take(image, rows, axis=hw_axis), cols, axis=hw_axis + 1)
    if interpolation != "bilinear":
        raise ValueError(f"resize: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    img = image.astype(xp.float32, copy=False)
    y0, y1, wy = _axis_weights(xp, src_h, height)
    x0, x1, wx = _axis_weights(xp, src_w, width)
    top, bottom = xp.take(img, y0, axis=hw_axis), xp.take(img, y1, axis=hw_axis)
    shape_y = [1] * img.ndim
    shape_y[hw_axis] = height
    rows = top + (bottom - top) * wy.reshape(shape_y)
    left, right = xp.take(rows, x0, axis=hw_axis + 1), xp.take(rows, x1, axis=hw_axis + 1)
    shape_x = [1] * img.ndim
    shape_x[hw_axis + 1] = width
    return left + (right - left) * wx.reshape(shape_x)


def convert_color(image: Array, source: str = "BGR", target: str = "RGB") -> Array:
    """Reorder the last (channel) axis from ``source`` to ``target`` order (``BGR``, ``RGB``, ``BGRA``...)."""
    source, target = source.upper(), target.upper()
    if sorted(source) != sorted(target):
        raise ValueError(f"convert_color: {source} and {target} do not hold the same channels")
    if image.shape[-1] != len(source):
        raise ValueError(f"convert_color: {source} needs {len(source)} channels, the image has "
                         f"{image.shape[-1]}")
    if source == target:
        return image
    xp = array_module(image)
    return xp.take(image, xp.asarray([source.index(c) for c in target]), axis=-1)


def normalize(image: Array, mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
              scale: float = 1 / 255) -> Array:
    """``(image * scale - mean) / std`` per channel (last axis), as float32."""
    xp = array_module(image)
    m = xp.asarray(mean, dtype=xp.float32)
    inv = xp.float32(1.0) / xp.asarray(std, dtype=xp.float32)
    return (image.astype(xp.float32, copy=False) * xp.float32(scale) - m) * inv


def hwc_to_nchw(image: Array) -> Array:
    """``HxWxC`` -> ``1xCxHxW``, ``NxHxWxC`` -> ``NxCxHxW`` (C-contiguous)."""
    xp = array_module(image)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"hwc_to_nchw: expected HxWxC or NxHxWxC, got shape {tuple(image.shape)}")
    return xp.ascontiguousarray(image.transpose(0, 3, 1, 2))


def batch(arrays: Sequence[Array]) -> Array:
    """One batch from items of equal shape: ``CxHxW`` items are stacked, ``1xCxHxW`` ones concatenated."""
    if not arrays:
        raise ValueError("batch: nothing to batch")
    xp = array_module(arrays[0])
    if arrays[0].ndim == 4:
        return xp.concatenate(list(arrays), axis=0)
    return xp.stack(list(arrays), axis=0)


def preprocess(image: Array, size: tuple[int, int], *, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD, scale: float = 1 / 255, source: str = "BGR",
               target: str = "RGB") -> Array:
    """The usual chain for a classifier or detector: resize to ``size`` (width, height), reorder colours,
    normalise, and lay out as ``NCHW`` float32 (``1x3xHxW`` for one image)."""
    resized = resize(image, size)
    return hwc_to_nchw(normalize(convert_color(resized, source, target), mean, std, scale))
