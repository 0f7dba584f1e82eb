"""Reference Conv kernel: im2col + BLAS matmul (the fp32 baseline int8 speedups are quoted against)."""

from __future__ import annotations

import numpy as np

from convertmodel.runtime.kernels.ref.im2col import ConvGeometry, im2col
from convertmodel.runtime.registry import KernelContext, kernel


def conv_fp32(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    N = x.shape[0]
    M = w.shape[0]
    G = geo.group
    cols, out_sp = im2col(x, geo)  # (N*P, G, K)
    wg = w.reshape(G, M // G, -1)  # (G, Mg, K)
    if G == 1:
        y = cols[:, 0, :] @ wg[0].T  # (N*P, M)
    else:
        y = np.matmul(cols.transpose(1, 0, 2), wg.transpose(0, 2, 1))  # (G, N*P, Mg)
        y = y.transpose(1, 0, 2).reshape(cols.shape[0], M)
    if b is not None:
        y += b.astype(y.dtype, copy=False)
    n_sp = len(out_sp)
    y = y.reshape(N, *out_sp, M)
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if n_sp else y


@kernel("Conv")
def conv(ctx: KernelContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    geo = ctx.cache.get("geo")
    if geo is None or ctx.cache.get("xshape") != x.shape[1:]:
        geo = ConvGeometry.from_attrs(ctx.attrs, x.shape, w.shape)
        ctx.cache["geo"], ctx.cache["xshape"] = geo, x.shape[1:]
    return conv_fp32(x, w, b, geo)
