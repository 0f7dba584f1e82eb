"""Reference Conv kernel: im2col + BLAS matmul (the fp32 baseline int8 speedups are quoted against),
and ConvTranspose: one BLAS matmul, then a col2im scatter with one vectorized add per kernel tap."""

from __future__ import annotations

import itertools

import numpy as np

from convertmodel.ir.ops.conv import conv_transpose_geometry
from convertmodel.runtime.kernels.ref.im2col import ConvGeometry, im2col_kp
from convertmodel.runtime.registry import KernelContext, kernel

#: Above this size of the im2col patch matrix a batch is convolved one sample at a time.
_MAX_COLS_BYTES = 256 << 20


def conv_fp32(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    """Conv of x (N, C, *spatial) with w (M, C/group, *k): im2col in column layout + one BLAS matmul per group."""
    N, C = x.shape[:2]
    M = w.shape[0]
    G = geo.group
    if C // G == 1 and G > 1:
        return _depthwise(x, w, b, geo)
    if N > 1:
        out_sp = geo.out_spatial(x.shape[2:])
        cols_bytes = N * C * int(np.prod(geo.kernel)) * int(np.prod(out_sp)) * x.dtype.itemsize
        if cols_bytes > _MAX_COLS_BYTES:
            # One sample at a time keeps the patch matrix near one image's size (VGG conv1_2: 115 MB per image).
            y = np.empty((N, M, *out_sp), dtype=np.result_type(x.dtype, w.dtype))
            for i in range(N):
                y[i] = conv_fp32(x[i : i + 1], w, b, geo)[0]
            return y
    cols, out_sp = im2col_kp(x, geo)  # (N, G, K, P)
    wg = w.reshape(G, M // G, -1).astype(cols.dtype, copy=False)  # (G, Mg, K)
    if G == 1:
        y = np.matmul(wg[0], cols[:, 0])  # (N, M, P): no transposes, already NCHW
    else:
        y = np.matmul(wg, cols)  # (N, G, Mg, P)
    y = y.reshape(N, M, *out_sp)
    if b is not None:
        y += b.astype(y.dtype, copy=False).reshape((M,) + (1,) * len(out_sp))
    return y


def _depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    """One input channel per group (depthwise, incl. a channel multiplier): a multiply-add per kernel tap
    over the whole tensor beats G tiny matmuls."""
    N, G = x.shape[:2]
    M = w.shape[0]
    n = len(geo.kernel)
    out_sp = geo.out_spatial(x.shape[2:])
    if any(geo.pads):
        x = np.pad(x, [(0, 0), (0, 0)] + [(geo.pads[i], geo.pads[n + i]) for i in range(n)])
    xg = x[:, :, None]  # (N, G, 1, *spatial)
    wt = w.reshape(G, M // G, -1).astype(x.dtype, copy=False)  # (G, Mg, taps)
    y = np.zeros((N, G, M // G, *out_sp), dtype=np.result_type(x.dtype, w.dtype))
    tmp = np.empty_like(y)
    for k, tap in enumerate(itertools.product(*[range(kk) for kk in geo.kernel])):
        src = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, geo.dilations, out_sp, geo.strides, strict=True)
        )
        np.multiply(xg[(slice(None), slice(None), slice(None), *src)], wt[:, :, k].reshape(G, -1, *[1] * n), out=tmp)
        y += tmp
    y = y.reshape(N, M, *out_sp)
    if b is not None:
        y += b.astype(y.dtype, copy=False).reshape((M,) + (1,) * n)
    return y


@kernel("Conv")
def conv(ctx: KernelContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """ONNX Conv; the geometry is resolved once per input shape and cached."""
    geo = ctx.cache.get("geo")
    if geo is None or ctx.cache.get("xshape") != x.shape[1:]:
        geo = ConvGeometry.from_attrs(ctx.attrs, x.shape, w.shape)
        ctx.cache["geo"], ctx.cache["xshape"] = geo, x.shape[1:]
    return conv_fp32(x, w, b, geo)


def conv_transpose_fp32(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    group: int,
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
    out_sp: tuple[int, ...],
) -> np.ndarray:
    """ConvTranspose of x (N, C, *in) with w (C, M/group, *k): the adjoint of Conv with the same geometry."""
    N, C = x.shape[:2]
    in_sp = x.shape[2:]
    kernel = w.shape[2:]
    n = len(kernel)
    G = group
    Mg = w.shape[1]
    P = int(np.prod(in_sp))
    # Every input pixel's contribution to every (output channel, tap): (N, G, Mg * prod(k), P), one batched matmul.
    wt = w.reshape(G, C // G, -1).transpose(0, 2, 1)  # (G, Mg*Kp, Cg)
    cols = np.matmul(wt[None], x.reshape(N, G, C // G, P))
    cols = cols.reshape(N, G, Mg, *kernel, *in_sp)
    # Scatter-add each tap into the full (uncropped) output, then crop the pads.
    full = [strides[i] * (in_sp[i] - 1) + dilations[i] * (kernel[i] - 1) + 1 for i in range(n)]
    size = [max(full[i], pads[i] + out_sp[i]) for i in range(n)]
    y = np.zeros((N, G, Mg, *size), dtype=np.result_type(x.dtype, w.dtype))
    for tap in itertools.product(*[range(k) for k in kernel]):
        dst = tuple(
            slice(t * d, t * d + s * (m - 1) + 1, s) for t, d, s, m in zip(tap, dilations, strides, in_sp, strict=True)
        )
        y[(slice(None), slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), slice(None), *tap)]
    crop = tuple(slice(pads[i], pads[i] + out_sp[i]) for i in range(n))
    out = y[(slice(None), slice(None), slice(None), *crop)].reshape(N, G * Mg, *out_sp)
    out = np.ascontiguousarray(out)
    if b is not None:
        out += b.astype(out.dtype, copy=False).reshape((-1,) + (1,) * n)
    return out


@kernel("ConvTranspose")
def conv_transpose(ctx: KernelContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """ONNX ConvTranspose; pads and output size come from the schema's conv_transpose_geometry."""
    cached = ctx.cache.get("geo")
    if cached is None or cached[0] != x.shape[1:]:
        n = x.ndim - 2
        kernel = tuple(ctx.attrs.get("kernel_shape") or w.shape[2:])
        pads, _, out_sp = conv_transpose_geometry(ctx.attrs, x.shape[2:], kernel, str(ctx.node))
        cached = (x.shape[1:], pads, tuple(int(d) for d in out_sp))  # type: ignore[arg-type]
        ctx.cache["geo"] = cached
        ctx.cache["sd"] = (tuple(ctx.attrs.get("strides") or (1,) * n), tuple(ctx.attrs.get("dilations") or (1,) * n))
    strides, dil = ctx.cache["sd"]
    return conv_transpose_fp32(x, w, b, int(ctx.attrs.get("group", 1)), strides, dil, cached[1], cached[2])
