"""Reference kernels of shape-manipulating ops. Shape-like inputs are read at run time.

The clamping and size rules are shared with the schemas (convertmodel/ir/ops/shape.py) so
inferred shapes and kernel outputs cannot disagree. Resize lives in ``resize.py``.
"""

from __future__ import annotations

import math

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.ops.elementwise import normalize_axes
from convertmodel.ir.ops.shape import reshape_target, slice_range, split_sizes
from convertmodel.ir.ops.shape_data import shape_bounds
from convertmodel.limits import MAX_DIM, check_alloc, check_growth
from convertmodel.runtime.registry import KernelContext, kernel


def _ints(v: np.ndarray) -> list[int]:
    a = np.asarray(v)
    if a.dtype.kind not in "iub":
        raise InvalidModelError(f"expected an integer tensor, got {a.dtype} {a.reshape(-1)[:8].tolist()}")
    return [int(x) for x in a.reshape(-1)]


def _fail(ctx: KernelContext, message: str) -> InvalidModelError:
    return InvalidModelError(f"{ctx.node.op_type} {ctx.node.name!r}: {message}")


@kernel("Reshape")
def reshape(ctx: KernelContext, x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    try:
        target = reshape_target(x.shape, _ints(shape), bool(ctx.attrs["allowzero"]))
    except InvalidModelError as e:
        raise _fail(ctx, str(e)) from e
    if any(isinstance(d, int) and d > MAX_DIM for d in target):  # huge dims beside a 0: numpy's intp overflows
        raise _fail(ctx, f"target shape {target} has a dimension above 2**62")
    return x.reshape(target)  # type: ignore[arg-type]


@kernel("Flatten")
def flatten(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    axis = int(ctx.attrs["axis"])
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@kernel("Transpose")
def transpose(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    perm = list(ctx.attrs["perm"]) or list(range(x.ndim))[::-1]
    return np.ascontiguousarray(np.transpose(x, perm))


@kernel("Squeeze")
def squeeze(ctx: KernelContext, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    if axes is None or axes.size == 0:
        return np.squeeze(x)
    ax = normalize_axes(_ints(axes), x.ndim)
    if any(x.shape[a] != 1 for a in ax):
        raise _fail(ctx, f"cannot squeeze axes {ax} of shape {list(x.shape)}")
    return np.squeeze(x, axis=tuple(ax))


@kernel("Unsqueeze")
def unsqueeze(ctx: KernelContext, x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    ax = normalize_axes(_ints(axes), x.ndim + axes.size)
    return np.expand_dims(x, tuple(ax))


@kernel("Concat")
def concat(ctx: KernelContext, *xs: np.ndarray) -> np.ndarray:
    try:
        return np.concatenate(xs, axis=int(ctx.attrs["axis"]))
    except ValueError as e:
        raise _fail(ctx, f"cannot join shapes {[list(x.shape) for x in xs]} on axis {ctx.attrs['axis']}") from e


@kernel("Split")
def split(ctx: KernelContext, x: np.ndarray, sizes: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    (axis,) = normalize_axes([int(ctx.attrs["axis"])], x.ndim)
    n = len(ctx.node.outputs)
    parts = _ints(sizes) if sizes is not None else split_sizes(x.shape[axis], n)
    if len(parts) != n or sum(parts) != x.shape[axis] or min(parts) < 0:
        raise _fail(ctx, f"split {parts} does not cut dim {x.shape[axis]} into {n} outputs")
    return tuple(np.split(x, np.cumsum(parts)[:-1].tolist(), axis=axis))


@kernel("Slice")
def slice_(
    ctx: KernelContext,
    x: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    axes: np.ndarray | None = None,
    steps: np.ndarray | None = None,
) -> np.ndarray:
    st, en = _ints(starts), _ints(ends)
    ax = normalize_axes(_ints(axes), x.ndim) if axes is not None else list(range(len(st)))
    sp = _ints(steps) if steps is not None else [1] * len(st)
    if not len(st) == len(en) == len(ax) == len(sp):
        raise _fail(ctx, f"starts {st}, ends {en}, axes {ax}, steps {sp} differ in length")
    index: list[slice] = [slice(None)] * x.ndim
    for a, s, e, step in zip(ax, st, en, sp, strict=True):
        try:
            b, end, _ = slice_range(x.shape[a], s, e, step)
        except InvalidModelError as err:
            raise _fail(ctx, str(err)) from err
        # end == -1 with a negative step means "through index 0": Python spells that None.
        index[a] = slice(b, None if end < 0 else end, step)
    return x[tuple(index)]


@kernel("Pad")
def pad(
    ctx: KernelContext, x: np.ndarray, pads: np.ndarray, value: np.ndarray | None = None, axes: np.ndarray | None = None
) -> np.ndarray:
    ax = normalize_axes(_ints(axes), x.ndim) if axes is not None else list(range(x.ndim))
    p = _ints(pads)
    if len(p) != 2 * len(ax):
        raise _fail(ctx, f"pads {p} must have 2 x {len(ax)} entries")
    width = [(0, 0)] * x.ndim
    crop: list[slice] = [slice(None)] * x.ndim
    for k, a in enumerate(ax):
        b, e = p[k], p[k + len(ax)]
        # Negative pads crop (ONNX); np.pad only grows, so crop first.
        crop[a] = slice(max(0, -b), x.shape[a] - max(0, -e))
        width[a] = (max(0, b), max(0, e))
    x = x[tuple(crop)]
    out = [d + b + e for d, (b, e) in zip(x.shape, width, strict=True)]
    check_growth(out, x.dtype.itemsize, x.nbytes, f"Pad {ctx.node.name!r}")
    mode = ctx.attrs["mode"]
    if not any(b or e for b, e in width):  # nothing to add (a scalar, all-zero pads): np.pad rejects an empty width
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise _fail(ctx, f"mode {mode!r} is not one of constant, reflect, edge, wrap")
        return x.copy()
    if mode == "constant":
        cval = np.asarray(value).reshape(-1)[0] if value is not None and value.size else 0
        return np.pad(x, width, mode="constant", constant_values=np.asarray(cval, dtype=x.dtype))
    if mode in ("reflect", "edge", "wrap"):
        for a, (b, e) in enumerate(width):
            if (b or e) and x.shape[a] == 0:
                raise _fail(ctx, f"mode {mode} cannot pad an empty axis {a}")
        return np.pad(x, width, mode=mode)
    raise _fail(ctx, f"mode {mode!r} is not one of constant, reflect, edge, wrap")


@kernel("Shape")
def shape(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    b, e = shape_bounds(x.ndim, int(ctx.attrs["start"]), ctx.attrs["end"])
    return np.array(x.shape[b:e], dtype=np.int64)


@kernel("Size")
def size(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.array(x.size, dtype=np.int64)


@kernel("Gather")
def gather(ctx: KernelContext, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    (axis,) = normalize_axes([int(ctx.attrs["axis"])], x.ndim)
    n = x.shape[axis]
    idx = indices.astype(np.int64, copy=False)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise _fail(ctx, f"indices must lie in [{-n}, {n - 1}], got [{idx.min()}, {idx.max()}]")
    return np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)


@kernel("Expand")
def expand(ctx: KernelContext, x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    try:
        out = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
    except ValueError as e:
        raise _fail(ctx, f"input shape {list(x.shape)} does not broadcast to {_ints(shape)}") from e
    check_growth(out, x.dtype.itemsize, x.nbytes, f"Expand {ctx.node.name!r}")
    return np.broadcast_to(x, out).copy()


@kernel("Tile")
def tile(ctx: KernelContext, x: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    reps = _ints(repeats)
    if len(reps) != x.ndim:
        raise _fail(ctx, f"repeats {reps} must have one entry per input axis ({x.ndim})")
    if min(reps, default=0) < 0:
        raise _fail(ctx, f"repeats {reps} must be >= 0")
    out = [d * r for d, r in zip(x.shape, reps, strict=True)]
    check_growth(out, x.dtype.itemsize, x.nbytes, f"Tile {ctx.node.name!r}")
    if x.size == 0 or 0 in reps:  # np.tile cannot reshape an empty result to a shape with large dims
        return np.zeros(out, dtype=x.dtype)
    return np.tile(x, reps)


@kernel("ConstantOfShape")
def constant_of_shape(ctx: KernelContext, shape: np.ndarray) -> np.ndarray:
    v = ctx.attrs["value"]
    check_alloc(_ints(shape), 4 if v is None else v.dtype.itemsize, f"ConstantOfShape {ctx.node.name!r}")
    if v is None:
        return np.zeros(_ints(shape), dtype=np.float32)
    return np.full(_ints(shape), v.reshape(-1)[0], dtype=v.dtype)


@kernel("Range")
def range_(ctx: KernelContext, start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
    s, lim, d = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    if d == 0:
        raise _fail(ctx, "delta must not be 0")
    span = (float(lim) - float(s)) / float(d)
    if not math.isfinite(span):
        raise _fail(ctx, f"start {s}, limit {lim}, delta {d} give no finite number of elements")
    n = max(0, math.ceil(span))
    check_alloc([n], s.dtype.itemsize, f"Range {ctx.node.name!r}")
    # start + i * delta in the input dtype (the ONNX spec's formula), not an accumulated sum.
    return (s + np.arange(n, dtype=s.dtype) * d).astype(s.dtype, copy=False)
