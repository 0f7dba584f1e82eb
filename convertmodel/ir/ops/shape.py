"""Schemas of shape-manipulating ops (ONNX names, newest-opset forms).

Shape-like operands (Reshape's shape, Slice's starts, Squeeze's axes ...) are INPUTS. When
they are graph constants inference computes the exact output shape; when they are not it
returns an honest unknown (``None`` dims or unknown rank), never a guess. Resize lives in
:mod:`convertmodel.ir.ops.resize`; Shape, Size, Gather, Expand, Tile, ConstantOfShape and Range
in :mod:`convertmodel.ir.ops.shape_data` (both imported at the end of this module).
"""

from __future__ import annotations

import math

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops.elementwise import normalize_axes
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema


def const_ints(ctx: InferContext, i: int) -> list[int] | None:
    """The constant value of input ``i`` as a flat int list; ``None`` if absent or not constant."""
    if not ctx.has_input(i):
        return None
    v = ctx.value(i)
    return None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]


def input_len(ctx: InferContext, i: int) -> int | None:
    """Static length of a 1-D shape-like input (even when its values are unknown)."""
    s = ctx.input_type(i).shape
    return s[0] if s is not None and len(s) == 1 and isinstance(s[0], int) else None


def unknown_type(dtype: str, rank: int | None) -> list[TensorType]:
    """One output type with unknown dims (or unknown rank when ``rank`` is None)."""
    return [TensorType(dtype, None if rank is None else (None,) * rank)]


def _prod(dims: list[Dim]) -> Dim:
    """Product of dims: an int when all known, the symbol when it is the only non-1 factor, else None."""
    ints = [d for d in dims if isinstance(d, int)]
    rest = [d for d in dims if not isinstance(d, int)]
    p = math.prod(ints)
    if not rest:
        return p
    if len(rest) == 1 and isinstance(rest[0], str) and p == 1:
        return rest[0]
    return None


def reshape_target(in_shape: tuple[Dim, ...], target: list[int], allowzero: bool) -> tuple[Dim, ...]:
    """Output shape of Reshape: 0 copies the input dim (unless ``allowzero``), -1 is inferred."""
    if target.count(-1) > 1:
        raise InvalidModelError(f"Reshape target {target} has more than one -1")
    out: list[Dim] = []
    for k, t in enumerate(target):
        if t == 0 and not allowzero:
            if k >= len(in_shape):
                raise InvalidModelError(f"Reshape target {target} copies dim {k} of a rank-{len(in_shape)} input")
            out.append(in_shape[k])
        elif t < -1:
            raise InvalidModelError(f"Reshape target {target} has a negative dim {t}")
        else:
            out.append(t)
    if -1 in out:
        # Cancel symbols that appear on both sides, then divide the known sizes.
        num = list(in_shape)
        den = [d for d in out if d != -1]
        for d in list(den):
            if isinstance(d, str) and d in num:
                num.remove(d)
                den.remove(d)
        if all(isinstance(d, int) for d in num + den):
            total, known = math.prod(num), math.prod(den)  # type: ignore[arg-type]
            if known == 0 or total % known:
                raise InvalidModelError(f"Reshape of {list(in_shape)} to {target}: {total} elements do not fit")
            out[out.index(-1)] = total // known
        else:
            # One symbol left over whose int cofactors cancel exactly: -1 is that symbol (N, 3, 4, 4 -> N, 48).
            syms = [d for d in num if not isinstance(d, int)]
            rest = math.prod(d for d in num if isinstance(d, int))
            exact = all(isinstance(d, int) for d in den) and rest == math.prod(den)  # type: ignore[arg-type]
            out[out.index(-1)] = syms[0] if len(syms) == 1 and isinstance(syms[0], str) and exact else None
    elif all(isinstance(d, int) for d in (*in_shape, *out)) and math.prod(in_shape) != math.prod(out):  # type: ignore[arg-type]
        raise InvalidModelError(f"Reshape of {list(in_shape)} to {target}: element counts differ")
    return tuple(out)


@op_schema("Reshape", inputs=["data", "shape"], outputs=["reshaped"], attrs=[Attr("allowzero", AttrType.INT, 0)])
def _reshape(ctx: InferContext) -> list[TensorType]:
    """Reshape to the shape input (0 copies a dim unless allowzero, -1 is inferred)."""
    t = ctx.input_type(0)
    target = const_ints(ctx, 1)
    if target is None:
        return unknown_type(t.dtype, input_len(ctx, 1))
    if t.shape is None:
        dims = [None if d in (0, -1) else d for d in target]
        return [TensorType(t.dtype, tuple(dims))]
    try:
        return [TensorType(t.dtype, reshape_target(t.shape, target, bool(ctx.attrs["allowzero"])))]
    except InvalidModelError as e:
        raise ctx.fail(str(e)) from e


