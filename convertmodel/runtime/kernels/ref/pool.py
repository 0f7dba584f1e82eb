"""Reference pooling kernels: MaxPool, AveragePool (strided views, one vectorized step per window tap),
GlobalMaxPool, GlobalAveragePool.

Sizes and the AveragePool divisor follow the schema (convertmodel/ir/ops/pool.py), which was
checked against onnxruntime: see its docstrings for the exact ceil-mode and count_include_pad rules.
"""

from __future__ import annotations

import itertools

import numpy as np

from convertmodel.ir.ops.pool import PoolGeometry, pool_geometry
from convertmodel.runtime.registry import KernelContext, kernel


def _geometry(ctx: KernelContext, x: np.ndarray) -> tuple[PoolGeometry, tuple[int, ...]]:
    key = x.shape[2:]
    cached = ctx.cache.get("geo")
    if cached is None or cached[0] != key:
        geo = pool_geometry(ctx.attrs, x.shape, str(ctx.node))
        out = tuple(int(d) for d in geo.out_spatial(x.shape[2:]))  # type: ignore[arg-type]
        cached = (key, geo, out)
        ctx.cache["geo"] = cached
    return cached[1], cached[2]


def _padded(x: np.ndarray, geo: PoolGeometry, out_sp: tuple[int, ...], fill: float) -> np.ndarray:
    """``x`` padded by the begin pads and by enough end padding for every window (ceil mode may need more)."""
    n = len(geo.kernel)
    widths = [(0, 0), (0, 0)]
    for i in range(n):
        need = (out_sp[i] - 1) * geo.strides[i] + geo.dilations[i] * (geo.kernel[i] - 1) + 1
        widths.append((geo.pads[i], max(0, need - geo.pads[i] - x.shape[2 + i])))
    if all(w == (0, 0) for w in widths):
        return x
    return np.pad(x, widths, constant_values=fill)


def _taps(geo: PoolGeometry, out_sp: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """One strided slice per window tap: its value at every output position at once."""
    ranges = [range(k) for k in geo.kernel]
    return [
        (
            slice(None),
            slice(None),
            *(
                slice(t * d, t * d + (o - 1) * s + 1, s)
                for t, d, o, s in zip(tap, geo.dilations, out_sp, geo.strides, strict=True)
            ),
        )
        for tap in itertools.product(*ranges)
    ]


def _divisor(geo: PoolGeometry, spatial: tuple[int, ...], out_sp: tuple[int, ...], include_pad: bool) -> np.ndarray:
    """Taps per window that count: inside the input, or inside the padded extent with count_include_pad.

    The window is a product of per-axis ranges, so the count is the outer product of per-axis counts.
    """
    n = len(geo.kernel)
    counts = []
    for i in range(n):
        lo, hi = (-geo.pads[i], spatial[i] + geo.pads[n + i]) if include_pad else (0, spatial[i])
        start = np.arange(out_sp[i])[:, None] * geo.strides[i] - geo.pads[i]
        pos = start + np.arange(geo.kernel[i])[None, :] * geo.dilations[i]
        c = ((pos >= lo) & (pos < hi)).sum(axis=1)
        counts.append(c.reshape([-1 if j == i else 1 for j in range(n)]))
    total = counts[0]
    for c in counts[1:]:
        total = total * c
    return total


@kernel("MaxPool")
def max_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """Running maximum over the window taps; padding is -inf so it never wins."""
    geo, out_sp = _geometry(ctx, x)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = _padded(x, geo, out_sp, fill)
    taps = _taps(geo, out_sp)
    y = np.array(xp[taps[0]], copy=True)
    for sl in taps[1:]:
        np.maximum(y, xp[sl], out=y)
    return y


@kernel("AveragePool")
def average_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """Sum over the window taps divided by the per-position count of the schema's rule."""
    geo, out_sp = _geometry(ctx, x)
    xp = _padded(x, geo, out_sp, 0.0)
    taps = _taps(geo, out_sp)
    y = np.array(xp[taps[0]], copy=True)
    for sl in taps[1:]:
        np.add(y, xp[sl], out=y)
    cached = ctx.cache.get("div")
    if cached is None or cached[0] != x.shape[2:]:
        include = bool(ctx.attrs.get("count_include_pad", 0))
        cached = (x.shape[2:], _divisor(geo, x.shape[2:], out_sp, include).astype(x.dtype))
        ctx.cache["div"] = cached
    div = cached[1]
    # Divide by the count (not multiply by its reciprocal) to round like onnxruntime.
    np.divide(y, div, out=y)
    return y


@kernel("GlobalMaxPool")
def global_max_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """Max over all spatial axes, kept as size-1 dims."""
    if x.size == 0:  # an empty batch: an empty (N, C, 1, ...) result (numpy has no max of nothing)
        return np.zeros((*x.shape[:2], *([1] * (x.ndim - 2))), x.dtype)
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


@kernel("GlobalAveragePool")
def global_average_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """Mean over all spatial axes, kept as size-1 dims."""
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=x.dtype)
