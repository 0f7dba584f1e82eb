"""Reference Resize kernel: nearest and separable (multi)linear interpolation.

Coordinate transforms and nearest rounding follow the ONNX Resize-19 spec; each resized axis
is processed on its own (linear on two axes is exactly bilinear). Index and weight vectors are
computed in float32 like onnxruntime (they are 1-D and tiny); the data stays in its own dtype.
An axis whose scale is exactly 1 and whose size does not change is copied, as onnxruntime does
(tf_half_pixel_for_nn would otherwise shift it by half a pixel).
"""

from __future__ import annotations

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.ops.resize import check_resize_attrs, resize_plan
from convertmodel.limits import check_growth
from convertmodel.runtime.registry import KernelContext, kernel


def source_coords(mode: str, out_len: int, in_len: int, scale: float) -> np.ndarray:
    """Input-space coordinate of every output position along one axis (ONNX formulas).

    Evaluated in float32 in onnxruntime's operation order (upsample.h), so rounding ties such
    as (1 + 0.5) / 0.6 - 0.5 == 2 land on the same side as in the reference runtime.
    """
    f32 = np.float32
    x = np.arange(out_len, dtype=f32)
    s, half = f32(scale), f32(0.5)
    if mode == "half_pixel":
        return (x + half) / s - half
    if mode == "half_pixel_symmetric":
        adjustment = f32(out_len) / (s * f32(in_len))
        offset = f32(in_len) / f32(2) * (f32(1) - adjustment)
        # onnxruntime finishes this one in double (its 0.5 literals are doubles), then rounds to float.
        x64 = x.astype(np.float64)
        return (np.float64(offset) + (x64 + 0.5) / np.float64(s) - 0.5).astype(f32)
    if mode == "asymmetric":
        return x / s
    if mode == "align_corners":
        return x * f32(in_len - 1) / f32(out_len - 1) if out_len > 1 else np.zeros_like(x)
    if mode == "pytorch_half_pixel":
        return (x + half) / s - half if out_len > 1 else np.zeros_like(x)
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / s
    raise InvalidModelError(f"coordinate_transformation_mode {mode!r} is not supported")


def nearest_index(coords: np.ndarray, mode: str, in_len: int) -> np.ndarray:
    """Round coordinates to input indices per ``nearest_mode``, clamped into the axis."""
    fl = np.floor(coords)
    half = coords - fl == 0.5
    if mode == "round_prefer_floor":
        idx = np.where(half, fl, np.round(coords))
    elif mode == "round_prefer_ceil":
        idx = np.where(half, fl + 1, np.round(coords))
    elif mode == "floor":
        idx = fl
    elif mode == "ceil":
        idx = np.ceil(coords)
    else:
        raise InvalidModelError(f"nearest_mode {mode!r} is not supported")
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


def _resize_axis(x: np.ndarray, axis: int, out_len: int, scale: float, attrs: dict) -> np.ndarray:
    in_len = x.shape[axis]
    coords = source_coords(attrs["coordinate_transformation_mode"], out_len, in_len, scale)
    if attrs["mode"] == "nearest":
        return np.take(x, nearest_index(coords, attrs["nearest_mode"], in_len), axis=axis)
    # Linear: clamp the coordinate into the axis (onnxruntime's edge handling), blend two taps.
    c = np.clip(coords, 0, in_len - 1)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_len - 1)
    shape = [1] * x.ndim
    shape[axis] = out_len
    frac = c - i0.astype(c.dtype)
    w1 = frac.astype(x.dtype).reshape(shape)
    w0 = (1 - frac).astype(x.dtype).reshape(shape)
    return np.take(x, i0, axis=axis) * w0 + np.take(x, i1, axis=axis) * w1


@kernel("Resize")
def resize(
    ctx: KernelContext,
    x: np.ndarray,
    roi: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> np.ndarray:
    attrs = ctx.attrs
    check_resize_attrs("Resize", ctx.node.name, attrs)
    sc = None if scales is None or scales.size == 0 else [float(s) for s in scales.reshape(-1)]
    sz = None if sizes is None or sizes.size == 0 else [int(s) for s in sizes.reshape(-1)]
    if (sc is None) == (sz is None):
        raise InvalidModelError(f"Resize {ctx.node.name!r}: exactly one of scales and sizes must be given")
    try:
        out, factors = resize_plan(x.shape, attrs, sc, sz)
    except InvalidModelError as e:
        raise InvalidModelError(f"Resize {ctx.node.name!r}: {e}") from e
    if attrs["mode"] == "linear" and not np.issubdtype(x.dtype, np.floating):
        raise InvalidModelError(f"Resize {ctx.node.name!r}: linear mode needs a float input, got {x.dtype}")
    # Intermediates are never larger than the output (axes are resized one by one, each at most to its size).
    check_growth([int(d) for d in out], x.dtype.itemsize, x.nbytes, f"Resize {ctx.node.name!r}")  # type: ignore[arg-type]
    y = x
    for axis in range(x.ndim):
        o = int(out[axis])  # type: ignore[arg-type]
        if o == x.shape[axis] and factors[axis] == 1.0:
            continue
        y = _resize_axis(y, axis, o, factors[axis], attrs)
    return y if y is not x else x.copy()
