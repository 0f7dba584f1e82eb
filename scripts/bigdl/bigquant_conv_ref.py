"""A slow numpy re-statement of BigDL 2.4's int8 SpatialConvolution (BigQuant, AVX-512 build), for the readers.

Measured against real BigDL 2.4 (fixtures/bigdl/README.md, "BigDL's int8 numerics"): within 6e-6 on 14 seeded
convolutions and, with the compat Linear, the whole v2.4/lenet_q.bigdl probabilities within 3e-7. From
intel-analytics/BigDL-core ``bigquant/native/ops/shuffle/shuffle_im2col.h`` (``PadQuantizeShuffleNHWCIm2col``
with ``transpose = true``, what ``ConvDataInit`` runs for NCHW input):

* per im2col patch (NHWC order kh, kw, c; padding counts as 0): ``scale = f32(127) / (max - min)``,
  ``shift = -min * scale``; each code is ``f32(x * scale + shift)``, rounded to nearest even where the SIMD kernel
  handles it (chunks of ``K8`` = 8 along a kernel row fully inside the image, or along the channels of one pixel
  when C >= 8) and truncated elsewhere; padded positions get ``trunc(shift)``;
* epilogue ``acc * (1 / scale) * w_scale + min * w_sum``, weights re-quantized to 64 levels at load.

    conv = bigquant_conv(x, w, stride=1, pad=0)   # x (N, C, H, W) float32, w (M, C, kH, kW); add the bias after
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
K8 = 8  # CONV_SHUFFLE_KERNEL_K of the AVX2 and AVX-512 builds


def _fma(a: float, b: float, c: float) -> np.float32:
    return F32(np.float64(a) * np.float64(b) + np.float64(c))


def weights64(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(64-level codes in NHWC patch order, their scale, the original fp32 row sums) as BigDL loads them."""
    m = w.shape[0]
    w2 = w.reshape(m, -1)
    a = np.maximum(np.abs(w2.max(1)), np.abs(w2.min(1)))
    q127 = np.floor(w2.astype(np.float64) / a[:, None] * 127 + 0.5)
    dq = (q127 / 127 * a[:, None]).astype(F32)
    sc = F32(64) / np.abs(dq).max(1)
    p = dq * sc[:, None]
    wq = np.sign(p) * np.floor(np.abs(p) + 0.5)
    return wq.reshape(w.shape).transpose(0, 2, 3, 1).reshape(m, -1), (1 / sc).astype(F32), w2.sum(1)


def _patch_codes(xn: np.ndarray, y0: int, x0: int, kh: int, kw: int) -> tuple[np.ndarray, F32, F32]:
    h_in, w_in, c = xn.shape
    vals = np.zeros((kh, kw, c), F32)
    for h in range(kh):
        for w in range(kw):
            if 0 <= y0 + h < h_in and 0 <= x0 + w < w_in:
                vals[h, w] = xn[y0 + h, x0 + w]
    lo, hi = F32(vals.min()), F32(vals.max())
    codes = np.zeros(kh * kw * c)
    if hi <= lo:  # constant patch: 1/scale is 0, only min * w_sum remains
        return codes, lo, F32(0)
    scale = F32(F32(127) / F32(hi - lo))
    shift = F32(-lo * scale)
    for h in range(kh):
        iy = y0 + h
        valid_row = 0 <= iy < h_in
        if valid_row and 0 <= x0 < w_in and 0 <= x0 + kw < w_in:  # fast path: the whole kernel row at once
            off, length = h * kw * c, kw * c
            remain = 0 if off % K8 == 0 else min(K8 - off % K8, length)
            nvec = (length - remain) // K8 * K8
            for z in range(length):
                t = _fma(xn[iy, x0 + z // c, z % c], scale, shift)
                codes[off + z] = np.rint(t) if remain <= z < remain + nvec else np.trunc(t)
            continue
        for w in range(kw):
            ix, off = x0 + w, (h * kw + w) * c
            if not (valid_row and 0 <= ix < w_in):
                codes[off : off + c] = np.trunc(shift)
                continue
            remain = 0 if off % K8 == 0 else min(K8 - off % K8, c)
            nvec = (c - remain) // K8 * K8 if c >= K8 else 0
            for ch in range(c):
                t = _fma(xn[iy, ix, ch], scale, shift)
                codes[off + ch] = np.rint(t) if remain <= ch < remain + nvec else np.trunc(t)
    return codes, lo, F32(1) / scale


def bigquant_conv(x: np.ndarray, w: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """BigDL 2.4's int8 convolution output (no bias) for float32 NCHW ``x`` and fp32 weight ``w``."""
    n, _, h_in, w_in = x.shape
    m, _, kh, kw = w.shape
    oh, ow = (h_in + 2 * pad - kh) // stride + 1, (w_in + 2 * pad - kw) // stride + 1
    wq, ws, wsum = weights64(w)
    xn = x.astype(F32).transpose(0, 2, 3, 1)
    out = np.zeros((n, m, oh, ow), F32)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                codes, lo, ratio = _patch_codes(xn[b], -pad + oy * stride, -pad + ox * stride, kh, kw)
                out[b, :, oy, ox] = (codes @ wq.T) * (ratio * ws) + lo * wsum
    return out
