"""QConv / QGemm -> BigDL's quantized.SpatialConvolution / quantized.SpatialDilatedConvolution / quantized.Linear.

BigDL stores a quantized layer as its ``quantize()`` does: per group one QUANT tensor of int8 codes
``round(w / a * 127)`` (row-major, one row per output channel) with each row's max, min and sum, a descriptor
(``[5, M/g, C/g, kH, kW, 0 (NCHW), 1]`` for a conv group, ``[2, M, K, 3]`` for a Linear), and the fp32 bias
in the old-style ``bias`` field. At load BigQuant dequantizes each row and re-quantizes it to 64 levels; it
runs with 127 input levels (docs/quantization.md, section 3).

* An IR graph quantized with ``--compat bigdl`` holds those 64-level weights (``Wq``, ``w_scale = a2 / 64``):
  the stored codes are ``round(Wq * 127 / 64)`` with ``a = 64 * w_scale``, which BigDL's load-time
  re-quantization maps back to exactly ``Wq`` (the error of the round trip is under 0.26 of a level). BigDL then
  computes what convertmodel computes for that graph.
* Any other quantized graph holds 127-level codes (``w_scale = a / 127``): written as they are, which is what
  BigDL's own ``quantize()`` would store; BigDL then runs them with its 64-level weights and 127 input levels,
  which is convertmodel's ``--compat bigdl`` arithmetic, not the graph's own.
"""

from __future__ import annotations

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.quant.options import QuantizationInfo
from convertmodel.quant.scheme import WEIGHT_LEVELS
from convertmodel.writers.bigdl.build import Mod, a_bool, a_format, a_int
from convertmodel.writers.bigdl.modules import Ctx, NotExpressible, emits, spatial


def weight_levels(ctx: Ctx) -> int:
    """The weight levels of this layer's Wq (127, or fewer when the quantize pass re-quantized, e.g. 64)."""
    info = QuantizationInfo.of(ctx.graph.metadata)
    if info is None:
        return WEIGHT_LEVELS
    lv = info.layer_levels.get(ctx.node.name)
    return int(lv.weight if lv is not None else info.weight_levels)


def stored_codes(ctx: Ctx, wq: np.ndarray, w_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes BigDL stores, per-row a = max(|max|, |min|)) for the graph's Wq (rows x K) and w_scale."""
    levels = weight_levels(ctx)
    rows = wq.reshape(wq.shape[0], -1).astype(np.int32)
    scale = np.asarray(w_scale, np.float32)
    if levels < WEIGHT_LEVELS:  # back to the 127-level codes BigDL stores; its load re-quantizes them
        codes = np.clip(np.floor(rows * (WEIGHT_LEVELS / levels) + 0.5), -127, 127)
        return codes.astype(np.int8), (scale * np.float32(levels)).astype(np.float32)
    return rows.astype(np.int8), (scale * np.float32(WEIGHT_LEVELS)).astype(np.float32)


def _relu_tail(ctx: Ctx) -> list[Mod]:
    return [Mod("ReLU", {"ip": a_bool(False)})] if ctx.attrs.get("activation", "") == "Relu" else []


@emits("QConv", domain=CM_DOMAIN)
def _qconv(ctx: Ctx) -> list[Mod]:
    wq = ctx.need_const(1, "Wq")
    w_scale, w_sum = ctx.need_const(2, "w_scale"), ctx.need_const(3, "w_sum")
    b = ctx.const(4)
    if wq.ndim != 4:
        raise NotExpressible(f"Wq of rank {wq.ndim} (2-D convolutions only)")
    k, s, p, pre = spatial(ctx, "convolution")
    d = list(ctx.attrs.get("dilations") or (1, 1))
    g = int(ctx.attrs.get("group", 1))
    m, cg = int(wq.shape[0]), int(wq.shape[1])
    codes, amax = stored_codes(ctx, wq, w_scale)
    bias = np.zeros(m, np.float32) if b is None else b.astype(np.float32)
    mg = m // g
    groups = []
    for i in range(g):
        r = slice(i * mg, (i + 1) * mg)
        desc = [5, mg, cg, k[0], k[1], 0, 1]
        groups.append((codes[r].reshape(mg, cg, k[0], k[1]), amax[r], np.asarray(w_sum, np.float32)[r], desc))
    attrs = {"nInputPlane": a_int(cg * g), "nOutputPlane": a_int(m), "kernelW": a_int(k[1]), "kernelH": a_int(k[0]),
             "strideW": a_int(s[1]), "strideH": a_int(s[0]), "padW": a_int(p[1]), "padH": a_int(p[0])}  # fmt: skip
    if d == [1, 1]:
        attrs.update(nGroup=a_int(g), format=a_format())
        cls = "quantized.SpatialConvolution"
    else:
        if g != 1:
            raise NotExpressible(f"dilated convolution with group {g}")
        attrs.update(dilationW=a_int(d[1]), dilationH=a_int(d[0]), format=a_format())
        cls = "quantized.SpatialDilatedConvolution"
    return [*pre, Mod(cls, attrs, bias=bias, qweights=("weights", groups, True)), *_relu_tail(ctx)]


@emits("QGemm", domain=CM_DOMAIN)
def _qgemm(ctx: Ctx) -> list[Mod]:
    if len(ctx.shape(0)) != 2:
        raise NotExpressible(f"input of rank {len(ctx.shape(0))} (Linear takes 2-D)")
    wq = ctx.need_const(1, "Wq")
    w_scale, w_sum = ctx.need_const(2, "w_scale"), ctx.need_const(3, "w_sum")
    b = ctx.const(4)
    m, k = (int(v) for v in wq.shape)
    codes, amax = stored_codes(ctx, wq, w_scale)
    bias = np.zeros(m, np.float32) if b is None else b.astype(np.float32)
    attrs = {"inputSize": a_int(k), "outputSize": a_int(m), "withBias": a_bool(True)}
    q = (codes.reshape(m, k), amax, np.asarray(w_sum, np.float32), [2, m, k, 3])
    return [Mod("quantized.Linear", attrs, bias=bias, qweights=("weight", [q], False)), *_relu_tail(ctx)]
