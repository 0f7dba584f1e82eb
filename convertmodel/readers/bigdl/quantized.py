"""BigDL-quantized layers (``quantize()`` + save): ``quantized.SpatialConvolution``,
``quantized.SpatialDilatedConvolution``, ``quantized.Linear`` -> QConv / QGemm with BigDL's numerics.

A quantized weight is a ``QuantizedTensor`` per group: int8 codes (rows, K) from
``Math.round(w / max(|max|, |min|) * 127)`` plus each row's fp32 max, min and sum. At load time BigDL's
BigQuant dequantized those codes and re-quantized each row to 64 levels; inputs are quantized to 127
levels per window. That is exactly the quantize pass's ``--compat bigdl`` (docs/quantization.md §3),
so these layers become the same QConv/QGemm nodes the pass emits in that mode: the 64-level ``Wq`` and
``w_scale`` from :func:`~convertmodel.quant.scheme.bigdl_compat_requantize` applied to the stored codes,
the stored fp32 row sums as ``w_sum``, ``input_levels = 127``, the dense fp32 bias as ``B``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.quant.scheme import (
    BIGDL_INPUT_LEVELS,
    BIGDL_WEIGHT_LEVELS,
    QuantizedWeight,
    bigdl_compat_requantize,
)
from convertmodel.readers.bigdl.context import Act, ModuleContext, module_handler
from convertmodel.readers.bigdl.storage import QuantTensor


def _bias(ctx: ModuleContext, m: int) -> np.ndarray:
    t = (
        ctx.storages.tensor(ctx.module.bias, f"module {ctx.name!r} ({ctx.cls}) bias")
        if ctx.module.HasField("bias")
        else None
    )
    if t is None and len(ctx.module.parameters) > 1:
        t = ctx.storages.tensor(ctx.module.parameters[-1], f"module {ctx.name!r} ({ctx.cls}) bias")
    if t is None:
        return np.zeros(m, np.float32)
    if isinstance(t, QuantTensor) or t.size != m:
        raise ctx.fail(f"bias must be {m} fp32 values")
    return t.astype(np.float32).reshape(m)


def _group_bias(ctx: ModuleContext, bias: np.ndarray, g: int) -> np.ndarray:
    """The bias as BigDL runs it: BigDL 0.3's int8 grouped convolution adds the first group's bias to every
    group (measured: fixtures/bigdl/v0.3/grouped_dilated_q.bigdl, 1.8e-3 off with the stored bias, 2.4e-7
    with the first group's repeated); BigDL 2.x adds each group's own."""
    if g > 1 and str(ctx.b.metadata.get("bigdl_version", "")).startswith("0."):
        return np.tile(bias[: bias.size // g], g)
    return bias


def _requantize(qts: list[QuantTensor]) -> QuantizedWeight:
    codes = np.concatenate([q.codes for q in qts], axis=0)
    mx = np.concatenate([q.max for q in qts]).astype(np.float32)
    mn = np.concatenate([q.min for q in qts]).astype(np.float32)
    sm = np.concatenate([q.sum for q in qts]).astype(np.float32)
    amax = np.maximum(np.abs(mx), np.abs(mn)).astype(np.float32)
    stored = QuantizedWeight(codes, (amax / np.float32(127)).astype(np.float32), sm, amax)
    return bigdl_compat_requantize(stored, BIGDL_WEIGHT_LEVELS)


def _quant_list(ctx: ModuleContext, key: str) -> list[QuantTensor]:
    v = ctx.attr(key, None)
    vals = v if isinstance(v, list) else [v]
    if not vals or not all(isinstance(q, QuantTensor) for q in vals):
        raise ctx.fail(f"attribute {key!r} must hold quantized weight tensors")
    return vals  # type: ignore[return-value]


def _same_pads(ctx: ModuleContext, x: str, k: tuple[int, int], s: tuple[int, int]) -> list[int]:
    shp = ctx.shape(x)
    hw = shp[2:4]
    if len(shp) != 4 or not all(isinstance(d, int) for d in hw):
        raise ctx.fail("SAME padding (padW = padH = -1) needs a static input size; pass input_shape")
    pads = []
    for d, kk, ss in zip(hw, k, s, strict=True):
        out = -(-int(d) // ss)  # type: ignore[arg-type]
        pads.append(max((out - 1) * ss + kk - int(d), 0))  # type: ignore[arg-type]
    return [pads[0] // 2, pads[1] // 2, pads[0] - pads[0] // 2, pads[1] - pads[1] // 2]


def _qconv(
    ctx: ModuleContext,
    cin: int,
    cout: int,
    kh: int,
    kw: int,
    stride: tuple[int, int],
    pw: int,
    ph: int,
    dil: tuple[int, int],
    g: int,
) -> Act:
    fmt = ctx.fmt("format")
    if g < 1 or cin % g or cout % g:
        raise ctx.fail(f"nGroup {g} must divide nInputPlane {cin} and nOutputPlane {cout}")
    qts = _quant_list(ctx, "weights")
    if len(qts) != g:
        raise ctx.fail(f"{len(qts)} quantized weight tensors for {g} groups")
    k = cin // g * kh * kw
    for q in qts:
        if q.codes.shape != (cout // g, k):
            raise ctx.fail(f"quantized weight of shape {list(q.codes.shape)}, expected {[cout // g, k]}")
    if fmt == "NHWC":  # rows ordered (kh, kw, in): reorder to the IR's (in, kh, kw)
        qts = [
            QuantTensor(
                np.ascontiguousarray(q.codes.reshape(-1, kh, kw, cin // g).transpose(0, 3, 1, 2)).reshape(
                    q.codes.shape
                ),
                q.max,
                q.min,
                q.sum,
                q.sizes,
                q.params,
                q.desc_type,
            )
            for q in qts
        ]
    qw = _requantize(qts)
    b = ctx.b
    x = ctx.tensor_in()
    if fmt == "NHWC":
        (x,) = b.add_node("Transpose", [x], 1, name=f"{ctx.name}/to_nchw", perm=[0, 3, 1, 2])
    pads = _same_pads(ctx, x, (kh, kw), stride) if pw == -1 and ph == -1 else [ph, pw, ph, pw]
    if min(pads) < 0:
        raise ctx.fail(f"negative padding padW={pw}, padH={ph}")
    ins = [
        x,
        ctx.const("wq", qw.wq.reshape(cout, cin // g, kh, kw)),
        ctx.const("w_scale", qw.w_scale),
        ctx.const("w_sum", qw.w_sum),
        ctx.const("bias", _group_bias(ctx, _bias(ctx, cout), g)),
    ]
    y = ctx.node(
        "QConv",
        ins,
        domain=CM_DOMAIN,
        kernel_shape=[kh, kw],
        strides=list(stride),
        pads=pads,
        dilations=list(dil),
        group=g,
        input_levels=BIGDL_INPUT_LEVELS,
        activation="",
        arith="bigquant",
    )
    if fmt == "NHWC":
        (y,) = b.add_node("Transpose", [y], 1, name=f"{ctx.name}/to_nhwc", perm=[0, 2, 3, 1])
    return y


@module_handler("quantized.SpatialConvolution")
def qconv(ctx: ModuleContext) -> Act:
    return _qconv(
        ctx,
        ctx.i("nInputPlane"),
        ctx.i("nOutputPlane"),
        ctx.i("kernelH"),
        ctx.i("kernelW"),
        (ctx.i("strideH", 1), ctx.i("strideW", 1)),
        ctx.i("padW", 0),
        ctx.i("padH", 0),
        (1, 1),
        ctx.i("nGroup", 1),
    )


@module_handler("quantized.SpatialDilatedConvolution")
def qdilated(ctx: ModuleContext) -> Act:
    return _qconv(
        ctx,
        ctx.i("nInputPlane"),
        ctx.i("nOutputPlane"),
        ctx.i("kernelH"),
        ctx.i("kernelW"),
        (ctx.i("strideH", 1), ctx.i("strideW", 1)),
        ctx.i("padW", 0),
        ctx.i("padH", 0),
        (ctx.i("dilationH", 1), ctx.i("dilationW", 1)),
        1,
    )


@module_handler("quantized.Linear")
def qlinear(ctx: ModuleContext) -> Act:
    n_in, n_out = ctx.i("inputSize"), ctx.i("outputSize")
    (q,) = _quant_list(ctx, "weight")[:1]
    if q.codes.shape != (n_out, n_in):
        raise ctx.fail(f"quantized weight of shape {list(q.codes.shape)}, expected {[n_out, n_in]}")
    qw = _requantize([q])
    ins = [
        ctx.tensor_in(),
        ctx.const("wq", qw.wq),
        ctx.const("w_scale", qw.w_scale),
        ctx.const("w_sum", qw.w_sum),
    ]
    if ctx.attr("withBias", True):
        ins.append(ctx.const("bias", _bias(ctx, n_out)))
    return ctx.node("QGemm", ins, domain=CM_DOMAIN, input_levels=BIGDL_INPUT_LEVELS, activation="", arith="bigquant")


def quant_summary(g_nodes: list[Any]) -> dict[str, Any]:
    """The ``metadata["quantization"]`` record of a BigDL-quantized model (shape of the pass's record)."""
    counts: dict[str, int] = {}
    fp32: dict[str, int] = {}
    for n in g_nodes:
        if n.domain == CM_DOMAIN and n.op_type in ("QConv", "QGemm"):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        else:
            key = n.op_type if n.domain == "" else f"{n.domain}.{n.op_type}"
            fp32[key] = fp32.get(key, 0) + 1
    return {
        "scheme": "bigdl-local-window",
        "input_levels": BIGDL_INPUT_LEVELS,
        "weight_levels": BIGDL_WEIGHT_LEVELS,
        "compat": "bigdl",
        "source": "BigDL-quantized model (weights re-quantized to 64 levels as BigDL does at load)",
        "excluded": [],
        "counts": {"quantized": counts, "kept_fp32": 0, "fused_relu": 0, "folded": 0},
        "kept": {},
        "fp32_ops": dict(sorted(fp32.items())),
    }
