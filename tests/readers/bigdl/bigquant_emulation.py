"""A numpy statement of BigDL 2.x's int8 arithmetic (BigQuant, bigdl-core ``bigquant/native``) for
QConv and QGemm, for tests that locate where BigDL's int8 outputs leave convertmodel's int8 contract.

Read from the sources and confirmed bit for bit against the real BigDL fixtures:

* **Conv input codes** (``ops/shuffle/shuffle_im2col.h``, ``PadQuantizeShuffleNHWCIm2col``, reached for
  NCHW and NHWC inputs through ``c_api.cc: InternalQuantizedConvDataInit``): the input is transposed to
  NHWC and a window's values are ordered (kh, kw, c); padding counts as 0 in its min and max;
  ``scale = 127 / (max - min)``, ``shift = -min * scale`` (float32). Codes are written in blocks of
  ``shuffle_cols = 8`` along the window: whole blocks by a SIMD kernel, ``cvtps2dq(fma(x, scale,
  shift))`` (round half to even); the scalar loops before and after them by ``(uint8_t)(x * scale +
  shift)``, which the compiler contracts to an FMA, then truncates; padding gets ``(uint8_t)shift``.
  Whole blocks exist only in rows of the window lying inside the input (``0 <= x0`` and ``x0 + kw <
  W``: kw*C contiguous values) or, elsewhere, within one position's C channels when C >= 8.
* **Fully connected input codes** (``pad_shuffle.h``, ``PadQuantizeShuffle2D``, uint8): per row,
  ``std::round((x - min) * scale)`` (half away from zero).
* **Accumulation** (``shuffle_avx512_igemm_8x8x8.h`` / the AVX2 kernel): ``pmaddubsw`` pair sums added
  into int16 lanes with signed saturation (``paddsw``) over 4 blocks of 8 k, then widened to int32;
  lane j of a 32-k block holds k = 8t + 2j, 8t + 2j + 1 (t = 0..3). Large fully connected layers do
  saturate (the VGG fixture's 784-input Linear).
* **Epilogue** (``NCHWBlockFMA``): ``fma(float(acc), w_ratio * x_ratio, fma(x_min, w_sum, bias))`` with
  ``x_ratio = 1 / scale``.

convertmodel's contract instead rounds every code half up, accumulates exactly in int32 and evaluates
the epilogue unfused; its runtime implements only the contract.
"""

from __future__ import annotations

import numpy as np

import convertmodel
from convertmodel.ir.schema import resolve_attrs
from tests.helpers import run_ir_node

SHUFFLE_COLS = 8


