"""BigDL 0.3's "local window" int8 scheme: weight windows, input windows, BigDL compat weights.

Weights (done once, by the quantize pass): one symmetric window per output channel ("row":
the ``C/g*kh*kw`` values of one kernel, or the ``K`` values of one fully connected output).
BigDL's Scala ``nn/quantized/Quantization.scala`` computes, for each row,
``Math.round(1.0 * value / max(|max|, |min|) * 127).toByte`` -- in double precision (``1.0 *``
promotes), with Java's ``Math.round`` = ``floor(x + 0.5)``. We do exactly that, vectorized over
blocks of rows so that a 400 MB fully connected weight never needs a float64 copy of itself.

Inputs (done at every forward pass, by the kernels): one asymmetric window per im2col patch
or per row: see :func:`quantize_windows`, the numpy statement of the op contract.

``--compat bigdl``: BigDL stored those 127-level weights, but at load time its native library
(BigQuant, ``ConvKernelLoadFromModel`` / ``FCKernelLoadFromModel``) dequantized them
(``model.h: DequantizeModel``: ``1.0 * float(q) / 127.0 * fmaxf(fabs(max), fabs(min))``, double
arithmetic stored to float) and quantized them again with ``WEIGHT_THRESHOLD = 64``
(``pad_shuffle.h: PadQuantizeShuffle2D``, int8 overload: ``scale = 64.0f / max(|max|, |min|)``
in float, ``ratio = 1.0 / scale``, ``q = (int8_t) std::round(w * scale)``, round half away from
zero). :func:`bigdl_compat_requantize` reproduces that; see docs/quantization.md for sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Weight levels of the stored weights (int8, symmetric): BigDL's ``Byte.MaxValue``.
WEIGHT_LEVELS = 127
#: BigQuant's ``QuantParams.WEIGHT_THRESHOLD``: the levels BigDL re-quantized weights to at load time.
BIGDL_WEIGHT_LEVELS = 64
#: BigQuant's ``QuantParams.THRESHOLD``: BigDL's input levels.
BIGDL_INPUT_LEVELS = 127
#: Our default input levels (uint8 codes 0..255; exact on VNNI-style u8 x s8 dot products).
DEFAULT_INPUT_LEVELS = 255

#: Rows per block when quantizing weights: bounds the float64 temporaries to ~32 MB.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class QuantizedWeight:
    """What a quantized op multiplies with: ``Wq`` (M, K) int8 and per-row ``w_scale``, ``w_sum``."""

    wq: np.ndarray  # int8 (M, K)
    w_scale: np.ndarray  # float32 (M,)
    w_sum: np.ndarray  # float32 (M,)
    amax: np.ndarray  # float32 (M,): max(|max(row)|, |min(row)|) of the original weight


def _row_blocks(m: int, k: int) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) of at most ~_BLOCK_ELEMENTS elements each (at least one row)."""
    step = max(1, _BLOCK_ELEMENTS // max(k, 1))
    return [(r0, min(m, r0 + step)) for r0 in range(0, m, step)]


#: Half-width of the band around a rounding boundary where the float32 fast path is not trusted.
_TIE_BAND = 1e-4


def _java_round_rows(blk: np.ndarray, a: np.ndarray, levels: int) -> np.ndarray:
    """``floor(double(w) / double(a) * levels + 0.5)`` per row, bit-exact, mostly in float32.

    Fast path: ``t = float32(w * float32(levels / a)) + 0.5`` differs from the exact value by at
    most ~2.5e-5 (two float32 roundings of a value <= levels + 0.5, plus the add), so ``floor(t)``
    is right unless ``t`` lies within that distance of an integer. The few elements within
    ``_TIE_BAND`` of one (exact ties such as 63.5 included) are recomputed with BigDL's double
    formula. This halves the memory traffic of doing everything in float64.
    """
    a64 = a.astype(np.float64)
    pos = a64 > 0
    # Rows with a == 0 are all zero: scale 0 gives exactly 0 (BigDL divided by zero there).
    s64 = np.where(pos, float(levels) / np.where(pos, a64, 1.0), 0.0)
    # A row of tiny values (a < levels / FLT_MAX) would overflow a float32 scale: do it in float64.
    slow = s64 > float(np.finfo(np.float32).max)
    s32 = np.where(slow, 0.0, s64).astype(np.float32)
    t = blk * s32[:, None]
    t += np.float32(0.5)
    f = np.floor(t)
    np.subtract(t, f, out=t)  # the fractional part, in [0, 1)
    near = (t < _TIE_BAND) | (t > 1 - _TIE_BAND)
    near[slow] = True
    rows, cols = np.nonzero(near)
    if rows.size:
        exact = np.floor(blk[rows, cols].astype(np.float64) / np.where(pos, a64, 1.0)[rows] * float(levels) + 0.5)
        f[rows, cols] = exact
    return f.astype(np.int8)


def quantize_weight_rows(w: np.ndarray, levels: int = WEIGHT_LEVELS) -> QuantizedWeight:
    """Quantize each row of a 2-D fp32 weight (M, K) symmetrically to ``[-levels, levels]``.

    ``q = floor(double(w) / double(a) * levels + 0.5)`` with ``a = max(|max(row)|, |min(row)|)``:
    BigDL's ``Quantization.quantize``. An all-zero row gives ``a = 0``, ``q = 0``, ``w_scale = 0``
    (BigDL divided by zero there). ``w_sum`` is the row sum of the original weights, accumulated
    in float64 and rounded once to float32.
    """
    w2 = np.asarray(w)
    if w2.ndim != 2:
        raise ValueError(f"quantize_weight_rows takes a 2-D (M, K) array, got shape {w2.shape}")
    w2 = w2.astype(np.float32, copy=False)
    m, k = w2.shape
    wq = np.empty((m, k), dtype=np.int8)
    amax = np.empty(m, dtype=np.float32)
    wsum = np.empty(m, dtype=np.float32)
    for r0, r1 in _row_blocks(m, k):
        blk = w2[r0:r1]
        a = np.maximum(np.abs(blk.max(axis=1)), np.abs(blk.min(axis=1))) if k else np.zeros(len(blk), np.float32)
        amax[r0:r1] = a
        wsum[r0:r1] = blk.sum(axis=1, dtype=np.float64)
        wq[r0:r1] = _java_round_rows(blk, a, levels)
    w_scale = amax / np.float32(levels)
    return QuantizedWeight(wq, w_scale.astype(np.float32), wsum, amax)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``roundf``: round half away from zero (float64 so that ``|x| + 0.5`` is exact)."""
    x64 = x.astype(np.float64)
    return np.sign(x64) * np.floor(np.abs(x64) + 0.5)


def bigdl_compat_requantize(qw: QuantizedWeight, levels: int = BIGDL_WEIGHT_LEVELS) -> QuantizedWeight:
    """The weights BigDL 0.3 actually multiplied with: its load-time re-quantization to ``levels``.

    Input: the stored 127-level weights and their windows. Steps (BigQuant, see module doc):
    dequantize ``d = float32(double(q) / 127.0 * double(a))``; ``a2 = max(|max(d)|, |min(d)|)``;
    ``scale = float32(levels) / a2`` (float32); ``q2 = roundf(float32(d * scale))``;
    ``w_scale = float32(1.0 / double(scale))``. All-zero rows stay zero with ``w_scale = 0``.
    ``w_sum`` keeps the original fp32 row sums (BigDL passed its Scala-side ``weightSum``).
    """
    m, k = qw.wq.shape
    wq = np.empty((m, k), dtype=np.int8)
    scale_out = np.zeros(m, dtype=np.float32)
    for r0, r1 in _row_blocks(m, k):
        a64 = qw.amax[r0:r1].astype(np.float64)[:, None]
        d = (qw.wq[r0:r1].astype(np.float64) / 127.0 * a64).astype(np.float32)
        a2 = np.abs(d).max(axis=1) if k else np.zeros(r1 - r0, np.float32)
        nz = a2 > 0
        s64 = np.where(nz, float(levels) / np.where(nz, a2, 1).astype(np.float64), 0.0)
        # BigQuant divides in float: a row of denormal weights overflows the scale to inf and the
        # int8 cast is undefined. Such rows (a2 < 64 / FLT_MAX) use the scale in float64 instead.
        big = s64 > float(np.finfo(np.float32).max)
        scale = np.where(big, 0.0, s64).astype(np.float32)  # == float32(levels) / a2 elsewhere
        prod = d * scale[:, None]  # float32 product, as BigQuant's float DType
        q2 = _round_half_away(prod)
        if big.any():
            q2[big] = _round_half_away(d[big].astype(np.float64) * s64[big][:, None])
        np.clip(q2, -127, 127, out=q2)
        wq[r0:r1] = q2.astype(np.int8)
        exact = np.where(big, s64, scale.astype(np.float64))
        ratio = np.where(nz, 1.0 / np.where(nz, exact, 1.0), 0.0)
        scale_out[r0:r1] = ratio.astype(np.float32)
    return QuantizedWeight(wq, scale_out, qw.w_sum, qw.amax)


@dataclass(frozen=True)
class Windows:
    """Per-window quantized input: codes ``q`` (..., K) uint8, ``mn`` and ``r`` (...,) float32."""

    q: np.ndarray
    mn: np.ndarray
    r: np.ndarray


def quantize_windows(v: np.ndarray, levels: int = DEFAULT_INPUT_LEVELS) -> Windows:
    """Quantize each window (last axis) of float32 ``v`` asymmetrically to ``0..levels``.

    The op contract, step 2: ``mn, mx`` = min, max of the window; if ``mx > mn``:
    ``s = float32(L) / (mx - mn)``, ``q = clip(floor((v - mn) * s + 0.5), 0, L)`` evaluated in
    float32 op by op, ``r = (mx - mn) / float32(L)``; a constant window gives ``q = 0, r = 0``.
    """
    v = np.asarray(v, dtype=np.float32)
    mn = v.min(axis=-1)
    mx = v.max(axis=-1)
    rng = mx - mn
    lv = np.float32(levels)
    pos = rng > 0
    s = np.zeros_like(rng)
    np.divide(lv, rng, out=s, where=pos)
    t = v - mn[..., None]
    t *= s[..., None]
    t += np.float32(0.5)
    np.floor(t, out=t)
    np.fmax(t, np.float32(0), out=t)  # fmax, not clip: a NaN code (a window holding NaN/inf) is 0, not a cast of NaN
    np.minimum(t, np.float32(levels), out=t)
    r = np.where(pos, rng / lv, np.float32(0)).astype(np.float32)
    return Windows(t.astype(np.uint8), mn, r)
