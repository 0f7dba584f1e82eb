"""Reference int8 kernels QConv and QGemm: the op contract (docs/quantization.md) in numpy.

Exact by construction: the input codes ``q`` (0..255) and weights ``Wq`` (-127..127) are
small integers, so every partial sum of ``q @ Wq.T`` is an integer below ``255*127*K < 2**53``
and a float64 BLAS matmul computes the int32 accumulator exactly, in any summation order.
Work is done in blocks of rows so the float64 copies of the patches stay ~64 MB at most.
"""

from __future__ import annotations

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.quant.scheme import quantize_windows
from convertmodel.runtime.kernels.ref import bigquant
from convertmodel.runtime.kernels.ref.im2col import ConvGeometry, im2col
from convertmodel.runtime.registry import KernelContext, kernel

#: float64 elements per block of patches (64 MB).
_BLOCK_ELEMENTS = 1 << 23


def int8_accumulate(q: np.ndarray, wq: np.ndarray) -> np.ndarray:
    """Exact ``q (R, K) @ wq (M, K).T`` as int32 (R, M); ``q`` uint8 codes, ``wq`` int8."""
    acc = q.astype(np.float64) @ wq.astype(np.float64).T
    return acc.astype(np.int32)


def dequantize(
    acc: np.ndarray,
    mn: np.ndarray,
    r: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
    activation: str,
) -> np.ndarray:
    """Contract step 4: ``float32(acc) * (r_x * w_scale) + mn * w_sum + B`` in float32, then ReLU."""
    y = acc.astype(np.float32)
    y *= r[:, None] * w_scale[None, :]
    y += mn[:, None] * w_sum[None, :]
    if b is not None:
        y += b.astype(np.float32, copy=False)[None, :]
    if activation == "Relu":
        np.maximum(y, np.float32(0), out=y)
    return y


def qmatmul_rows(
    rows: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
    levels: int,
    activation: str,
    cache: dict | None = None,
) -> np.ndarray:
    """One window per row of ``rows`` (R, K) float32; returns (R, M) float32.

    The float64 copy of ``wq`` is cached in ``cache`` when small; a large weight (VGG's fc6 is
    102M values) is converted in blocks of output channels on every call instead, so running
    never holds an 8-bytes-per-weight copy of it.
    """
    r_total, k = rows.shape
    m = wq.shape[0]
    out = np.empty((r_total, m), dtype=np.float32)
    small = wq.size <= _BLOCK_ELEMENTS
    wt = cache.get("wq64T") if cache is not None else None
    if small and (wt is None or wt.shape != (k, m)):
        wt = np.ascontiguousarray(wq.astype(np.float64).T)  # (K, M)
        if cache is not None:
            cache["wq64T"] = wt
    m_step = m if small else max(1, _BLOCK_ELEMENTS // max(k, 1))
    step = max(1, _BLOCK_ELEMENTS // max(k, 1))
    for r0 in range(0, r_total, step):
        win = quantize_windows(rows[r0 : r0 + step], levels)
        q64 = win.q.astype(np.float64)
        acc = np.empty((q64.shape[0], m), dtype=np.int32)
        for m0 in range(0, m, m_step):
            wblk = wt if small and wt is not None else wq[m0 : m0 + m_step].astype(np.float64).T
            acc[:, m0 : m0 + m_step] = q64 @ wblk  # exact integers (see module doc)
        out[r0 : r0 + step] = dequantize(acc, win.mn, win.r, w_scale, w_sum, b, activation)
    return out


def _f32(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.asarray(a, dtype=np.float32)


@kernel("QConv", domain=CM_DOMAIN)
def qconv(
    ctx: KernelContext,
    x: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None = None,
) -> np.ndarray:
    geo = ctx.cache.get("geo")
    if geo is None or ctx.cache.get("xshape") != x.shape[1:]:
        geo = ConvGeometry.from_attrs(ctx.attrs, x.shape, wq.shape)
        ctx.cache["geo"], ctx.cache["xshape"] = geo, x.shape[1:]
    x = np.asarray(x, dtype=np.float32)
    n, m, g = x.shape[0], wq.shape[0], geo.group
    mg = m // g
    levels, act = int(ctx.attrs["input_levels"]), str(ctx.attrs["activation"])
    if ctx.attrs.get("arith", "contract") == "bigquant":
        return bigquant.qconv(
            x, wq, np.asarray(w_scale, np.float32), np.asarray(w_sum, np.float32), _f32(b), geo, levels, act, ctx.cache
        )
    cols, out_sp = im2col(x, geo)  # (N*P, G, K): one window per output position and group
    rows, k = cols.shape[0], cols.shape[2]
    w64 = ctx.cache.get("w64")
    if w64 is None or w64.shape != (g, k, mg):
        # (G, K, Mg) float64, converted once per executor (the weights are constants)
        w64 = ctx.cache["w64"] = np.ascontiguousarray(wq.reshape(g, mg, k).astype(np.float64).transpose(0, 2, 1))
    ws = np.asarray(w_scale, np.float32).reshape(g, mg)
    wsum = np.asarray(w_sum, np.float32).reshape(g, mg)
    bias = None if b is None else np.asarray(b, np.float32).reshape(g, mg)
    y = np.empty((rows, g, mg), dtype=np.float32)
    step = max(1, _BLOCK_ELEMENTS // max(g * k, 1))
    for r0 in range(0, rows, step):
        win = quantize_windows(cols[r0 : r0 + step], levels)  # q (R, G, K); mn, r (R, G)
        acc = np.matmul(win.q.transpose(1, 0, 2).astype(np.float64), w64).astype(np.int32)  # (G, R, Mg)
        yb = acc.transpose(1, 0, 2).astype(np.float32)  # (R, G, Mg)
        yb *= win.r[:, :, None] * ws[None]
        yb += win.mn[:, :, None] * wsum[None]
        if bias is not None:
            yb += bias[None]
        if act == "Relu":
            np.maximum(yb, np.float32(0), out=yb)
        y[r0 : r0 + step] = yb
    y = y.reshape(n, *out_sp, m)
    return np.ascontiguousarray(np.moveaxis(y, -1, 1))


@kernel("QGemm", domain=CM_DOMAIN)
def qgemm(
    ctx: KernelContext,
    x: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None = None,
) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if ctx.attrs.get("arith", "contract") == "bigquant":
        levels, act = int(ctx.attrs["input_levels"]), str(ctx.attrs["activation"])
        return bigquant.qgemm(
            x, wq, np.asarray(w_scale, np.float32), np.asarray(w_sum, np.float32), _f32(b), levels, act, ctx.cache
        )
    lead, k = x.shape[:-1], x.shape[-1]
    y = qmatmul_rows(
        x.reshape(-1, k),
        wq,
        np.asarray(w_scale, np.float32),
        np.asarray(w_sum, np.float32),
        _f32(b),
        int(ctx.attrs["input_levels"]),
        str(ctx.attrs["activation"]),
        ctx.cache,
    )
    return y.reshape(*lead, wq.shape[0])
