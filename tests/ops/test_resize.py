"""Resize against onnxruntime: nearest (every nearest_mode) and linear, every supported
coordinate transform, up- and down-sampling, scales and sizes, constant and run-time inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import UnsupportedOpError
from tests.ops import check_against_ort, check_both, i64, infer_node

COORD_MODES = [
    "half_pixel",
    "asymmetric",
    "align_corners",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
RESIZE_GEOMETRY = [
    # (input shape, scales, sizes)
    ((1, 2, 4, 5), (1, 1, 2, 2), None),  # upsample x2
    ((1, 2, 4, 5), (1, 1, 1.5, 0.6), None),  # up one axis, down the other
    ((2, 1, 6, 7), (1, 1, 0.5, 0.5), None),  # downsample
    ((1, 2, 4, 5), None, (1, 2, 7, 3)),  # sizes
    ((1, 1, 3, 3), None, (1, 1, 1, 6)),  # one output row (pytorch_half_pixel special case)
]


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize(("shape", "scales", "sizes"), RESIZE_GEOMETRY)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
def test_resize_nearest(
    coord: str, shape: tuple, scales: tuple | None, sizes: tuple | None, nearest_mode: str, rng: np.random.Generator
) -> None:
    _check_resize(
        rng, shape, scales, sizes, mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest_mode
    )


@pytest.mark.parametrize("coord", [c for c in COORD_MODES if c != "tf_half_pixel_for_nn"])
@pytest.mark.parametrize(("shape", "scales", "sizes"), RESIZE_GEOMETRY)
def test_resize_linear(
    coord: str, shape: tuple, scales: tuple | None, sizes: tuple | None, rng: np.random.Generator
) -> None:
    _check_resize(rng, shape, scales, sizes, mode="linear", coordinate_transformation_mode=coord)


def _check_resize(
    rng: np.random.Generator, shape: tuple, scales: tuple | None, sizes: tuple | None, **attrs: Any
) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    inputs = {
        "x": x,
        "roi": None,
        "scales": None if scales is None else np.array(scales, np.float32),
        "sizes": None if sizes is None else i64(*sizes),
    }
    check_both("Resize", inputs, ["scales", "sizes"], opset=19, **attrs)


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_resize_keep_aspect_ratio(policy: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 1, 4, 6)).astype(np.float32)
    inputs = {"x": x, "roi": None, "scales": None, "sizes": i64(6, 6)}
    check_both("Resize", inputs, ["sizes"], opset=19, mode="linear", axes=[2, 3], keep_aspect_ratio_policy=policy)


def test_resize_opset11_empty_scales_with_sizes(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    inputs = {"x": x, "roi": np.zeros(0, np.float32), "scales": np.zeros(0, np.float32), "sizes": i64(1, 2, 6, 5)}
    check_against_ort("Resize", inputs, ["roi", "scales", "sizes"], opset=11, mode="nearest")


def test_resize_infers_symbolic_batch_and_rejects_unsupported_modes() -> None:
    (t,) = infer_node("Resize", {"x": ("N", 3, 8, 8), "roi": None, "scales": np.array([1, 1, 2, 2], np.float32)})
    assert t.shape == ("N", 3, 16, 16)
    (t,) = infer_node("Resize", {"x": ("N", 3, 8, 8), "roi": None, "scales": (4,)})
    assert t.shape == (None, None, None, None)
    with pytest.raises(UnsupportedOpError, match="mode=cubic"):
        infer_node("Resize", {"x": (1, 3, 8, 8), "roi": None, "scales": np.ones(4, np.float32)}, mode="cubic")
