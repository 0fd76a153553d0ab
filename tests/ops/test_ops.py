"""panoflow.ops: each helper against a slow, obvious reference, and CuPy against numpy where a GPU is
present."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest

from panoflow import ops


def _cupy() -> tuple[Any, str]:
    try:
        cp = importlib.import_module("cupy")
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 (not installed, no driver, no device)
        return None, f"CuPy with a GPU is needed: {type(exc).__name__}: {exc}"
    return (cp, "") if count else (None, "CuPy found no GPU")


CP, CP_WHY = _cupy()
needs_cupy = pytest.mark.skipif(CP is None, reason=CP_WHY)


def reference_resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear with half-pixel centres, pixel by pixel (OpenCV INTER_LINEAR's definition)."""
    src_h, src_w = img.shape[:2]
    out = np.zeros((height, width, *img.shape[2:]), np.float64)
    for y in range(height):
        sy = min(max((y + 0.5) * src_h / height - 0.5, 0), src_h - 1)
        y0 = math.floor(sy)
        y1, fy = min(y0 + 1, src_h - 1), sy - y0
        for x in range(width):
            sx = min(max((x + 0.5) * src_w / width - 0.5, 0), src_w - 1)
            x0 = math.floor(sx)
            x1, fx = min(x0 + 1, src_w - 1), sx - x0
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return out


def image(h: int = 13, w: int = 17, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize(("width", "height"), [(17, 13), (8, 6), (40, 29), (5, 21), (1, 1)])
def test_resize_bilinear_matches_the_reference(width: int, height: int) -> None:
    img = image()
    got = ops.resize(img, (width, height))
    assert got.shape == (height, width, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_resize(img.astype(np.float64), width, height), rtol=0,
                               atol=1e-3)


def test_resize_keeps_leading_batch_axes_and_grey_images() -> None:
    batch = np.stack([image(seed=i) for i in range(3)])
    got = ops.resize(batch, (9, 7))
    assert got.shape == (3, 7, 9, 3)
    for i in range(3):
        np.testing.assert_allclose(got[i], ops.resize(batch[i], (9, 7)), atol=1e-6)
    grey = image(c=1)[..., 0]
    np.testing.assert_allclose(ops.resize(grey, (9, 7)), reference_resize(grey.astype(float), 9, 7),
                               atol=1e-3)


def test_resize_nearest_keeps_the_dtype_and_picks_source_pixels() -> None:
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    got = ops.resize(img, (3, 2), "nearest")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, img[[1, 3]][:, [1, 3, 5]])
    with pytest.raises(ValueError, match="interpolation must be"):
        ops.resize(img, (3, 2), "cubic")
    with pytest.raises(ValueError, match="size must be positive"):
        ops.resize(img, (0, 2))


def test_convert_color() -> None:
    img = image()
    np.testing.assert_array_equal(ops.convert_color(img, "BGR", "RGB"), img[..., ::-1])
    assert ops.convert_color(img, "RGB", "RGB") is img
    four = image(c=4)
    np.testing.assert_array_equal(ops.convert_color(four, "BGRA", "RGBA"), four[..., [2, 1, 0, 3]])
    with pytest.raises(ValueError, match="same channels"):
        ops.convert_color(img, "BGR", "RGBA")
    with pytest.raises(ValueError, match="needs 4 channels"):
        ops.convert_color(img, "BGRA", "RGBA")


def test_normalize_and_layout() -> None:
    img = image()
    got = ops.normalize(img, ops.IMAGENET_MEAN, ops.IMAGENET_STD)
    want = (img / 255.0 - np.array(ops.IMAGENET_MEAN)) / np.array(ops.IMAGENET_STD)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    nchw = ops.hwc_to_nchw(got)
    assert nchw.shape == (1, 3, 13, 17) and nchw.flags.c_contiguous
    np.testing.assert_array_equal(nchw[0, 2], got[..., 2])
    assert ops.hwc_to_nchw(np.stack([got, got])).shape == (2, 3, 13, 17)
    with pytest.raises(ValueError, match="expected HxWxC"):
        ops.hwc_to_nchw(got[0])
    assert ops.batch([nchw, nchw, nchw]).shape == (3, 3, 13, 17)
    assert ops.batch([nchw[0], nchw[0]]).shape == (2, 3, 13, 17)
    with pytest.raises(ValueError, match="nothing to batch"):
        ops.batch([])


def test_preprocess_is_the_usual_chain() -> None:
    img = image(48, 64)
    got = ops.preprocess(img, (32, 24))
    want = ops.hwc_to_nchw(ops.normalize(ops.convert_color(ops.resize(img, (32, 24))), ops.IMAGENET_MEAN,
                                         ops.IMAGENET_STD))
    assert got.shape == (1, 3, 24, 32) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert ops.array_module(got) is np and ops.to_numpy(got) is got


@pytest.mark.gpu
@needs_cupy
def test_cupy_and_numpy_agree() -> None:
    cp = CP
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    batch = rng.integers(0, 256, (4, 120, 160, 3), dtype=np.uint8)
    d_img, d_batch = cp.asarray(img), cp.asarray(batch)
    assert ops.array_module(d_img) is cp
    cases = [
        (lambda m: ops.resize(m, (224, 224)), img, d_img),
        (lambda m: ops.resize(m, (97, 311)), img, d_img),
        (lambda m: ops.resize(m, (64, 48), "nearest"), img, d_img),
        (lambda m: ops.resize(m, (80, 60)), batch, d_batch),
        (lambda m: ops.convert_color(m, "BGR", "RGB"), img, d_img),
        (lambda m: ops.normalize(m, ops.IMAGENET_MEAN, ops.IMAGENET_STD), img, d_img),
        (lambda m: ops.hwc_to_nchw(m), img, d_img),
        (lambda m: ops.preprocess(m, (224, 224)), img, d_img),
        (lambda m: ops.batch([ops.preprocess(m, (64, 64)), ops.preprocess(m, (64, 64))]), img, d_img),
    ]
    for fn, host, device in cases:
        want, got = fn(host), fn(device)
        assert isinstance(got, cp.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(ops.to_numpy(got), want, rtol=1e-5, atol=1e-4)
