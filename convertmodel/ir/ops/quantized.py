"""Schemas of the int8 ops the quantize pass emits: QConv and QGemm (domain ``"convertmodel"``).

Both follow the normative int8 op contract in docs/quantization.md: the input is float32 and
is quantized on the fly, one asymmetric ``input_levels``-level window per im2col patch (QConv)
or per row (QGemm), BigDL 0.3's "local window" scheme; the weight ``Wq`` is int8 with one
symmetric scale ``w_scale`` per output channel; ``w_sum`` is the fp32 sum of each original
weight row; the output is dequantized to float32 (optionally followed by a fused ReLU).
"""

from __future__ import annotations

import dataclasses

from convertmodel.ir.graph import TensorType
from convertmodel.ir.ops._util import pool_out_dim
from convertmodel.ir.ops.conv import conv_geometry
from convertmodel.ir.schema import CM_DOMAIN, Attr, AttrType, InferContext, op_schema

#: Activations a quantized op can fuse into its epilogue.
Q_ACTIVATIONS = ("", "Relu")

#: Arithmetic modes of QConv/QGemm (docs/quantization.md): ``contract`` = the int8 op contract (exact,
#: the same integers on every ISA); ``bigquant`` = BigDL 2.x's BigQuant runtime re-stated (section 9),
#: which the BigDL reader sets on BigDL-quantized files so they give BigDL's own int8 outputs.
Q_ARITHS = ("contract", "bigquant")

Q_COMMON_ATTRS = [
    Attr(
        "input_levels",
        AttrType.INT,
        255,
        "L: the input window maps [min, max] to 0..L (255 default, 127 in BigDL compat mode)",
    ),
    Attr("activation", AttrType.STRING, "", "'' or 'Relu' (a following Relu fused by the quantize pass)"),
    Attr(
        "arith",
        AttrType.STRING,
        "contract",
        "'contract' (the int8 op contract) or 'bigquant' (BigDL's BigQuant arithmetic; numpy reference only)",
    ),
]

QCONV_ATTRS = [
    Attr("kernel_shape", AttrType.INTS, (), "spatial kernel size; taken from Wq when empty"),
    Attr("strides", AttrType.INTS, ()),
    Attr("pads", AttrType.INTS, (), "explicit begin pads then end pads (the pass resolves auto_pad)"),
    Attr("dilations", AttrType.INTS, ()),
    Attr("group", AttrType.INT, 1),
    *Q_COMMON_ATTRS,
]


def _check_q_params(ctx: InferContext, m: object) -> None:
    """Shared checks: dtypes of X/Wq/params, per-channel parameter lengths, attribute ranges."""
    x, wq = ctx.input_type(0), ctx.input_type(1)
    if x.dtype != "float32":
        raise ctx.fail(f"input X must be float32, got {x.dtype}")
    if wq.dtype != "int8":
        raise ctx.fail(f"weight Wq must be int8, got {wq.dtype}")
    names = {2: "w_scale", 3: "w_sum", 4: "B"}
    for i, name in names.items():
        if not ctx.has_input(i):
            if i < 4:
                raise ctx.fail(f"input {name} is missing")
            continue
        t = ctx.input_type(i)
        if t.dtype != "float32":
            raise ctx.fail(f"{name} must be float32, got {t.dtype}")
        if t.shape is not None and isinstance(m, int) and tuple(t.shape) != (m,):
            raise ctx.fail(f"{name} must have shape [{m}] (one per output channel), got {list(t.shape)}")
    levels = ctx.attrs["input_levels"]
    if not 1 <= levels <= 255:
        raise ctx.fail(f"input_levels must be in 1..255 (uint8 codes), got {levels}")
    if ctx.attrs["activation"] not in Q_ACTIVATIONS:
        raise ctx.fail(f"activation must be one of {list(Q_ACTIVATIONS)}, got {ctx.attrs['activation']!r}")
    if ctx.attrs["arith"] not in Q_ARITHS:
        raise ctx.fail(f"arith must be one of {list(Q_ARITHS)}, got {ctx.attrs['arith']!r}")


@op_schema("QConv", domain=CM_DOMAIN, inputs=["X", "Wq", "w_scale", "w_sum", "B?"], outputs=["Y"], attrs=QCONV_ATTRS)
def _qconv(ctx: InferContext) -> list[TensorType]:
    """int8 convolution, one input window per im2col patch and group; dequantized float32 output."""
    x, w = ctx.shape(0), ctx.shape(1)
    m = w[0]
    _check_q_params(ctx, m)
    # Conv's geometry rules apply with explicit pads only (the pass resolves auto_pad).
    conv_ctx = dataclasses.replace(ctx, attrs={**ctx.attrs, "auto_pad": "NOTSET"})
    kernel, strides, dil, pads = conv_geometry(conv_ctx)
    n = len(kernel)
    g = ctx.attrs["group"]
    if isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * g:
        raise ctx.fail(f"input has {x[1]} channels but Wq expects {w[1]} x group {g}")
    if isinstance(m, int) and m % g:
        raise ctx.fail(f"{m} output channels are not divisible by group {g}")
    out = [pool_out_dim(x[2 + i], kernel[i], strides[i], pads[i], pads[n + i], dil[i]) for i in range(n)]
    return [TensorType("float32", (x[0], m, *out))]


@op_schema("QGemm", domain=CM_DOMAIN, inputs=["X", "Wq", "w_scale", "w_sum", "B?"], outputs=["Y"], attrs=Q_COMMON_ATTRS)
def _qgemm(ctx: InferContext) -> list[TensorType]:
    """int8 fully connected layer: X (..., K) times Wq (M, K) transposed, one window per row of X."""
    x, w = ctx.shape(0), ctx.shape(1)
    if len(x) < 2:
        raise ctx.fail(f"X must have rank >= 2 (one window per row), got shape {list(x)}")
    if len(w) != 2:
        raise ctx.fail(f"Wq must be 2-D (M, K), got shape {list(w)}")
    _check_q_params(ctx, w[0])
    if isinstance(x[-1], int) and isinstance(w[1], int) and x[-1] != w[1]:
        raise ctx.fail(f"X has {x[-1]} features per row but Wq expects K = {w[1]}")
    return [TensorType("float32", (*x[:-1], w[0]))]
