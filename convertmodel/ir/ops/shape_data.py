"""Schemas of ops that read shapes or build and gather tensors: Shape, Size, Gather, Expand,
Tile, ConstantOfShape, Range (registered through :mod:`convertmodel.ir.ops.shape`)."""

from __future__ import annotations

import math

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import TensorType
from convertmodel.ir.ops._util import broadcast_shapes
from convertmodel.ir.ops.elementwise import normalize_axes
from convertmodel.ir.ops.shape import const_ints, input_len, unknown_type
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema


def shape_bounds(rank: int, start: int, end: int | None) -> tuple[int, int]:
    """Shape-15 start/end: negative counts from the back, both clamped to [0, rank]."""
    e = rank if end is None else end
    s = start + rank if start < 0 else start
    e = e + rank if e < 0 else e
    return min(max(s, 0), rank), min(max(e, 0), rank)


@op_schema(
    "Shape",
    inputs=["data"],
    outputs=["shape"],
    attrs=[Attr("start", AttrType.INT, 0), Attr("end", AttrType.INT, None, "default: rank")],
)
def _shape(ctx: InferContext) -> list[TensorType]:
    """The input's shape (int64), optionally sliced by start/end."""
    s = ctx.input_type(0).shape
    if s is None:
        return [TensorType("int64", (None,))]
    b, e = shape_bounds(len(s), ctx.attrs["start"], ctx.attrs["end"])
    return [TensorType("int64", (max(0, e - b),))]


@op_schema("Size", inputs=["data"], outputs=["size"])
def _size(ctx: InferContext) -> list[TensorType]:
    """Number of elements, an int64 scalar."""
    return [TensorType("int64", ())]


@op_schema("Gather", inputs=["data", "indices"], outputs=["output"], attrs=[Attr("axis", AttrType.INT, 0)])
def _gather(ctx: InferContext) -> list[TensorType]:
    """Take entries along axis (negative indices count from the end)."""
    t, ind = ctx.input_type(0), ctx.input_type(1)
    if t.shape is None or ind.shape is None:
        return unknown_type(t.dtype, None)
    (axis,) = normalize_axes([ctx.attrs["axis"]], len(t.shape), ctx)
    return [TensorType(t.dtype, t.shape[:axis] + ind.shape + t.shape[axis + 1 :])]


@op_schema("Expand", inputs=["input", "shape"], outputs=["output"])
def _expand(ctx: InferContext) -> list[TensorType]:
    """Broadcast the input to the shape input (bidirectional: result is the broadcast of both)."""
    t = ctx.input_type(0)
    target = const_ints(ctx, 1)
    if target is None or t.shape is None:
        n = input_len(ctx, 1)
        rank = None if n is None or t.shape is None else max(n, len(t.shape))
        return unknown_type(t.dtype, rank)
    try:
        return [TensorType(t.dtype, broadcast_shapes(t.shape, tuple(target)))]
    except InvalidModelError as e:
        raise ctx.fail(f"input shape {list(t.shape)} does not broadcast to {target}") from e


@op_schema("Tile", inputs=["input", "repeats"], outputs=["output"])
def _tile(ctx: InferContext) -> list[TensorType]:
    """Repeat the input repeats[i] times along axis i."""
    t = ctx.input_type(0)
    reps = const_ints(ctx, 1)
    if t.shape is None:
        return unknown_type(t.dtype, input_len(ctx, 1))
    if reps is None:
        return unknown_type(t.dtype, len(t.shape))
    if len(reps) != len(t.shape):
        raise ctx.fail(f"repeats {reps} must have one entry per input axis ({len(t.shape)})")
    return [
        TensorType(
            t.dtype,
            tuple(d * k if isinstance(d, int) else (d if k == 1 else None) for d, k in zip(t.shape, reps, strict=True)),
        )
    ]


@op_schema(
    "ConstantOfShape",
    inputs=["input"],
    outputs=["output"],
    attrs=[Attr("value", AttrType.TENSOR, None, "one-element tensor; default float32 0")],
)
def _constant_of_shape(ctx: InferContext) -> list[TensorType]:
    """A tensor of the shape given by the input, filled with ``value``."""
    v = ctx.attrs["value"]
    dtype = "float32" if v is None else str(v.dtype)
    shape = const_ints(ctx, 0)
    if shape is None:
        return unknown_type(dtype, input_len(ctx, 0))
    return [TensorType(dtype, tuple(shape))]


@op_schema("Range", inputs=["start", "limit", "delta"], outputs=["output"])
def _range(ctx: InferContext) -> list[TensorType]:
    """1-D sequence start, start + delta, ... below limit."""
    dtype = ctx.input_type(0).dtype
    vals = [ctx.value(i) for i in range(3)]
    if any(v is None for v in vals):
        return [TensorType(dtype, (None,))]
    start, limit, delta = (float(np.asarray(v).reshape(())) for v in vals)  # type: ignore[arg-type]
    if delta == 0:
        raise ctx.fail("delta must not be 0")
    return [TensorType(dtype, (max(0, math.ceil((limit - start) / delta)),))]
