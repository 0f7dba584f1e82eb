"""Caffe layer handlers: Eltwise, Scale, Bias, Concat, Slice, Split, Flatten, Reshape, Permute, Crop.

Facts about Caffe's semantics cite BVLC Caffe's src/caffe/layers/*.cpp.
"""

from __future__ import annotations

import numpy as np

from convertmodel.errors import UnsupportedOpError
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.readers.caffe.context import LayerContext, layer_handler


def _axis(ctx: LayerContext, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for a rank-{rank} input")
    return axis % rank


@layer_handler("Eltwise", bottoms=(1, None))
def eltwise(ctx: LayerContext) -> list[str]:
    p = ctx.layer.eltwise_param
    op = int(p.operation)
    xs = list(ctx.inputs)
    if len(xs) < 2:
        raise ctx.fail(f"needs at least 2 bottoms, got {len(xs)}")
    if op == 1:  # SUM: top = sum(coeff_i * x_i) (eltwise_layer.cpp; coefficients default to 1)
        coeffs = list(p.coeff)
        if coeffs and len(coeffs) != len(xs):
            raise ctx.fail(f"has {len(coeffs)} coeff values for {len(xs)} bottoms")
        for i, c in enumerate(coeffs):
            if float(c) != 1.0:
                xs[i] = ctx.node("Mul", [xs[i], ctx.const(f"coeff{i}", np.array(c, np.float32))], suffix=f"coeff{i}")
        binary = "Add"
    elif op == 0:  # PROD
        binary = "Mul"
    else:  # MAX
        return [ctx.node("Max", xs, out=ctx.top())]
    y = xs[0]
    for i in range(1, len(xs)):
        last = i == len(xs) - 1
        y = ctx.node(binary, [y, xs[i]], out=ctx.top() if last else None, suffix="" if last else f"{binary.lower()}{i}")
    return [y]


def _affine_shape(ctx: LayerContext, axis: int, num_axes: int, x: tuple[int, ...]) -> tuple[int, ...]:
    a = _axis(ctx, axis, len(x))
    end = len(x) if num_axes == -1 else a + num_axes
    if end > len(x) or num_axes < -1:
        raise ctx.fail(f"axis {axis} with num_axes {num_axes} does not fit the rank-{len(x)} input")
    return x[a:end]


def _broadcastable(ctx: LayerContext, value: str, axis: int, covered: int, rank: int, suffix: str) -> str:
    """Reshape a parameter covering axes [axis, axis+covered) so it broadcasts against the input."""
    tail = rank - axis - covered
    if tail == 0:
        return value
    shape = ctx.shape_of(value)
    new = np.array([*shape, *([1] * tail)], np.int64)
    if value in ctx.b.constants:
        return ctx.const(suffix, ctx.b.constants[value].reshape(tuple(int(d) for d in new)))
    return ctx.node("Reshape", [value, ctx.const(f"{suffix}_shape", new)], suffix=suffix)


@layer_handler("Scale", "Bias", bottoms=(1, 2))
def scale_bias(ctx: LayerContext) -> list[str]:
    """Scale: y = x * s (+ b with bias_term); Bias: y = x + b. The parameter comes from a blob or the
    second bottom, covering axes [axis, axis + num_axes) of the input (scale_layer.cpp, bias_layer.cpp)."""
    is_scale = ctx.type == "Scale"
    p = ctx.layer.scale_param if is_scale else ctx.layer.bias_param
    x = ctx.shape(0)
    axis = _axis(ctx, int(p.axis), len(x))
    second = len(ctx.inputs) > 1
    with_bias = is_scale and bool(p.bias_term)
    if second:
        pshape = ctx.shape(1)
        if tuple(x[axis : axis + len(pshape)]) != tuple(pshape):
            raise ctx.fail(f"second bottom of shape {list(pshape)} does not match input {list(x)} at axis {axis}")
    else:
        pshape = _affine_shape(ctx, int(p.axis), int(p.num_axes), x)
    ctx.need_blobs((0 if second else 1) + (1 if with_bias else 0))
    param = ctx.inputs[1] if second else ctx.const("scale" if is_scale else "bias", ctx.blob(0, pshape))
    bias = ctx.const("bias", ctx.blob(0 if second else 1, pshape)) if with_bias else None
    scale: str | None = param
    if not is_scale:
        scale, bias = None, param
    covered = len(pshape)
    # The common case, one value per channel: the IR's ChannelAffine (foldable into a preceding Conv).
    if covered == 1 and axis == 1 and not second:
        ins = [ctx.inputs[0], scale or ""] + ([bias] if bias else [])
        return [ctx.node("ChannelAffine", ins, out=ctx.top(), domain=CM_DOMAIN, axis=1)]
    y = ctx.inputs[0]
    if scale is not None:
        s_b = _broadcastable(ctx, scale, axis, covered, len(x), "scale_b")
        y = ctx.node("Mul", [y, s_b], out=None if bias else ctx.top(), suffix="mul" if bias else "")
    if bias is not None:
        b_b = _broadcastable(ctx, bias, axis, covered, len(x), "bias_b")
        y = ctx.node("Add", [y, b_b], out=ctx.top())
    return [y]


@layer_handler("Concat", bottoms=(1, None))
def concat(ctx: LayerContext) -> list[str]:
    p = ctx.layer.concat_param
    axis = int(p.axis) if p.HasField("axis") or not p.HasField("concat_dim") else int(p.concat_dim)
    if len(ctx.inputs) == 1:
        return [ctx.node("Identity", ctx.inputs, out=ctx.top())]
    return [ctx.node("Concat", ctx.inputs, out=ctx.top(), axis=_axis(ctx, axis, len(ctx.shape(0))))]


@layer_handler("Slice", tops=(1, None))
def slice_layer(ctx: LayerContext) -> list[str]:
    p = ctx.layer.slice_param
    x = ctx.shape(0)
    axis = _axis(ctx, int(p.axis) if p.HasField("axis") or not p.HasField("slice_dim") else int(p.slice_dim), len(x))
    n = len(ctx.tops)
    points = [int(v) for v in p.slice_point]
    if points:
        if len(points) != n - 1 or points != sorted(points) or points[-1] >= x[axis]:
            raise ctx.fail(f"slice_point {points} does not split axis {axis} of size {x[axis]} into {n} tops")
        sizes = np.diff([0, *points, x[axis]]).astype(np.int64)
    else:
        if x[axis] % n:
            raise ctx.fail(f"axis {axis} of size {x[axis]} does not split evenly into {n} tops")
        sizes = np.full(n, x[axis] // n, np.int64)
    outs = ctx.b.add_node("Split", [ctx.inputs[0], ctx.const("split", sizes)], list(ctx.tops), name=ctx.name, axis=axis)
    return outs


@layer_handler("Split", tops=(1, None))
def split(ctx: LayerContext) -> list[str]:
    """Caffe's Split copies its bottom to every top: one Identity per top."""
    return [ctx.node("Identity", ctx.inputs[:1], out=t, suffix=str(k) if k else "") for k, t in enumerate(ctx.tops)]


@layer_handler("Flatten")
def flatten(ctx: LayerContext) -> list[str]:
    p = ctx.layer.flatten_param
    x = ctx.shape(0)
    a = _axis(ctx, int(p.axis), len(x))
    e = _axis(ctx, int(p.end_axis), len(x))
    if a == 1 and e == len(x) - 1:
        return [ctx.node("Flatten", ctx.inputs[:1], out=ctx.top(), axis=1)]
    shape = [0] * a + [-1] + [int(d) for d in x[e + 1 :]]
    return [ctx.node("Reshape", [ctx.inputs[0], ctx.const("shape", np.array(shape, np.int64))], out=ctx.top())]


@layer_handler("Reshape")
def reshape(ctx: LayerContext) -> list[str]:
    """Caffe's dims: 0 copies the input dim at the same position, -1 is inferred; only axes
    [axis, axis + num_axes) are replaced (reshape_layer.cpp)."""
    p = ctx.layer.reshape_param
    x = ctx.shape(0)
    rank = len(x)
    start = int(p.axis) if p.axis >= 0 else rank + int(p.axis) + 1
    end = rank if p.num_axes == -1 else start + int(p.num_axes)
    if not 0 <= start <= end <= rank:
        raise ctx.fail(f"axis {p.axis} and num_axes {p.num_axes} do not fit the rank-{rank} input")
    spec = [int(d) for d in p.shape.dim]
    mid = [x[start + i] if d == 0 else d for i, d in enumerate(spec)]
    full = [*x[:start], *mid, *x[end:]]
    if full.count(-1) > 1:
        raise ctx.fail(f"shape {spec} has more than one -1")
    if -1 in full:
        known = int(np.prod([d for d in full if d != -1]))
        total = int(np.prod(x))
        if known == 0 or total % known:
            raise ctx.fail(f"cannot reshape {list(x)} to {spec}")
        full[full.index(-1)] = total // known
    if int(np.prod(full)) != int(np.prod(x)):
        raise ctx.fail(f"cannot reshape {list(x)} ({int(np.prod(x))} values) to {full}")
    if start == 0 and end == rank:
        # The whole shape is replaced: Caffe's 0 and -1 mean exactly what ONNX's do.
        out_spec = spec
        return [ctx.node("Reshape", [ctx.inputs[0], ctx.const("shape", np.array(out_spec, np.int64))], out=ctx.top())]
    # Keep the batch axis a copy (0) so a different batch size still reshapes correctly.
    out_spec = ([0] if start > 0 or (spec and spec[0] == 0) else [full[0]]) + full[1:]
    if -1 in spec:
        k = start + spec.index(-1)
        out_spec[k] = -1
    return [ctx.node("Reshape", [ctx.inputs[0], ctx.const("shape", np.array(out_spec, np.int64))], out=ctx.top())]


@layer_handler("Permute")
def permute(ctx: LayerContext) -> list[str]:
    """SSD's Permute: the listed axes first, then the unlisted ones in order (permute_layer.cpp)."""
    rank = len(ctx.shape(0))
    order = [int(o) for o in ctx.layer.permute_param.order]
    if len(set(order)) != len(order) or any(not 0 <= o < rank for o in order):
        raise ctx.fail(f"order {order} is not a permutation of axes of a rank-{rank} input")
    perm = order + [a for a in range(rank) if a not in order]
    return [ctx.node("Transpose", ctx.inputs[:1], out=ctx.top(), perm=perm)]


@layer_handler("Crop", bottoms=(2, 2))
def crop(ctx: LayerContext) -> list[str]:
    """Crop bottom 0 to bottom 1's shape from ``axis`` on, at the given offsets (crop_layer.cpp)."""
    x, ref = ctx.shape(0), ctx.shape(1)
    p = ctx.layer.crop_param
    a = _axis(ctx, int(p.axis), len(x))
    offs = [int(o) for o in p.offset]
    n = len(x) - a
    if offs and len(offs) not in (1, n):
        raise ctx.fail(f"has {len(offs)} offsets for {n} cropped axes")
    offs = offs * n if len(offs) == 1 else (offs or [0] * n)
    starts, ends = [], []
    for i in range(n):
        if offs[i] + ref[a + i] > x[a + i]:
            raise ctx.fail(f"crop of axis {a + i} at offset {offs[i]} to size {ref[a + i]} exceeds {x[a + i]}")
        starts.append(offs[i])
        ends.append(offs[i] + ref[a + i])
    ins = [
        ctx.inputs[0],
        ctx.const("starts", np.array(starts, np.int64)),
        ctx.const("ends", np.array(ends, np.int64)),
        ctx.const("axes", np.arange(a, len(x), dtype=np.int64)),
    ]
    return [ctx.node("Slice", ins, out=ctx.top())]


@layer_handler("Input")
def input_layer(ctx: LayerContext) -> list[str]:
    """Handled by the reader itself (graph inputs); reaching here means a misplaced Input layer."""
    raise UnsupportedOpError(ctx.path, {"Input (not at the start)": [ctx.name]}, what="Caffe layer")
