"""Caffe layer handlers: Input, convolution, pooling, InnerProduct, activations, BatchNorm, LRN, Softmax.

One handler per layer type (some shared by sibling types), registered with :func:`layer_handler`.
Facts about Caffe's semantics cite BVLC Caffe's src/caffe/layers/*.cpp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convertmodel.errors import UnsupportedOpError
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.readers.caffe.context import LayerContext, layer_handler


def _spatial(
    values: Sequence[int], h: int | None, w: int | None, default: int | None, n: int, ctx: LayerContext, what: str
) -> list[int]:
    """Caffe's rule for pad/kernel/stride/dilation: *_h/*_w, else one value for all axes or one per axis."""
    if h is not None or w is not None:
        if n != 2:
            raise ctx.fail(f"{what}_h/{what}_w need a 2-D input, got {n} spatial axes")
        return [
            int(h if h is not None else (values[0] if values else default or 0)),
            int(w if w is not None else (values[0] if values else default or 0)),
        ]
    if not values:
        if default is None:
            raise ctx.fail(f"{what} is required")
        return [default] * n
    if len(values) == 1:
        return [int(values[0])] * n
    if len(values) != n:
        raise ctx.fail(f"{what} has {len(values)} values for {n} spatial axes")
    return [int(v) for v in values]


def _opt(p: object, field: str) -> int | None:
    return int(getattr(p, field)) if p.HasField(field) else None  # type: ignore[attr-defined]


