"""A numpy statement of how BigDL 2.x's BigQuant (bigdl-core, ``bigquant/native``) quantizes a conv input,
for tests that locate the difference between BigDL's int8 outputs and convertmodel's int8 contract.

Read from ``ops/shuffle/shuffle_im2col.h`` (``PadQuantizeShuffleNHWCIm2col``), reached for NCHW and NHWC
inputs alike through ``c_api.cc: InternalQuantizedConvDataInit``:

* the input is transposed to NHWC; a window's values are ordered (kh, kw, c); padding counts as 0 in
  its min and max; ``scale = 127 / (max - min)`` and ``shift = -min * scale`` in float32;
* codes are written in blocks of ``shuffle_cols = 8`` along the window. Where a block is whole, a SIMD
  kernel computes ``cvtps2dq(fma(x, scale, shift))`` (round half to even); the scalar loops before and
  after such blocks compute ``(uint8_t)(x * scale + shift)``, which the compiler contracts to an FMA
  (the fixtures agree only with the fused form), then truncates; padding gets ``(uint8_t)shift``. Whole blocks exist only in rows of the window that lie inside the input
  (``0 <= x0`` and ``x0 + kw < W``, no dilation: kw*C contiguous values) or, elsewhere, inside one
  position's C channels when C >= 8;
* ``ratio = 1 / scale``; the GEMM epilogue is the contract's ``acc * ratio * w_ratio + min * w_sum + b``.

This is not convertmodel's contract (it rounds every code half up); the runtime does not implement it.
"""

from __future__ import annotations

import numpy as np

SHUFFLE_COLS = 8


def simd_mask(c: int, kh: int, kw: int, ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    """(P, kh*kw*c) bool: which codes of each window (output positions at top-left ``ys``, ``xs``) the
    SIMD kernel writes."""
    k = kh * kw * c
    mask = np.zeros((len(ys), k), bool)
    cols = np.arange(k)
    for i, (y0, x0) in enumerate(zip(ys, xs, strict=True)):
        row_inside = 0 <= x0 and x0 + kw < w
        for r in range(kh):
            if not 0 <= y0 + r < h:
                continue
            if row_inside:
                base, length = r * kw * c, kw * c
                spans = [(base, length)]
            elif c >= SHUFFLE_COLS:
                spans = [((r * kw + q) * c, c) for q in range(kw) if 0 <= x0 + q < w]
            else:
                continue
            for base, length in spans:
                ri = base % SHUFFLE_COLS
                rem = 0 if ri == 0 else min(SHUFFLE_COLS - ri, length)
                nblk = (length - rem) // SHUFFLE_COLS
                lo = base + rem
                mask[i] |= (cols >= lo) & (cols < lo + SHUFFLE_COLS * nblk)
    return mask


def bigquant_conv(
    x: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    pads: tuple[int, int],
) -> np.ndarray:
    """A group-1, dilation-1 QConv (NCHW in and out) with BigQuant's input codes and 127 levels."""
    n, c, h, w = x.shape
    m, _, kh, kw = wq.shape
    sh, sw = strides
    ph, pw = pads
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.full((n, h + 2 * ph, w + 2 * pw, c), np.nan, np.float32)
    xp[:, ph : ph + h, pw : pw + w] = x.transpose(0, 2, 3, 1)
    oy, ox = np.meshgrid(np.arange(oh) * sh, np.arange(ow) * sw, indexing="ij")
    ys, xs = oy.ravel() - ph, ox.ravel() - pw
    simd = simd_mask(c, kh, kw, ys, xs, h, w)
    wrow = wq.transpose(0, 2, 3, 1).reshape(m, -1).astype(np.float64)  # (kh, kw, c) order, as BigQuant's
    out = np.empty((n, m, oh * ow), np.float32)
    for s in range(n):
        win = np.stack(
            [xp[s, y + ph : y + ph + kh, x_ + pw : x_ + pw + kw].reshape(-1) for y, x_ in zip(ys, xs, strict=True)]
        )
        valid = ~np.isnan(win)
        v = np.where(valid, win, np.float32(0))
        mn, mx = v.min(axis=1), v.max(axis=1)
        rng = (mx - mn).astype(np.float32)
        const = rng == 0
        scale = np.where(const, np.float32(0), np.float32(127) / np.where(const, np.float32(1), rng)).astype(np.float32)
        shift = (-mn * scale).astype(np.float32)
        # fma(x, scale, shift) rounded once to float32 (x * scale is exact in float64)
        fused = (v.astype(np.float64) * scale[:, None] + shift[:, None]).astype(np.float32)
        codes = np.where(simd, np.rint(fused), np.trunc(fused))
        codes = np.where(valid, codes, np.trunc(shift)[:, None])
        codes = np.clip(codes, 0, 255)
        codes[const] = 0  # BigQuant divides by zero here; its ratio is then 0, so the codes do not matter
        acc = (codes @ wrow.T).astype(np.float32)  # exact: small integers
        ratio = np.where(const, np.float32(0), np.float32(1) / np.where(const, np.float32(1), scale)).astype(np.float32)
        y = (ratio[:, None] * w_scale[None, :]) * acc + mn[:, None] * w_sum[None, :]
        if b is not None:
            y = y + b[None, :]
        out[s] = y.T
    return out.reshape(n, m, oh, ow)
