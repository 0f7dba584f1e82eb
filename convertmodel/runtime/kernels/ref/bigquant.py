"""BigDL's BigQuant int8 arithmetic (QConv/QGemm ``arith="bigquant"``) and BigDL's LRN, in numpy.

docs/quantization.md section 9 states the arithmetic and why it exists: BigDL-quantized files run by
BigDL 2.x (and 0.3) give these numbers, not the int8 contract's. Read from intel-analytics/BigDL-core
``bigquant/native`` and checked against every BigDL-quantized fixture (fixtures/bigdl):

* conv input codes (``shuffle_im2col.h``, ``PadQuantizeShuffleNHWCIm2col``): windows in NHWC order
  (kh, kw, c), padding 0 in the min/max; ``scale = L / (max - min)``, ``shift = -min * scale`` (float32);
  codes in blocks of 8 along the window: whole blocks ``rint(fma(x, scale, shift))``, the scalar
  elements around them ``trunc(fma(x, scale, shift))``, padding ``trunc(shift)``;
* fully connected input codes (``pad_shuffle.h``): ``std::round((x - min) * scale)``;
* accumulation: ``pmaddubsw`` pair sums added with int16 saturation over 4 blocks of 8 k, then widened;
* epilogue ``fma(float(acc), w_ratio * x_ratio, fma(min, w_sum, bias))`` with ``x_ratio = 1 / scale``.

``fma(a, b, c)`` is evaluated as the exact float64 product plus ``c`` rounded to float64, then float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convertmodel.errors import InvalidModelError
from convertmodel.runtime.kernels.ref.im2col import ConvGeometry

#: BigQuant's block of k (``CONV_SHUFFLE_KERNEL_K`` / ``shuffle_cols`` of the AVX2 and AVX-512 builds).
BLOCK = 8
#: float32 window values per block of rows (about 16 MB of float64 temporaries).
_ROWS_ELEMENTS = 1 << 21
_I16 = (-32768, 32767)


def window_params(v: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``v`` (R, K) float32: ``min``, ``scale = L / (max - min)``, ``ratio = 1 / scale`` and
    whether the row is constant (BigQuant divides by zero there; its ratio is then 0, the codes 0)."""
    mn, mx = v.min(axis=1), v.max(axis=1)
    rng = (mx - mn).astype(np.float32)
    const = ~(rng > 0)
    safe = np.where(const, np.float32(1), rng)
    scale = np.where(const, np.float32(0), np.float32(levels) / safe).astype(np.float32)
    ratio = np.where(const, np.float32(0), np.float32(1) / np.where(const, np.float32(1), scale)).astype(np.float32)
    return mn.astype(np.float32), scale, ratio, const


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


