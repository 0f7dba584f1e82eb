"""Schemas of convolution-like ops: Conv, ConvTranspose."""

from __future__ import annotations

from convertmodel.ir.graph import TensorType
from convertmodel.ir.ops._util import conv_pads, pool_out_dim
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema

CONV_ATTRS = [
    Attr("kernel_shape", AttrType.INTS, (), "spatial kernel size; taken from W when empty"),
    Attr("strides", AttrType.INTS, ()),
    Attr("pads", AttrType.INTS, (), "begin pads then end pads, one per spatial axis"),
    Attr("dilations", AttrType.INTS, ()),
    Attr("group", AttrType.INT, 1),
    Attr("auto_pad", AttrType.STRING, "NOTSET", "NOTSET, SAME_UPPER, SAME_LOWER or VALID"),
]


def conv_geometry(ctx: InferContext) -> tuple[list[int], list[int], list[int], tuple[int, ...]]:
    """kernel, strides, dilations, explicit pads of a Conv-like node."""
    x = ctx.shape(0)
    w = ctx.shape(1)
    n = len(x) - 2
    kernel = list(ctx.attrs["kernel_shape"] or [int(d) for d in w[2:]])  # type: ignore[arg-type]
    strides = list(ctx.attrs["strides"] or [1] * n)
    dil = list(ctx.attrs["dilations"] or [1] * n)
    pads = conv_pads(dict(ctx.attrs), x[2:], kernel, strides, dil)
    if len(kernel) != n or len(strides) != n or len(dil) != n or len(pads) != 2 * n:
        raise ctx.fail(f"kernel {kernel}, strides {strides}, dilations {dil}, pads {list(pads)} do not fit input rank {len(x)}")
    return kernel, strides, dil, pads


@op_schema("Conv", inputs=["X", "W", "B?"], outputs=["Y"], attrs=CONV_ATTRS)
def _conv(ctx: InferContext) -> list[TensorType]:
    """N-d convolution (NCHW), ONNX semantics, incl. groups, dilation, asymmetric pads."""
    x, w = ctx.shape(0), ctx.shape(1)
    kernel, strides, dil, pads = conv_geometry(ctx)
    n = len(kernel)
    g = ctx.attrs["group"]
    if isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * g:
        raise ctx.fail(f"input has {x[1]} channels but weight expects {w[1]} x group {g}")
    out = [pool_out_dim(x[2 + i], kernel[i], strides[i], pads[i], pads[n + i], dil[i]) for i in range(n)]
    return [TensorType(ctx.input_type(0).dtype, (x[0], w[0], *out))]


@op_schema(
    "ConvTranspose",
    inputs=["X", "W", "B?"],
    outputs=["Y"],
    attrs=[*CONV_ATTRS, Attr("output_padding", AttrType.INTS, ()), Attr("output_shape", AttrType.INTS, ())],
)
def _conv_transpose(ctx: InferContext) -> list[TensorType]:
    """Transposed convolution; W is (C_in, C_out/group, k...)."""
    x, w = ctx.shape(0), ctx.shape(1)
    n = len(x) - 2
    kernel = list(ctx.attrs["kernel_shape"] or w[2:])
    strides = list(ctx.attrs["strides"] or [1] * n)
    dil = list(ctx.attrs["dilations"] or [1] * n)
    pads = list(ctx.attrs["pads"] or [0] * (2 * n))
    opad = list(ctx.attrs["output_padding"] or [0] * n)
    c_out = w[1] * ctx.attrs["group"] if isinstance(w[1], int) else None
    if ctx.attrs["output_shape"]:
        out = list(ctx.attrs["output_shape"])[-n:]
    else:
        out = []
        for i in range(n):
            s = x[2 + i]
            out.append(
                strides[i] * (s - 1) + opad[i] + (dil[i] * (kernel[i] - 1) + 1) - pads[i] - pads[n + i]
                if isinstance(s, int) else None
            )
    return [TensorType(ctx.input_type(0).dtype, (x[0], c_out, *out))]