@op_schema("Flatten", inputs=["input"], outputs=["output"], attrs=[Attr("axis", AttrType.INT, 1)])
def _flatten(ctx: InferContext) -> list[TensorType]:
    """2-D: dims before axis multiplied, dims from axis multiplied."""
    t = ctx.input_type(0)
    if t.shape is None:
        return unknown_type(t.dtype, 2)
    r = len(t.shape)
    axis = ctx.attrs["axis"]
    if not -r <= axis <= r:
        raise ctx.fail(f"axis {axis} out of range for rank {r}")
    axis = axis + r if axis < 0 else axis
    return [TensorType(t.dtype, (_prod(list(t.shape[:axis])), _prod(list(t.shape[axis:]))))]


@op_schema("Transpose", inputs=["data"], outputs=["transposed"], attrs=[Attr("perm", AttrType.INTS, ())])
def _transpose(ctx: InferContext) -> list[TensorType]:
    """Permute axes; default perm reverses them."""
    t = ctx.input_type(0)
    if t.shape is None:
        given = list(ctx.attrs["perm"])
        if given and sorted(given) != list(range(len(given))):  # also checked when the rank is unknown
            raise ctx.fail(f"perm {given} is not a permutation of rank {len(given)}")
        return unknown_type(t.dtype, len(given) or None)
    r = len(t.shape)
    perm = list(ctx.attrs["perm"]) or list(range(r))[::-1]
    # ONNX shape inference requires 0 <= perm[i] < rank (no negative entries), and so do the passes.
    if sorted(perm) != list(range(r)):
        raise ctx.fail(f"perm {perm} is not a permutation of rank {r}")
    return [TensorType(t.dtype, tuple(t.shape[p] for p in perm))]


@op_schema("Squeeze", inputs=["data", "axes?"], outputs=["squeezed"])
def _squeeze(ctx: InferContext) -> list[TensorType]:
    """Drop the listed size-1 axes (every size-1 axis when axes is absent)."""
    t = ctx.input_type(0)
    if t.shape is None:
        return unknown_type(t.dtype, None)
    r = len(t.shape)
    if ctx.has_input(1):
        axes = const_ints(ctx, 1)
        if axes is None:
            n = input_len(ctx, 1)
            return unknown_type(t.dtype, None if n is None else r - n)
        axes = normalize_axes(axes, r, ctx)
        for a in axes:
            if isinstance(t.shape[a], int) and t.shape[a] != 1:
                raise ctx.fail(f"cannot squeeze axis {a} of size {t.shape[a]} (shape {list(t.shape)})")
    else:
        if not all(isinstance(d, int) for d in t.shape):
            return unknown_type(t.dtype, None)  # a symbolic dim might be 1
        axes = [i for i, d in enumerate(t.shape) if d == 1]
    return [TensorType(t.dtype, tuple(d for i, d in enumerate(t.shape) if i not in axes))]


@op_schema("Unsqueeze", inputs=["data", "axes"], outputs=["expanded"])
def _unsqueeze(ctx: InferContext) -> list[TensorType]:
    """Insert size-1 axes at the listed positions of the output."""
    t = ctx.input_type(0)
    axes = const_ints(ctx, 1)
    n = len(axes) if axes is not None else input_len(ctx, 1)
    if t.shape is None or axes is None:
        return unknown_type(t.dtype, None if t.shape is None or n is None else len(t.shape) + n)
    r = len(t.shape) + len(axes)
    axes = normalize_axes(axes, r, ctx)
    dims = iter(t.shape)
    return [TensorType(t.dtype, tuple(1 if i in axes else next(dims) for i in range(r)))]


@op_schema("Concat", inputs=["inputs*"], outputs=["concat_result"], attrs=[Attr("axis", AttrType.INT)])
def _concat(ctx: InferContext) -> list[TensorType]:
    """Join along axis; other dims must agree."""
    types = [ctx.input_type(i) for i in range(len(ctx.node.inputs))]
    shapes = [t.shape for t in types]
    known = [s for s in shapes if s is not None]
    if not known:
        return unknown_type(types[0].dtype, None)
    r = len(known[0])
    if any(len(s) != r for s in known):
        raise ctx.fail(f"inputs have different ranks: {[list(s) for s in known]}")
    (axis,) = normalize_axes([ctx.attrs["axis"]], r, ctx)
    out: list[Dim] = []
    for k in range(r):
        # Non-axis dims must agree, so a dim known on any input is the output's dim.
        dims: list[Dim] = [s[k] for s in known] + ([None] if len(known) < len(shapes) else [])
        if k == axis:
            out.append(sum(dims) if all(isinstance(d, int) for d in dims) else None)  # type: ignore[arg-type]
            continue
        ints = {d for d in dims if isinstance(d, int)}
        if len(ints) > 1:
            raise ctx.fail(f"dim {k} differs between inputs: {[list(s) for s in known]}")
        out.append(ints.pop() if ints else next((d for d in dims if isinstance(d, str)), None))
    return [TensorType(types[0].dtype, tuple(out))]