class LanePlan:
    """Which int16 lanes of a weight matrix (M, K) can saturate, for the correction of the exact sums.

    Lane j of super-block s (32 k) sums the pairs k = 32s + 8t + 2j + {0, 1} over t = 0..3 with
    saturation. A lane whose positive and negative weight sums times the largest code stay within
    int16 never saturates; only the others are recomputed step by step.
    """

    def __init__(self, w: np.ndarray) -> None:
        m, k = w.shape
        k32 = -(-k // 32) * 32
        wp = np.zeros((m, k32), np.int64)
        wp[:, :k] = w
        lanes = wp.reshape(m, k32 // 32, 4, 4, 2).transpose(0, 1, 3, 2, 4).reshape(m, k32 // 32, 4, 8)
        self.k = k
        self.lanes = lanes  # (M, S, J, 8): t-major pairs of each lane
        self.bound = np.maximum(np.clip(lanes, 0, None).sum(-1), np.clip(-lanes, 0, None).sum(-1))  # (M, S, J)

    def correct(self, acc: np.ndarray, q: np.ndarray) -> None:
        """Turn the exact sums ``acc`` (R, M) int64 of codes ``q`` (R, K) into BigQuant's saturated ones."""
        qmax = int(q.max(initial=0))
        if qmax * int(self.bound.max(initial=0)) <= _I16[1]:
            return
        r = q.shape[0]
        qp = np.zeros((r, self.lanes.shape[1] * 32), np.int64)
        qp[:, : self.k] = q
        ql = qp.reshape(r, -1, 4, 4, 2).transpose(0, 1, 3, 2, 4).reshape(r, -1, 4, 8)
        for s, j in sorted({(int(s), int(j)) for _, s, j in np.argwhere(qmax * self.bound > _I16[1])}):
            ms = np.nonzero(qmax * self.bound[:, s, j] > _I16[1])[0]
            pairs = np.einsum("rtx,mtx->rmt", ql[:, s, j].reshape(r, 4, 2), self.lanes[ms, s, j].reshape(-1, 4, 2))
            pairs = np.clip(pairs, *_I16)  # pmaddubsw saturates too (never with |w| <= 64)
            lane = np.zeros(pairs.shape[:2], np.int64)
            for t in range(4):
                lane = np.clip(lane + pairs[:, :, t], *_I16)
            acc[:, ms] += lane - pairs.sum(axis=2)


def _accumulate(q: np.ndarray, w64t: np.ndarray, plan: LanePlan) -> np.ndarray:
    """(R, K) codes x (K, M) float64 weights -> (R, M) int64 sums with BigQuant's lane saturation."""
    acc = (q @ w64t).astype(np.int64)  # exact: integers below 2**53
    plan.correct(acc, q.astype(np.int64))
    return acc


def _epilogue(
    acc: np.ndarray,
    mn: np.ndarray,
    ratio: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray,
    activation: str,
) -> np.ndarray:
    coef = ratio[:, None] * w_scale[None, :]  # float32 product
    inner = _fma32(mn[:, None], w_sum[None, :], b[None, :])
    y = _fma32(acc.astype(np.float32), coef, inner)
    if activation == "Relu":
        np.maximum(y, np.float32(0), out=y)
    return y


def _weights(cache: dict[str, Any], key: str, rows: list[np.ndarray]) -> list[tuple[np.ndarray, LanePlan]]:
    hit = cache.get(key)
    if hit is None or len(hit) != len(rows) or any(h[0].shape[::-1] != r.shape for h, r in zip(hit, rows, strict=True)):
        hit = cache[key] = [(np.ascontiguousarray(r.astype(np.float64).T), LanePlan(r)) for r in rows]
    return hit


def qgemm(
    x: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
    levels: int,
    activation: str,
    cache: dict[str, Any],
) -> np.ndarray:
    """QGemm ``arith="bigquant"``: X (..., K) float32 -> (..., M) float32."""
    lead, k = x.shape[:-1], x.shape[-1]
    rows = np.asarray(x, np.float32).reshape(-1, k)
    m = wq.shape[0]
    ((w64t, plan),) = _weights(cache, "bq_w", [np.asarray(wq)])
    bias = np.zeros(m, np.float32) if b is None else np.asarray(b, np.float32)
    out = np.empty((rows.shape[0], m), np.float32)
    step = max(1, _ROWS_ELEMENTS // max(k, 1))
    for r0 in range(0, rows.shape[0], step):
        v = rows[r0 : r0 + step]
        mn, scale, ratio, const = window_params(v, levels)
        t = ((v - mn[:, None]) * scale[:, None]).astype(np.float32)
        q = np.clip(np.floor(t.astype(np.float64) + 0.5), 0, 255)  # std::round of a value >= 0
        q[const] = 0
        acc = _accumulate(q, w64t, plan)
        out[r0 : r0 + step] = _epilogue(acc, mn, ratio, w_scale, w_sum, bias, activation)
    return out.reshape(*lead, m)


def _block_spans(base: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of the whole 8-blocks of spans starting at ``base`` (offsets in the window) of ``length``."""
    ri = base % BLOCK
    rem = np.where(ri == 0, 0, np.minimum(BLOCK - ri, length))
    lo = base + rem
    return lo, lo + BLOCK * ((length - rem) // BLOCK)


def simd_masks(
    c: int, kernel: tuple[int, int], dil: tuple[int, int], y0: np.ndarray, x0: np.ndarray, hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """For windows with top-left ``y0``, ``x0`` (P,): (P, kh*kw*c) masks of the real (non-padding) values
    and of the codes BigQuant's SIMD kernel writes (rounded; the others are truncated).

    Whole blocks exist in a kernel row lying inside the input (``0 <= x0`` and ``x0 + kw < W``, strictly,
    with no horizontal dilation: kw*C contiguous values), split at multiples of 8 of the window offset;
    elsewhere within one position's C channels when C >= 8.
    """
    (kh, kw), (dh, dw), (h, w) = kernel, dil, hw
    r = np.arange(kh)
    q = np.arange(kw)
    ch = np.arange(c)
    row_ok = (y0[:, None] + r * dh >= 0) & (y0[:, None] + r * dh < h)  # (P, kh)
    col_ok = (x0[:, None] + q * dw >= 0) & (x0[:, None] + q * dw < w)  # (P, kw)
    valid = row_ok[:, :, None, None] & col_ok[:, None, :, None] & np.ones(c, bool)
    offs = ((r[:, None, None] * kw + q[None, :, None]) * c + ch[None, None, :]).astype(np.int64)  # (kh, kw, c)
    lo, hi = _block_spans(r * kw * c, kw * c)
    row_blocks = (offs >= lo[:, None, None]) & (offs < hi[:, None, None])
    inside = (dw == 1) & (x0 >= 0) & (x0 + kw < w)  # (P,)
    simd = np.where(inside[:, None, None, None], row_blocks[None], False)
    if c >= BLOCK:
        plo, phi = _block_spans((r[:, None] * kw + q[None, :]) * c, c)
        pix_blocks = (offs >= plo[:, :, None]) & (offs < phi[:, :, None])
        simd |= ~inside[:, None, None, None] & col_ok[:, None, :, None] & pix_blocks[None]
    simd &= row_ok[:, :, None, None]
    p = len(y0)
    return valid.reshape(p, -1), simd.reshape(p, -1)


def qconv(
    x: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
    geo: ConvGeometry,
    levels: int,
    activation: str,
    cache: dict[str, Any],
) -> np.ndarray:
    """QConv ``arith="bigquant"`` (2-D, NCHW in and out)."""
    if x.ndim != 4 or len(geo.kernel) != 2:
        raise InvalidModelError(f"QConv arith 'bigquant' is defined for 2-D convolutions only, got input rank {x.ndim}")
    n, c_all, h, w = x.shape
    m_all, c, kh, kw = wq.shape
    g = geo.group
    mg = m_all // g
    (sh, sw), (dh, dw) = geo.strides, geo.dilations
    pt, pl, pb, pr = geo.pads
    oh, ow = geo.out_spatial((h, w))
    # Weights in BigQuant's window order (kh, kw, c), per group.
    wts = _weights(
        cache, "bq_w", [np.asarray(wq[i * mg : (i + 1) * mg]).transpose(0, 2, 3, 1).reshape(mg, -1) for i in range(g)]
    )
    bias = np.zeros(m_all, np.float32) if b is None else np.asarray(b, np.float32)
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c_all), np.float32)
    xp[:, pt : pt + h, pl : pl + w] = np.asarray(x, np.float32).transpose(0, 2, 3, 1)
    s0, s1, s2, s3 = xp.strides
    view = as_strided(xp, (n, oh, ow, kh, kw, c_all), (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3), writeable=False)
    k = kh * kw * c
    out = np.empty((n, oh, ow, m_all), np.float32)
    rows_per = max(1, _ROWS_ELEMENTS // max(ow * k * g, 1))
    for y_start in range(0, oh, rows_per):
        ys = np.arange(y_start, min(oh, y_start + rows_per))
        oy, ox = np.meshgrid(ys, np.arange(ow), indexing="ij")
        valid, simd = simd_masks(c, (kh, kw), (dh, dw), oy.ravel() * sh - pt, ox.ravel() * sw - pl, (h, w))
        for s in range(n):
            blk = view[s, ys[0] : ys[-1] + 1]
            for gi, (w64t, plan) in enumerate(wts):
                v = blk[..., gi * c : (gi + 1) * c].reshape(-1, k)
                mn, scale, ratio, const = window_params(v, levels)
                shift = (-mn * scale).astype(np.float32)
                fused = _fma32(v, scale[:, None], shift[:, None])
                codes = np.where(simd, np.rint(fused), np.trunc(fused))
                codes = np.where(valid, codes, np.trunc(shift)[:, None])
                np.clip(codes, 0, 255, out=codes)
                codes[const] = 0
                acc = _accumulate(codes.astype(np.float64), w64t, plan)
                sl = slice(gi * mg, (gi + 1) * mg)
                y = _epilogue(acc, mn, ratio, w_scale[sl], w_sum[sl], bias[sl], activation)
                out[s, ys[0] : ys[-1] + 1, :, sl] = y.reshape(len(ys), ow, mg)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def bigdl_lrn(x: np.ndarray, size: int, alpha: float, beta: float, k: float, power: str) -> np.ndarray:
    """BigDL's SpatialCrossMapLRN (NCHW): a running sum over channels (add the square entering the
    window, subtract the one leaving), ``scale = sum * float(alpha / size) + k``, ``x * scale ** -beta``
    with the power in float64 (BigDL 0.3: ``Math.pow``) or float32 (BigDL 2.x: MKL ``vsPowx``)."""
    x = np.asarray(x, np.float32)
    c = x.shape[1]
    sq = x * x
    run = np.empty_like(x)
    pre = (size - 1) // 2 + 1
    acc = np.zeros_like(x[:, 0])
    for i in range(min(pre, c)):
        acc += sq[:, i]
    run[:, 0] = acc
    for ci in range(2, c + 1):  # BigDL's 1-based channel loop
        cur = run[:, ci - 2].copy()
        if ci < c - pre + 2:
            cur += sq[:, ci + pre - 2]
        if ci > pre:
            cur -= sq[:, ci - pre - 1]
        run[:, ci - 1] = cur
    scale = run * np.float32(alpha / size) + np.float32(k)
    if power == "float32":
        p = np.power(scale, np.float32(-beta))
    else:
        p = np.power(scale.astype(np.float64), -beta).astype(np.float32)
    return p * x