@layer_handler("Convolution", "Deconvolution")
def convolution(ctx: LayerContext) -> list[str]:
    p = ctx.layer.convolution_param
    x = ctx.shape(0)
    if p.axis != 1:
        raise UnsupportedOpError(ctx.path, {f"{ctx.type}(axis={p.axis})": [ctx.name]}, what="Caffe layer")
    n = len(x) - 2
    if n < 1:
        raise ctx.fail(f"input must be (N, C, spatial...), got shape {list(x)}")
    kernel = _spatial(p.kernel_size, _opt(p, "kernel_h"), _opt(p, "kernel_w"), None, n, ctx, "kernel_size")
    stride = _spatial(p.stride, _opt(p, "stride_h"), _opt(p, "stride_w"), 1, n, ctx, "stride")
    pad = _spatial(p.pad, _opt(p, "pad_h"), _opt(p, "pad_w"), 0, n, ctx, "pad")
    dil = _spatial(p.dilation, None, None, 1, n, ctx, "dilation")
    g = int(p.group)
    c_in, c_out = x[1], int(p.num_output)
    if min(kernel + stride + dil) < 1 or min(pad, default=0) < 0:
        raise ctx.fail(f"kernel {kernel}, stride {stride}, dilation {dil} must be >= 1 and pad {pad} >= 0")
    if g < 1 or c_out < 1:
        raise ctx.fail(f"group ({g}) and num_output ({c_out}) must be >= 1")
    if c_in % g or c_out % g:
        raise ctx.fail(f"group {g} must divide input channels {c_in} and num_output {c_out}")
    deconv = ctx.type == "Deconvolution"
    # Caffe's weight layout: Convolution (out, in/g, k...), Deconvolution (in, out/g, k...) as ONNX's.
    wshape = (c_in, c_out // g, *kernel) if deconv else (c_out, c_in // g, *kernel)
    ctx.need_blobs(2 if p.bias_term else 1)
    w = ctx.const("weight", ctx.blob(0, wshape))
    inputs = [ctx.inputs[0], w]
    if p.bias_term:
        inputs.append(ctx.const("bias", ctx.blob(1, (c_out,))))
    op = "ConvTranspose" if deconv else "Conv"
    return [
        ctx.node(op, inputs, out=ctx.top(), kernel_shape=kernel, strides=stride, pads=pad + pad, dilations=dil, group=g)
    ]


def caffe_pool_out(size: int, k: int, s: int, p: int, ceil: bool = True) -> int:
    """Caffe's pooled size (pooling_layer.cpp): ceil, then drop a last window starting in the end pad.

    ``ceil=False`` is the floor rounding of BVLC PR #3057's ``ceil_mode: false`` (OpenCV supports it)."""
    if not ceil:
        return (size + 2 * p - k) // s + 1
    out = -(-(size + 2 * p - k) // s) + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


@layer_handler("Pooling")
def pooling(ctx: LayerContext) -> list[str]:
    p = ctx.layer.pooling_param
    x = ctx.shape(0)
    method = {0: "MAX", 1: "AVE"}.get(int(p.pool))
    if method is None:
        raise UnsupportedOpError(ctx.path, {"Pooling(STOCHASTIC)": [ctx.name]}, what="Caffe layer")
    if len(x) != 4:
        raise ctx.fail(f"input must be (N, C, H, W), got {list(x)}")
    if p.global_pooling:
        return [ctx.node("GlobalMaxPool" if method == "MAX" else "GlobalAveragePool", ctx.inputs[:1], out=ctx.top())]
    k = [int(p.kernel_h), int(p.kernel_w)] if p.HasField("kernel_h") else [int(p.kernel_size)] * 2
    if not p.HasField("kernel_h") and not p.HasField("kernel_size"):
        raise ctx.fail("kernel_size (or kernel_h and kernel_w) is required unless global_pooling")
    s = [int(p.stride_h), int(p.stride_w)] if p.HasField("stride_h") else [int(p.stride)] * 2
    pad = [int(p.pad_h), int(p.pad_w)] if p.HasField("pad_h") or p.HasField("pad_w") else [int(p.pad)] * 2
    if min(k + s) < 1 or min(pad) < 0 or any(pad[i] >= k[i] for i in range(2)):
        # pooling_layer.cpp: CHECK_GT(kernel, 0), CHECK_GT(stride, 0), CHECK_LT(pad, kernel).
        raise ctx.fail(f"kernel {k} and stride {s} must be >= 1 and pad {pad} in [0, kernel)")
    ceil = bool(p.ceil_mode)
    for i in range(2):
        if not ceil:
            break
        # The IR's ceil mode always drops a last window that starts past the input and begin pad; Caffe
        # does so only when pad > 0. They differ only if pad == 0 and stride > kernel leaves such a window.
        size = x[2 + i]
        out = caffe_pool_out(size, k[i], s[i], pad[i])
        if (out - 1) * s[i] >= size + pad[i]:
            raise UnsupportedOpError(
                ctx.path,
                {f"Pooling(kernel={k[i]}, stride={s[i]}, pad=0, last window outside the input)": [ctx.name]},
                what="Caffe layer",
            )
    attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "pads": pad + pad, "ceil_mode": int(ceil)}
    if method == "MAX":
        return [ctx.node("MaxPool", ctx.inputs[:1], out=ctx.top(), **attrs)]
    # Caffe's AVE divisor counts the window clipped to the padded extent: ONNX count_include_pad=1.
    return [ctx.node("AveragePool", ctx.inputs[:1], out=ctx.top(), count_include_pad=1, **attrs)]


@layer_handler("InnerProduct")
def inner_product(ctx: LayerContext) -> list[str]:
    p = ctx.layer.inner_product_param
    x = ctx.shape(0)
    axis = int(p.axis) % len(x)
    k = int(np.prod(x[axis:]))
    m = int(p.num_output)
    ctx.need_blobs(2 if p.bias_term else 1)
    # Weight (num_output, K), or (K, num_output) with transpose (inner_product_layer.cpp).
    w = ctx.blob(0, (k, m) if p.transpose else (m, k))
    inputs = [ctx.inputs[0]]
    if len(x) != 2 or axis != 1:
        inputs[0] = ctx.node("Flatten", inputs, suffix="flatten", axis=axis)
    inputs.append(ctx.const("weight", w))
    if p.bias_term:
        inputs.append(ctx.const("bias", ctx.blob(1, (m,))))
    if axis == 1:
        return [ctx.node("Gemm", inputs, out=ctx.top(), transB=0 if p.transpose else 1)]
    y = ctx.node("Gemm", inputs, suffix="gemm", transB=0 if p.transpose else 1)
    shape = ctx.const("shape", np.array([*x[:axis], m], np.int64))
    return [ctx.node("Reshape", [y, shape], out=ctx.top())]


@layer_handler("ReLU")
def relu(ctx: LayerContext) -> list[str]:
    slope = float(ctx.layer.relu_param.negative_slope)
    if slope == 0.0:
        return [ctx.node("Relu", ctx.inputs[:1], out=ctx.top())]
    return [ctx.node("LeakyRelu", ctx.inputs[:1], out=ctx.top(), alpha=slope)]


@layer_handler("PReLU")
def prelu(ctx: LayerContext) -> list[str]:
    x = ctx.shape(0)
    shared = ctx.layer.prelu_param.channel_shared
    ctx.need_blobs(1)
    slope = ctx.blob(0, (1,) if shared else (x[1],))
    # A (C,) slope is taken per channel by the IR's PRelu; reshape it (C, 1, ...) so plain ONNX broadcasting agrees.
    if not shared and len(x) > 2:
        slope = slope.reshape((x[1],) + (1,) * (len(x) - 2))
    return [ctx.node("PRelu", [ctx.inputs[0], ctx.const("slope", slope)], out=ctx.top())]


_UNARY = {"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs", "BNLL": "Softplus"}


@layer_handler(*_UNARY)
def unary(ctx: LayerContext) -> list[str]:
    # BNLL is log(1 + exp(x)) (bnll_layer.cpp), i.e. Softplus.
    return [ctx.node(_UNARY[ctx.type], ctx.inputs[:1], out=ctx.top())]


@layer_handler("ELU")
def elu(ctx: LayerContext) -> list[str]:
    return [ctx.node("Elu", ctx.inputs[:1], out=ctx.top(), alpha=float(ctx.layer.elu_param.alpha))]


@layer_handler("Power")
def power(ctx: LayerContext) -> list[str]:
    """y = (shift + scale * x) ^ power (power_layer.cpp), as Mul, Add, Pow with scalar constants."""
    p = ctx.layer.power_param
    steps = [
        (op, v)
        for op, v, neutral in (("Mul", p.scale, 1.0), ("Add", p.shift, 0.0), ("Pow", p.power, 1.0))
        if float(v) != neutral
    ]
    if not steps:
        return [ctx.node("Identity", ctx.inputs[:1], out=ctx.top())]
    y = ctx.inputs[0]
    for k, (op, v) in enumerate(steps):
        c = ctx.const(op.lower(), np.array(v, np.float32))
        last = k == len(steps) - 1
        y = ctx.node(op, [y, c], out=ctx.top() if last else None, suffix="" if last else op.lower())
    return [y]


@layer_handler("BatchNorm")
def batch_norm(ctx: LayerContext) -> list[str]:
    """Caffe keeps running sums: mean = blob0 * f, var = blob1 * f with f = 1 / blob2 (0 if blob2 == 0)
    (batch_norm_layer.cpp); deploy nets use the global statistics whatever use_global_stats says."""
    c = ctx.shape(0)[1]
    ctx.need_blobs(3)
    s = float(ctx.blob(2, (1,))[0])
    f = np.float32(0.0 if s == 0 else 1.0 / np.float32(s))
    mean = (ctx.blob(0, (c,)) * f).astype(np.float32)
    var = (ctx.blob(1, (c,)) * f).astype(np.float32)
    ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
    inputs = [
        ctx.inputs[0],
        ctx.const("scale", ones),
        ctx.const("bias", zeros),
        ctx.const("mean", mean),
        ctx.const("var", var),
    ]
    return [ctx.node("BatchNormalization", inputs, out=ctx.top(), epsilon=float(ctx.layer.batch_norm_param.eps))]


@layer_handler("LRN")
def lrn(ctx: LayerContext) -> list[str]:
    p = ctx.layer.lrn_param
    if int(p.norm_region) == 1:  # WITHIN_CHANNEL
        return [
            ctx.node(
                "LRNWithinChannel",
                ctx.inputs[:1],
                out=ctx.top(),
                domain=CM_DOMAIN,
                size=int(p.local_size),
                alpha=float(p.alpha),
                beta=float(p.beta),
            )
        ]
    # ACROSS_CHANNELS: k + alpha / size * sum over size channels (lrn_layer.cpp) = ONNX LRN with bias = k.
    return [
        ctx.node(
            "LRN",
            ctx.inputs[:1],
            out=ctx.top(),
            size=int(p.local_size),
            alpha=float(p.alpha),
            beta=float(p.beta),
            bias=float(p.k),
        )
    ]


@layer_handler("Softmax")
def softmax(ctx: LayerContext) -> list[str]:
    return [ctx.node("Softmax", ctx.inputs[:1], out=ctx.top(), axis=int(ctx.layer.softmax_param.axis))]


@layer_handler("Dropout")
def dropout(ctx: LayerContext) -> list[str]:
    """Identity at inference (Caffe scales during training, not at test time)."""
    return [ctx.node("Identity", ctx.inputs[:1], out=ctx.top())]
