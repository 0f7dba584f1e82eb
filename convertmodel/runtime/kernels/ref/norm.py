"""Reference kernels: BatchNormalization, ChannelAffine, LRN, InstanceNormalization, LpNormalization,
Softmax, LogSoftmax. All vectorized numpy in the input's dtype (float32)."""

from __future__ import annotations

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.runtime.registry import KernelContext, kernel


def _along(v: np.ndarray, axis: int, ndim: int, dtype: np.dtype) -> np.ndarray:
    """A (C,) vector shaped to broadcast along ``axis`` of a rank-``ndim`` array."""
    return v.astype(dtype, copy=False).reshape((-1,) + (1,) * (ndim - axis - 1))


@kernel("BatchNormalization")
def batch_norm(
    ctx: KernelContext, x: np.ndarray, scale: np.ndarray, b: np.ndarray, mean: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Inference BatchNormalization; extra (training) outputs get the unchanged input_mean / input_var."""
    eps = ctx.attrs["epsilon"]
    # Fold into one multiply-add per element: a = scale / sqrt(var + eps), y = x * a + (B - mean * a).
    a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = b.astype(np.float64) - mean.astype(np.float64) * a
    y = x * _along(a, 1, x.ndim, x.dtype)
    y += _along(shift, 1, x.ndim, x.dtype)
    extra = [mean, var, mean, var][: len(ctx.node.outputs) - 1]  # inference: statistics are not updated
    return (y, *extra)


@kernel("ChannelAffine", domain=CM_DOMAIN)
def channel_affine(
    ctx: KernelContext, x: np.ndarray, scale: np.ndarray | None = None, b: np.ndarray | None = None
) -> np.ndarray:
    """x * scale + B along ``axis``; an omitted scale is 1, an omitted B is 0."""
    axis = ctx.attrs["axis"] % x.ndim
    y = x * _along(scale, axis, x.ndim, x.dtype) if scale is not None else x.copy()
    if b is not None:
        y += _along(b, axis, x.ndim, x.dtype)
    return y


@kernel("LRN")
def lrn(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """Across-channel LRN as in the schema; the channel window sum is one add per window offset."""
    size = ctx.attrs["size"]
    alpha, beta, bias = ctx.attrs["alpha"], ctx.attrs["beta"], ctx.attrs["bias"]
    arith = ctx.attrs.get("arith", "onnx")
    if arith != "onnx":
        from convertmodel.runtime.kernels.ref.bigquant import bigdl_lrn

        return bigdl_lrn(x, size, alpha, beta, bias, "float32" if arith == "bigdl-f32" else "float64")
    c = x.shape[1]
    lo = (size - 1) // 2  # channels before c in the window (ONNX: floor((size-1)/2)), after: the rest
    sq = np.square(x)
    acc = np.zeros_like(sq)
    # Window offset k adds channel j + k - lo to channel j. Only offsets that reach a real channel add
    # anything (the others would add exact zeros), so the loop is at most 2C - 1 long whatever ``size``
    # says, and the sums are the same, in the same order, as over a zero-padded copy.
    for k in range(max(0, lo - c + 1), min(size, lo + c)):
        d = k - lo
        if d >= 0:
            acc[:, : c - d] += sq[:, d:]
        else:
            acc[:, -d:] += sq[:, : c + d]
    acc *= x.dtype.type(alpha / size)
    acc += x.dtype.type(bias)
    np.power(acc, x.dtype.type(beta), out=acc)
    return x / acc


@kernel("InstanceNormalization")
def instance_norm(ctx: KernelContext, x: np.ndarray, scale: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Statistics per (sample, channel) in float64, result in x's dtype."""
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    var = x.var(axis=axes, keepdims=True, dtype=np.float64)
    a = _along(scale, 1, x.ndim, np.dtype(np.float64)) / np.sqrt(var + ctx.attrs["epsilon"])
    y = (x - mean) * a + _along(b, 1, x.ndim, np.dtype(np.float64))
    return y.astype(x.dtype, copy=False)


@kernel("LpNormalization")
def lp_norm(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """x divided by its L1 or L2 norm along ``axis``."""
    axis = ctx.attrs["axis"]
    if ctx.attrs["p"] == 1:
        norm = np.abs(x).sum(axis=axis, keepdims=True)
    else:
        norm = np.sqrt(np.square(x).sum(axis=axis, keepdims=True))
    return x / norm


@kernel("Softmax")
def softmax(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """Softmax along ``axis`` (opset 13), max-shifted."""
    axis = ctx.attrs["axis"]
    if x.size == 0:  # an empty batch (or axis): an empty result, as numpy cannot take the max of nothing
        return x.astype(x.dtype, copy=True)
    y = x - x.max(axis=axis, keepdims=True)  # shift for stability; exp(<= 0) never overflows
    np.exp(y, out=y)
    y /= y.sum(axis=axis, keepdims=True)
    return y


@kernel("LogSoftmax")
def log_softmax(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    """LogSoftmax along ``axis`` (opset 13), max-shifted."""
    axis = ctx.attrs["axis"]
    if x.size == 0:  # an empty batch (or axis): an empty result
        return x.astype(x.dtype, copy=True)
    y = x - x.max(axis=axis, keepdims=True)
    y -= np.log(np.exp(y).sum(axis=axis, keepdims=True))
    return y