def saturating_accumulate(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(P, K) codes x (M, K) int8 weights -> (P, M) int64 sums with BigQuant's int16 lane saturation."""
    p, k = q.shape
    m = w.shape[0]
    k8 = -(-k // 8) * 8
    qp = np.zeros((p, k8), np.int64)
    qp[:, :k] = q
    wp = np.zeros((m, k8), np.int64)
    wp[:, :k] = w
    chunks = k8 // 8
    pair = np.einsum("pcjt,mcjt->pmcj", qp.reshape(p, chunks, 4, 2), wp.reshape(m, chunks, 4, 2))
    pair = np.clip(pair, -32768, 32767)  # pmaddubsw saturates (never reached with |w| <= 64)
    acc = np.zeros((p, m), np.int64)
    for b0 in range(0, chunks, 4):
        lane = np.zeros((p, m, 4), np.int64)
        for t in range(b0, min(b0 + 4, chunks)):
            lane = np.clip(lane + pair[:, :, t, :], -32768, 32767)
        acc += lane.sum(axis=2)
    return acc


def epilogue(
    acc: np.ndarray,
    x_min: np.ndarray,
    x_ratio: np.ndarray,
    w_ratio: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
) -> np.ndarray:
    """``fma(float(acc), w_ratio * x_ratio, fma(x_min, w_sum, b))`` per (row, output)."""
    coef = (x_ratio[:, None] * w_ratio[None, :]).astype(np.float32).astype(np.float64)
    bias = np.zeros(w_sum.shape, np.float64) if b is None else b.astype(np.float64)
    inner = (x_min[:, None].astype(np.float64) * w_sum[None, :].astype(np.float64) + bias[None, :]).astype(np.float32)
    return (acc.astype(np.float32).astype(np.float64) * coef + inner.astype(np.float64)).astype(np.float32)


def simd_mask(
    c: int, kh: int, kw: int, ys: np.ndarray, xs: np.ndarray, h: int, w: int, dh: int = 1, dw: int = 1
) -> np.ndarray:
    """(P, kh*kw*c) bool: the codes of each window (top-left ``ys``, ``xs``) the SIMD kernel writes."""
    k = kh * kw * c
    mask = np.zeros((len(ys), k), bool)
    cols = np.arange(k)
    for i, (y0, x0) in enumerate(zip(ys, xs, strict=True)):
        row_inside = dw == 1 and 0 <= x0 and x0 + kw < w
        for r in range(kh):
            if not 0 <= y0 + r * dh < h:
                continue
            if row_inside:
                spans = [(r * kw * c, kw * c)]
            elif c >= SHUFFLE_COLS:
                spans = [((r * kw + q) * c, c) for q in range(kw) if 0 <= x0 + q * dw < w]
            else:
                continue
            for base, length in spans:
                ri = base % SHUFFLE_COLS
                rem = 0 if ri == 0 else min(SHUFFLE_COLS - ri, length)
                lo = base + rem
                mask[i] |= (cols >= lo) & (cols < lo + SHUFFLE_COLS * ((length - rem) // SHUFFLE_COLS))
    return mask


def _window_params(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """min, scale, ratio of each row of ``v`` and which rows are constant (BigQuant divides by zero
    there; its ratio is then 0, so the codes do not matter and are set to 0)."""
    mn, mx = v.min(axis=1), v.max(axis=1)
    rng = (mx - mn).astype(np.float32)
    const = rng == 0
    scale = np.where(const, np.float32(0), np.float32(127) / np.where(const, np.float32(1), rng)).astype(np.float32)
    ratio = np.where(const, np.float32(0), np.float32(1) / np.where(const, np.float32(1), scale)).astype(np.float32)
    return mn.astype(np.float32), scale, ratio, const


def bigquant_conv(
    x: np.ndarray,
    wq: np.ndarray,
    w_scale: np.ndarray,
    w_sum: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    pads: tuple[int, int],
    dilations: tuple[int, int] = (1, 1),
    group: int = 1,
) -> np.ndarray:
    """A QConv (NCHW in and out) as BigQuant computes it: one sample and one group at a time."""
    n, c_all, h, w = x.shape
    m_all, c, kh, kw = wq.shape
    mg = m_all // group
    sh, sw = strides
    ph, pw = pads
    dh, dw = dilations
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    oy, ox = np.meshgrid(np.arange(oh) * sh, np.arange(ow) * sw, indexing="ij")
    ys, xs = oy.ravel(), ox.ravel()
    simd = simd_mask(c, kh, kw, ys - ph, xs - pw, h, w, dh, dw)
    out = np.empty((n, m_all, oh * ow), np.float32)
    for g in range(group):
        xp = np.full((n, h + 2 * ph, w + 2 * pw, c), np.nan, np.float32)
        xp[:, ph : ph + h, pw : pw + w] = x[:, g * c : (g + 1) * c].transpose(0, 2, 3, 1)
        sl = slice(g * mg, (g + 1) * mg)
        wrow = wq[sl].transpose(0, 2, 3, 1).reshape(mg, -1).astype(np.int64)  # (kh, kw, c), as BigQuant's
        bg = None if b is None else b[sl]
        for s in range(n):
            win = np.stack(
                [
                    xp[s, y : y + dh * (kh - 1) + 1 : dh, x_ : x_ + dw * (kw - 1) + 1 : dw].reshape(-1)
                    for y, x_ in zip(ys, xs, strict=True)
                ]
            )
            valid = ~np.isnan(win)
            v = np.where(valid, win, np.float32(0))
            mn, scale, ratio, const = _window_params(v)
            shift = (-mn * scale).astype(np.float32)
            # fma(x, scale, shift) rounded once to float32 (x * scale is exact in float64)
            fused = (v.astype(np.float64) * scale[:, None] + shift[:, None]).astype(np.float32)
            codes = np.where(simd, np.rint(fused), np.trunc(fused))
            codes = np.clip(np.where(valid, codes, np.trunc(shift)[:, None]), 0, 255)
            codes[const] = 0
            acc = saturating_accumulate(codes.astype(np.int64), wrow)
            out[s, sl] = epilogue(acc, mn, ratio, w_scale[sl], w_sum[sl], bg).T
    assert c * group == c_all
    return out.reshape(n, m_all, oh, ow)


def bigquant_linear(
    x: np.ndarray, wq: np.ndarray, w_scale: np.ndarray, w_sum: np.ndarray, b: np.ndarray | None
) -> np.ndarray:
    """A QGemm (one window per row) as BigQuant computes it."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.float32)
    mn, scale, ratio, const = _window_params(rows)
    t = ((rows - mn[:, None]) * scale[:, None]).astype(np.float32)
    codes = np.floor(t.astype(np.float64) + 0.5)  # std::round of a value >= 0
    codes[const] = 0
    acc = saturating_accumulate(codes.astype(np.int64), wq.astype(np.int64))
    return epilogue(acc, mn, ratio, w_scale, w_sum, b).reshape(*x.shape[:-1], -1)


def bigdl_lrn(x: np.ndarray, size: int, alpha: float, beta: float, k: float, pow_dtype: type) -> np.ndarray:
    """BigDL's SpatialCrossMapLRN (NCHW): a running window sum over channels (add the next square,
    subtract the one leaving), ``scale = sum * float(alpha / size) + k``, ``x * scale ** -beta``; the
    power in float64 (BigDL 0.3: Math.pow) or float32 (BigDL 2.x: MKL's vsPowx)."""
    x = x.astype(np.float32)
    c = x.shape[1]
    sq = (x * x).astype(np.float32)
    scale = np.zeros_like(x)
    pre = (size - 1) // 2 + 1
    acc = np.zeros_like(x[:, 0])
    for i in range(min(pre, c)):
        acc = (acc + sq[:, i]).astype(np.float32)
    scale[:, 0] = acc
    for ci in range(2, c + 1):  # BigDL's 1-based channel loop
        cur = scale[:, ci - 2].copy()
        if ci < c - pre + 2:
            cur = (cur + sq[:, ci + pre - 2]).astype(np.float32)
        if ci > pre:
            cur = (cur - sq[:, ci - pre - 1]).astype(np.float32)
        scale[:, ci - 1] = cur
    scale = (scale * np.float32(alpha / size)).astype(np.float32) + np.float32(k)
    if pow_dtype is np.float32:
        out = np.power(scale, np.float32(-beta))
    else:
        out = np.power(scale.astype(np.float64), -beta)
    return (out.astype(np.float32) * x).astype(np.float32)


def run_emulated(path: str, x: np.ndarray, lrn_pow: type | None = None) -> np.ndarray:
    """Run a BigDL-quantized file: QConv/QGemm as BigQuant computes them, other nodes by convertmodel
    (LRN as BigDL computes it when ``lrn_pow`` is given: its float rounding decides truncated codes)."""
    g = convertmodel.load(path).graph
    env: dict[str, np.ndarray] = {g.inputs[0].name: x}
    for n in g.nodes:
        args = [g.constants[i] if i in g.constants else env[i] if i else None for i in n.inputs]
        if n.op_type == "QConv":
            a = resolve_attrs(n)
            assert a["input_levels"] == 127
            pads = tuple(a["pads"])
            assert pads[:2] == pads[2:]
            x_, wq, ws, wsum = args[:4]
            bias = args[4] if len(args) > 4 else None
            y = bigquant_conv(x_, wq, ws, wsum, bias, tuple(a["strides"]), pads[:2], tuple(a["dilations"]), a["group"])
            if a["activation"] == "Relu":
                y = np.maximum(y, 0)
            env[n.outputs[0]] = y
            continue
        if n.op_type == "QGemm":
            a = resolve_attrs(n)
            assert a["input_levels"] == 127
            y = bigquant_linear(*args[:4], args[4] if len(args) > 4 else None)
            env[n.outputs[0]] = np.maximum(y, 0) if a["activation"] == "Relu" else y
            continue
        if n.op_type == "LRN" and lrn_pow is not None:
            a = resolve_attrs(n)
            env[n.outputs[0]] = bigdl_lrn(args[0], a["size"], a["alpha"], a["beta"], a["bias"], lrn_pow)
            continue
        names = [f"in{k}" for k in range(len(args))]
        consts = [nm for nm, i in zip(names, n.inputs, strict=True) if i in g.constants]
        outs = run_ir_node(
            n.op_type, dict(zip(names, args, strict=True)), consts, len(n.outputs), n.domain, **dict(n.attrs)
        )
        env.update(zip(n.outputs, outs, strict=True))
    return env[g.outputs[0].name]
