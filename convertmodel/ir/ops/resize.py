"""Schema of Resize (ONNX Resize-19 semantics; the ONNX reader maps the deprecated Upsample onto it).

Supported: ``mode`` nearest and linear (separable, on any axes whose scale is not 1);
``coordinate_transformation_mode`` half_pixel, half_pixel_symmetric, asymmetric,
align_corners, pytorch_half_pixel, tf_half_pixel_for_nn; every ``nearest_mode``;
``keep_aspect_ratio_policy`` for sizes. Not supported: cubic, antialias, tf_crop_and_resize
(rejected by inference with a message naming the node).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema

MODES = ("nearest", "linear")
COORD_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "asymmetric",
    "align_corners",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
)
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")

RESIZE_ATTRS = [
    Attr("mode", AttrType.STRING, "nearest", "nearest or linear (cubic is not supported)"),
    Attr("coordinate_transformation_mode", AttrType.STRING, "half_pixel"),
    Attr("nearest_mode", AttrType.STRING, "round_prefer_floor"),
    Attr("cubic_coeff_a", AttrType.FLOAT, -0.75),
    Attr("exclude_outside", AttrType.INT, 0),
    Attr("extrapolation_value", AttrType.FLOAT, 0.0),
    Attr("antialias", AttrType.INT, 0),
    Attr("axes", AttrType.INTS, (), "axes the scales/sizes refer to; default all"),
    Attr("keep_aspect_ratio_policy", AttrType.STRING, "stretch"),
]


def check_resize_attrs(op: str, name: str, attrs: dict) -> None:
    """Reject attribute values the runtime cannot honour, naming the node and what is supported."""
    checks = (
        ("mode", MODES),
        ("coordinate_transformation_mode", COORD_MODES),
        ("nearest_mode", NEAREST_MODES),
        ("keep_aspect_ratio_policy", ASPECT_POLICIES),
    )
    for key, allowed in checks:
        if attrs[key] not in allowed:
            raise UnsupportedOpError(
                "IR",
                {f"{op} {key}={attrs[key]}": [name]},
                supported=[f"{key}={a}" for a in allowed],
                what="attribute value",
            )
    if attrs["antialias"]:
        raise UnsupportedOpError("IR", {f"{op} antialias=1": [name]}, supported=["antialias=0"], what="attribute value")


def resize_plan(
    in_shape: Sequence[Dim], attrs: dict, scales: Sequence[float] | None, sizes: Sequence[int] | None
) -> tuple[list[Dim], list[float]]:
    """Output shape and per-axis scale factors (Resize-19 rules).

    With ``scales`` the output is floor(in * scale) and the given scale drives the coordinate
    transform; with ``sizes`` the scale is out / in (after the keep_aspect_ratio_policy).
    Products and ratios are taken in float32 as onnxruntime does (upsample.h), so sizes such
    as floor(5 * 0.6) agree with it.
    """
    f32 = np.float32
    r = len(in_shape)
    axes = [a + r if a < 0 else a for a in attrs["axes"]] or list(range(r))
    out: list[Dim] = list(in_shape)
    factors = [1.0] * r
    if scales is not None:
        if len(scales) != len(axes):
            raise InvalidModelError(f"scales {list(scales)} must have {len(axes)} entries")
        for a, s in zip(axes, scales, strict=True):
            if not s > 0 or not math.isfinite(s):  # also NaN
                raise InvalidModelError(f"scale {s} must be positive and finite")
            d = in_shape[a]
            factors[a] = float(f32(s))
            out[a] = math.floor(f32(s) * f32(d)) if isinstance(d, int) else (d if s == 1 else None)
        return out, factors
    if sizes is None:
        raise InvalidModelError("one of scales and sizes must be given")
    if len(sizes) != len(axes):
        raise InvalidModelError(f"sizes {list(sizes)} must have {len(axes)} entries")
    policy = attrs["keep_aspect_ratio_policy"]
    if policy != "stretch":
        dims = [in_shape[a] for a in axes]
        if not all(isinstance(d, int) for d in dims):
            return [None if i in axes else d for i, d in enumerate(in_shape)], factors
        ratios = [f32(s) / f32(d) for s, d in zip(sizes, dims, strict=True)]  # type: ignore[arg-type]
        common = min(ratios) if policy == "not_larger" else max(ratios)
        for a, d in zip(axes, dims, strict=True):
            # Resize-18: output size = round_half_up(scale * in) on the listed axes.
            out[a] = math.floor(common * f32(d) + f32(0.5))  # type: ignore[arg-type]
            factors[a] = float(common)
        return out, factors
    for a, s in zip(axes, sizes, strict=True):
        d = in_shape[a]
        out[a] = int(s)
        factors[a] = float(f32(s) / f32(d)) if isinstance(d, int) and d else 1.0
    return out, factors


@op_schema("Resize", inputs=["X", "roi?", "scales?", "sizes?"], outputs=["Y"], attrs=RESIZE_ATTRS)
def _resize(ctx: InferContext) -> list[TensorType]:
    """Resize by scales or to sizes with nearest or (multi)linear interpolation."""
    check_resize_attrs("Resize", ctx.node.name, dict(ctx.attrs))
    t = ctx.input_type(0)
    if t.shape is None:
        return [TensorType(t.dtype, None)]
    scales_v = ctx.value(2) if ctx.has_input(2) else None
    sizes_v = ctx.value(3) if ctx.has_input(3) else None
    # Resize-11/13 pass an empty scales tensor when sizes is used.
    has_scales = ctx.has_input(2) and not (scales_v is not None and scales_v.size == 0)
    has_sizes = ctx.has_input(3) and not (sizes_v is not None and sizes_v.size == 0)
    if has_scales == has_sizes:
        raise ctx.fail("exactly one of scales and sizes must be given")
    if (has_scales and scales_v is None) or (has_sizes and sizes_v is None):
        axes = [a % len(t.shape) for a in ctx.attrs["axes"]] or list(range(len(t.shape)))
        return [TensorType(t.dtype, tuple(None if i in axes else d for i, d in enumerate(t.shape)))]
    scales = [float(s) for s in scales_v.reshape(-1)] if has_scales and scales_v is not None else None
    sizes = [int(s) for s in sizes_v.reshape(-1)] if has_sizes and sizes_v is not None else None
    try:
        out, _ = resize_plan(t.shape, dict(ctx.attrs), scales, sizes)
    except InvalidModelError as e:
        raise ctx.fail(str(e)) from e
    return [TensorType(t.dtype, tuple(out))]
