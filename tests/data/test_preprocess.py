"""Preprocessing against numpy formulas written here; presets and the JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convertmodel.data.preprocess import PRESETS, Preprocess, parse_floats, parse_size, preset
from convertmodel.errors import InvalidModelError


def test_caffe_bgr_mean_nchw(rng):
    x = rng.integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    p = Preprocess(color="bgr", mean=(104.0, 117.0, 123.0))
    got = p.apply_array(x)
    b, g, r = (x[..., k].astype(np.float64) for k in (2, 1, 0))
    expect = np.stack([b - 104.0, g - 117.0, r - 123.0], axis=1)
    assert got.dtype == np.float32 and got.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-4)


def test_torch_mean_std_nhwc(rng):
    x = rng.integers(0, 256, size=(3, 2, 2, 3), dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    p = Preprocess(scale=1 / 255, mean=tuple(mean), std=tuple(std), layout="NHWC")
    expect = (x / 255.0 - mean) / std
    np.testing.assert_allclose(p.apply_array(x), expect, rtol=1e-5, atol=1e-5)


def test_caffe_scale_as_std(rng):
    # Caffe transform_param: (x - mean) * scale, e.g. MobileNet-SSD's 0.007843 -> std = 1 / 0.007843.
    x = rng.integers(0, 256, size=(1, 3, 3, 3), dtype=np.uint8)
    p = Preprocess(color="bgr", mean=(127.5,), std=(1 / 0.007843,))
    expect = (x[..., ::-1].astype(np.float64) - 127.5) * 0.007843
    np.testing.assert_allclose(p.apply_array(x), expect.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


def test_gray_from_rgb_uses_luma(rng):
    x = rng.integers(0, 256, size=(2, 3, 3, 3), dtype=np.uint8)
    got = Preprocess(color="gray").apply_array(x)
    expect = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    np.testing.assert_allclose(got[:, 0], expect, rtol=1e-5)
    # And grey images replicate to 3 channels for an RGB model.
    g = rng.integers(0, 256, size=(1, 2, 2), dtype=np.uint8)
    rgb = Preprocess().apply_array(g)
    assert rgb.shape == (1, 3, 2, 2)
    for c in range(3):
        np.testing.assert_array_equal(rgb[0, c], g[0].astype(np.float32))


def test_resize_shorter_side_and_centre_crop():
    h, w = 40, 60
    img = Image.fromarray(np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3).astype(np.uint8))
    out = Preprocess(resize=20).geometry(img)
    assert out.size == (30, 20)  # shorter side 40 -> 20, aspect kept (PIL size is W, H)
    out2 = Preprocess(resize=(10, 12)).geometry(img)
    assert out2.size == (12, 10)
    # Centre crop without resize equals numpy slicing at round((H - ch) / 2), round((W - cw) / 2).
    arr = np.asarray(img)
    got = np.asarray(Preprocess(crop=(25, 31)).geometry(img))
    top, left = round((h - 25) / 2), round((w - 31) / 2)
    np.testing.assert_array_equal(got, arr[top : top + 25, left : left + 31])
    with pytest.raises(InvalidModelError, match="larger than the image"):
        Preprocess(crop=(50, 50)).geometry(img)


def test_resize_matches_pillow_bilinear(rng):
    x = rng.integers(0, 256, size=(2, 8, 6, 3), dtype=np.uint8)
    got = Preprocess(resize=(4, 3), layout="NHWC").apply_array(x)
    for k in range(2):
        ref = np.asarray(Image.fromarray(x[k]).resize((3, 4), Image.Resampling.BILINEAR), dtype=np.float32)
        np.testing.assert_array_equal(got[k], ref)


def test_json_round_trip_all_presets():
    for name, p in PRESETS.items():
        q = Preprocess.from_json(p.to_json())
        assert q == p, name
    assert preset("caffe-ssd-300").resize == (300, 300)
    with pytest.raises(InvalidModelError, match="unknown preprocessing preset"):
        preset("nope")
    with pytest.raises(InvalidModelError, match="unknown keys"):
        Preprocess.from_json('{"colour": "rgb"}')


def test_validation_and_parsers():
    with pytest.raises(InvalidModelError, match="mean needs 1 or 3"):
        Preprocess(mean=(1.0, 2.0))
    with pytest.raises(InvalidModelError, match="std must not contain 0"):
        Preprocess(std=(0.0,))
    with pytest.raises(InvalidModelError, match="color"):
        Preprocess(color="yuv")
    assert parse_size("300x200", "--resize") == (300, 200)
    assert parse_size("256", "--resize") == 256
    assert parse_floats("1, 2,3", "--mean") == (1.0, 2.0, 3.0)
    with pytest.raises(InvalidModelError):
        parse_floats("a,b", "--mean")