def split_sizes(dim: int, n: int) -> list[int]:
    """Split-18 sizes for ``num_outputs``: ceil(dim / n) each, the last one smaller."""
    chunk = -(-dim // n)
    sizes = [min(chunk, max(0, dim - chunk * k)) for k in range(n)]
    if chunk * (n - 1) >= dim and dim:
        raise InvalidModelError(f"cannot split a dim of {dim} into {n} non-empty parts")
    return sizes


@op_schema(
    "Split",
    inputs=["input", "split?"],
    outputs=["outputs*"],
    attrs=[Attr("axis", AttrType.INT, 0), Attr("num_outputs", AttrType.INT, 0)],
)
def _split(ctx: InferContext) -> list[TensorType]:
    """Split along axis by the split input, or into num_outputs (= the output count) parts."""
    t = ctx.input_type(0)
    n = len(ctx.node.outputs)
    if ctx.attrs["num_outputs"] and ctx.attrs["num_outputs"] != n:
        raise ctx.fail(f"num_outputs={ctx.attrs['num_outputs']} but the node has {n} outputs")
    if t.shape is None:
        return unknown_type(t.dtype, None) * n
    (axis,) = normalize_axes([ctx.attrs["axis"]], len(t.shape), ctx)
    d = t.shape[axis]
    sizes: list[Dim]
    if ctx.has_input(1):
        split = const_ints(ctx, 1)
        if split is None:
            sizes = [None] * n
        else:
            if len(split) != n or (isinstance(d, int) and sum(split) != d):
                raise ctx.fail(f"split {split} does not cut dim {d} into {n} outputs")
            sizes = list(split)
    elif isinstance(d, int):
        try:
            sizes = list(split_sizes(d, n))
        except InvalidModelError as e:
            raise ctx.fail(str(e)) from e
    else:
        sizes = [None] * n
    return [TensorType(t.dtype, (*t.shape[:axis], s, *t.shape[axis + 1 :])) for s in sizes]


def slice_range(dim: int, start: int, end: int, step: int) -> tuple[int, int, int]:
    """ONNX Slice clamping: (start, end, length); end == -1 with a negative step means 'past index 0'."""
    if step == 0:
        raise InvalidModelError("Slice step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        length = max(0, -(-(end - start) // step))
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        length = max(0, -(-(start - end) // -step))
    return start, end, length


@op_schema("Slice", inputs=["data", "starts", "ends", "axes?", "steps?"], outputs=["output"])
def _slice(ctx: InferContext) -> list[TensorType]:
    """ONNX Slice-13: per-axis start/end/step with clamping and negative steps."""
    t = ctx.input_type(0)
    if t.shape is None:
        return unknown_type(t.dtype, None)
    r = len(t.shape)
    starts, ends = const_ints(ctx, 1), const_ints(ctx, 2)
    axes = const_ints(ctx, 3) if ctx.has_input(3) else None
    steps = const_ints(ctx, 4) if ctx.has_input(4) else None
    if ctx.has_input(3) and axes is None:
        return unknown_type(t.dtype, r)
    n = len(starts) if starts is not None else len(ends) if ends is not None else input_len(ctx, 1)
    if axes is None:
        if n is None:
            return unknown_type(t.dtype, r)
        axes = list(range(n))
    axes = normalize_axes(axes, r, ctx)
    dims = list(t.shape)
    if starts is None or ends is None or (steps is None and ctx.has_input(4)):
        for a in axes:
            dims[a] = None
        return [TensorType(t.dtype, tuple(dims))]
    steps = steps or [1] * len(axes)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.fail(f"starts {starts}, ends {ends}, axes {axes}, steps {steps} differ in length")
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        if st == 0:
            raise ctx.fail("step 0 is not allowed")
        d = dims[a]
        dims[a] = slice_range(d, s, e, st)[2] if isinstance(d, int) else None
    return [TensorType(t.dtype, tuple(dims))]


@op_schema(
    "Pad",
    inputs=["data", "pads", "constant_value?", "axes?"],
    outputs=["output"],
    attrs=[Attr("mode", AttrType.STRING, "constant", "constant, reflect, edge or wrap")],
)
def _pad(ctx: InferContext) -> list[TensorType]:
    """Pad (or crop, with negative pads) each axis; pads are begins then ends."""
    t = ctx.input_type(0)
    if ctx.attrs["mode"] not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.fail(f"mode {ctx.attrs['mode']!r} is not one of constant, reflect, edge, wrap")
    if t.shape is None:
        return unknown_type(t.dtype, None)
    r = len(t.shape)
    pads = const_ints(ctx, 1)
    axes = const_ints(ctx, 3) if ctx.has_input(3) else list(range(r))
    if axes is None:
        return unknown_type(t.dtype, r)
    axes = normalize_axes(axes, r, ctx)
    dims = list(t.shape)
    if pads is None:
        for a in axes:
            dims[a] = None
        return [TensorType(t.dtype, tuple(dims))]
    if len(pads) != 2 * len(axes):
        raise ctx.fail(f"pads {pads} must have 2 x {len(axes)} entries")
    for k, a in enumerate(axes):
        d = dims[a]
        extra = pads[k] + pads[k + len(axes)]
        dims[a] = d + extra if isinstance(d, int) else (d if extra == 0 else None)
    return [TensorType(t.dtype, tuple(dims))]
