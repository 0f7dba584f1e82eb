"""BigDL fp32 layer handlers: convolutions, pooling, normalization, Linear, activations, shape ops.

Attribute names are the Scala constructor parameters BigDL's reflection serializer writes
(``ModuleSerializable.doSerializeModule``), or the keys of the module's own serializer
(BatchNormalization: runningMean/runningVar; SpatialFullConvolution: intParams; Reshape: batchMode).
"""

from __future__ import annotations

import numpy as np

from convertmodel.errors import UnsupportedOpError
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.readers.bigdl.context import Act, ModuleContext, module_handler
from convertmodel.readers.torchnn import emit


def _pads(ctx: ModuleContext, pad_w: int, pad_h: int) -> tuple[int, int] | None:
    if pad_w == -1 and pad_h == -1:
        return None  # BigDL: -1/-1 is TensorFlow's SAME padding
    if pad_w < 0 or pad_h < 0:
        raise ctx.fail(f"negative padding padW={pad_w}, padH={pad_h}")
    return (pad_h, pad_w)


def _unsupported(ctx: ModuleContext, variant: str) -> UnsupportedOpError:
    return UnsupportedOpError(ctx.path, {f"{ctx.cls}({variant})": [ctx.name]}, what="BigDL module")


@module_handler("SpatialConvolution", "SpatialShareConvolution")
def spatial_convolution(ctx: ModuleContext) -> Act:
    cin, cout = ctx.i("nInputPlane"), ctx.i("nOutputPlane")
    kw, kh = ctx.i("kernelW"), ctx.i("kernelH")
    g = ctx.i("nGroup", 1)
    fmt = ctx.fmt("format")
    if g < 1 or cin % g or cout % g:
        raise ctx.fail(f"nGroup {g} must divide nInputPlane {cin} and nOutputPlane {cout}")
    if fmt == "NHWC":
        w = ctx.param(0, (g, kh, kw, cin // g, cout // g), "weight")
        if w is not None:
            w = w.transpose(0, 4, 3, 1, 2)
    else:
        w = ctx.param(0, (g, cout // g, cin // g, kh, kw), "weight")
    if w is None:
        raise ctx.fail("weight is missing")
    bias = ctx.param(1, (cout,), "bias") if ctx.attr("withBias", True) else None
    pads = _pads(ctx, ctx.i("padW", 0), ctx.i("padH", 0))
    return emit.conv(
        ctx.b,
        ctx.name,
        ctx.tensor_in(),
        w.reshape(cout, cin // g, kh, kw),
        bias,
        (kh, kw),
        (ctx.i("strideH", 1), ctx.i("strideW", 1)),
        pads,
        (1, 1),
        g,
        fmt,
    )


@module_handler("SpatialDilatedConvolution")
def dilated_convolution(ctx: ModuleContext) -> Act:
    cin, cout = ctx.i("nInputPlane"), ctx.i("nOutputPlane")
    kw, kh = ctx.i("kW"), ctx.i("kH")
    w = ctx.param(0, (cout, cin, kh, kw), "weight")
    if w is None:
        raise ctx.fail("weight is missing")
    bias = ctx.param(1, (cout,), "bias")
    return emit.conv(
        ctx.b,
        ctx.name,
        ctx.tensor_in(),
        w,
        bias,
        (kh, kw),
        (ctx.i("dH", 1), ctx.i("dW", 1)),
        _pads(ctx, ctx.i("padW", 0), ctx.i("padH", 0)),
        (ctx.i("dilationH", 1), ctx.i("dilationW", 1)),
    )


@module_handler("SpatialFullConvolution")
def full_convolution(ctx: ModuleContext) -> Act:
    ip = ctx.attr("intParams", None)
    if ip is not None:
        if len(ip) != 11:
            raise ctx.fail(f"intParams has {len(ip)} values, expected 11")
        cin, cout, kw, kh, dw, dh, pw, ph, aw, ah, g = (int(v) for v in ip)
        no_bias = bool(ctx.attr("noBias", False))
    else:
        cin, cout = ctx.i("nInputPlane"), ctx.i("nOutputPlane")
        kw, kh, dw, dh = ctx.i("kW"), ctx.i("kH"), ctx.i("dW", 1), ctx.i("dH", 1)
        pw, ph, aw, ah, g = (
            ctx.i("padW", 0),
            ctx.i("padH", 0),
            ctx.i("adjW", 0),
            ctx.i("adjH", 0),
            ctx.i("nGroup", 1),
        )
        no_bias = bool(ctx.attr("noBias", False))
    if g < 1 or cin % g or cout % g:
        raise ctx.fail(f"nGroup {g} must divide nInputPlane {cin} and nOutputPlane {cout}")
    w = ctx.param(0, (cin, cout // g, kh, kw), "weight")  # BigDL: (g, in/g, out/g, kh, kw)
    if w is None:
        raise ctx.fail("weight is missing")
    b = ctx.b
    ins = [ctx.tensor_in(), b.add_const(f"{ctx.name}/weight", w)]
    if not no_bias:
        bias = ctx.param(1, (cout,), "bias")
        if bias is not None:
            ins.append(b.add_const(f"{ctx.name}/bias", bias))
    return ctx.node(
        "ConvTranspose",
        ins,
        kernel_shape=[kh, kw],
        strides=[dh, dw],
        pads=[ph, pw, ph, pw],
        output_padding=[ah, aw],
        group=g,
    )


@module_handler("SpatialBatchNormalization", "BatchNormalization")
def batch_norm(ctx: ModuleContext) -> Act:
    c = ctx.i("nOutput")
    mean, var = ctx.attr("runningMean", None), ctx.attr("runningVar", None)
    if not isinstance(mean, np.ndarray) or not isinstance(var, np.ndarray) or mean.size != c or var.size != c:
        raise ctx.fail(f"runningMean/runningVar must hold {c} values each")
    affine = bool(ctx.attr("affine", True))
    scale = ctx.param(0, (c,), "weight") if affine else None
    bias = ctx.param(1, (c,), "bias") if affine else None
    fmt = ctx.fmt("dataFormat")
    return emit.batchnorm(ctx.b, ctx.name, ctx.tensor_in(), mean, var, scale, bias, float(ctx.attr("eps", 1e-5)), fmt)


@module_handler("Linear")
def linear(ctx: ModuleContext) -> Act:
    n_in, n_out = ctx.i("inputSize"), ctx.i("outputSize")
    w = ctx.param(0, (n_out, n_in), "weight")
    if w is None:
        raise ctx.fail("weight is missing")
    bias = ctx.param(1, (n_out,), "bias") if ctx.attr("withBias", True) else None
    return emit.linear(ctx.b, ctx.name, ctx.tensor_in(), w, bias)


@module_handler("ReLU")
def relu(ctx: ModuleContext) -> Act:
    return ctx.node("Relu", [ctx.tensor_in()])


@module_handler("ReLU6")
def relu6(ctx: ModuleContext) -> Act:
    return emit.clip(ctx.b, ctx.name, ctx.tensor_in(), 0.0, 6.0)


@module_handler("HardTanh")
def hard_tanh(ctx: ModuleContext) -> Act:
    return emit.clip(
        ctx.b, ctx.name, ctx.tensor_in(), float(ctx.attr("minValue", -1.0)), float(ctx.attr("maxValue", 1.0))
    )


@module_handler("Clamp")
def clamp(ctx: ModuleContext) -> Act:
    return emit.clip(ctx.b, ctx.name, ctx.tensor_in(), float(ctx.attr("minV")), float(ctx.attr("maxV")))


@module_handler("Tanh")
def tanh(ctx: ModuleContext) -> Act:
    return ctx.node("Tanh", [ctx.tensor_in()])


@module_handler("Sigmoid")
def sigmoid(ctx: ModuleContext) -> Act:
    return ctx.node("Sigmoid", [ctx.tensor_in()])


@module_handler("Threshold")
def threshold(ctx: ModuleContext) -> Act:
    return emit.threshold(ctx.b, ctx.name, ctx.tensor_in(), float(ctx.attr("th", 1e-6)), float(ctx.attr("v", 0.0)))


@module_handler("LeakyReLU")
def leaky_relu(ctx: ModuleContext) -> Act:
    return ctx.node("LeakyRelu", [ctx.tensor_in()], alpha=float(ctx.attr("negval", 0.01)))


@module_handler("PReLU")
def prelu(ctx: ModuleContext) -> Act:
    n = ctx.i("nOutputPlane", 0)
    w = ctx.param(0, (max(n, 1),), "weight")
    if w is None:
        raise ctx.fail("weight is missing")
    x = ctx.tensor_in()
    r = ctx.b.rank(x)
    slope = w.reshape((n,) + (1,) * (r - 2)) if n > 0 and r >= 2 else w.reshape(())
    return ctx.node("PRelu", [x, ctx.const("slope", slope)])


@module_handler("SoftMax")
def softmax(ctx: ModuleContext) -> Act:
    return emit.softmax(ctx.b, ctx.name, ctx.tensor_in())


@module_handler("LogSoftMax")
def log_softmax(ctx: ModuleContext) -> Act:
    return emit.softmax(ctx.b, ctx.name, ctx.tensor_in(), log=True)


@module_handler("SpatialMaxPooling")
def max_pooling(ctx: ModuleContext) -> Act:
    k = (ctx.i("kH"), ctx.i("kW"))
    s = (ctx.i("dH"), ctx.i("dW"))
    pads = _pads(ctx, ctx.i("padW", 0), ctx.i("padH", 0))
    ceil = bool(ctx.attr("ceil_mode", False))
    return emit.pool(ctx.b, ctx.name, ctx.tensor_in(), "max", k, s, pads, ceil, fmt=ctx.fmt("format"))


@module_handler("SpatialAveragePooling")
def avg_pooling(ctx: ModuleContext) -> Act:
    fmt = ctx.fmt("format")
    if not bool(ctx.attr("divide", True)):
        raise _unsupported(ctx, "divide=false")
    if bool(ctx.attr("globalPooling", False)):
        return emit.global_pool(ctx.b, ctx.name, ctx.tensor_in(), "avg", fmt)
    k = (ctx.i("kH"), ctx.i("kW"))
    s = (ctx.i("dH", 1), ctx.i("dW", 1))
    pads = _pads(ctx, ctx.i("padW", 0), ctx.i("padH", 0))
    return emit.pool(
        ctx.b,
        ctx.name,
        ctx.tensor_in(),
        "avg",
        k,
        s,
        pads,
        bool(ctx.attr("ceilMode", False)),
        bool(ctx.attr("countIncludePad", True)),
        fmt,
    )


@module_handler("SpatialCrossMapLRN")
def lrn(ctx: ModuleContext) -> Act:
    return emit.lrn(
        ctx.b,
        ctx.name,
        ctx.tensor_in(),
        ctx.i("size", 5),
        float(ctx.attr("alpha", 1.0)),
        float(ctx.attr("beta", 0.75)),
        float(ctx.attr("k", 1.0)),
        ctx.fmt("format"),
    )


@module_handler("SpatialWithinChannelLRN")
def lrn_within(ctx: ModuleContext) -> Act:
    return ctx.node(
        "LRNWithinChannel",
        [ctx.tensor_in()],
        domain=CM_DOMAIN,
        size=ctx.i("size", 5),
        alpha=float(ctx.attr("alpha", 1.0)),
        beta=float(ctx.attr("beta", 0.75)),
    )


@module_handler("SpatialZeroPadding")
def zero_padding(ctx: ModuleContext) -> Act:
    return emit.pad2d(
        ctx.b,
        ctx.name,
        ctx.tensor_in(),
        ctx.i("padLeft"),
        ctx.i("padRight"),
        ctx.i("padTop"),
        ctx.i("padBottom"),
    )


@module_handler("Identity", "Input", "Dropout", "Echo", "Contiguous", "SpatialDropout2D", "GaussianDropout")
def identity(ctx: ModuleContext) -> Act:
    return ctx.x  # inference: no computation (Dropout is the identity at test time)


@module_handler("MulConstant")
def mul_constant(ctx: ModuleContext) -> Act:
    return ctx.node("Mul", [ctx.tensor_in(), ctx.const("c", np.float32(ctx.attr("scalar")))])


@module_handler("AddConstant")
def add_constant(ctx: ModuleContext) -> Act:
    return ctx.node("Add", [ctx.tensor_in(), ctx.const("c", np.float32(ctx.attr("constant_scalar")))])


def _cmul_cadd(ctx: ModuleContext, x: str, sub: object, op: str) -> str:
    """Apply a CMul/CAdd module (weight / bias shaped by its ``size``) to ``x``."""
    sctx = ModuleContext(ctx.path, sub, op, ctx.name, x, ctx.b, ctx.storages, ctx.run)
    size = [int(v) for v in sctx.attr("size")]
    legacy = not (sub.hasParameters or len(sub.parameters))  # type: ignore[attr-defined]
    p = sctx.param(1 if legacy and op == "CAdd" else 0, size, "weight" if op == "CMul" else "bias")
    if p is None:
        raise ctx.fail(f"{op} parameter is missing")
    c = ctx.const("weight" if op == "CMul" else "bias", emit.broadcast_param(ctx.b, x, p))
    return ctx.node("Mul" if op == "CMul" else "Add", [x, c], suffix="mul" if op == "CMul" else "add")


@module_handler("CMul", "CAdd")
def cmul(ctx: ModuleContext) -> Act:
    return _cmul_cadd(ctx, ctx.tensor_in(), ctx.module, ctx.cls)


@module_handler("Scale")
def scale(ctx: ModuleContext) -> Act:
    cm, ca = ctx.attr("cmul", None), ctx.attr("cadd", None)
    if cm is None or ca is None:
        raise ctx.fail("Scale needs its cmul and cadd sub-modules")
    return _cmul_cadd(ctx, _cmul_cadd(ctx, ctx.tensor_in(), cm, "CMul"), ca, "CAdd")


@module_handler("Normalize")
def normalize(ctx: ModuleContext) -> Act:
    p = float(ctx.attr("p"))
    if p == float("inf") or p > 1e300:
        raise _unsupported(ctx, "p=inf")
    return emit.normalize_lp(ctx.b, ctx.name, ctx.tensor_in(), p, float(ctx.attr("eps", 1e-10)))


@module_handler("NormalizeScale")
def normalize_scale(ctx: ModuleContext) -> Act:
    y = emit.normalize_lp(
        ctx.b, f"{ctx.name}/normalize", ctx.tensor_in(), float(ctx.attr("p")), float(ctx.attr("eps", 1e-10))
    )
    size = [int(v) for v in ctx.attr("size")]
    w = ctx.param(0, size, "weight")
    if w is None:
        raise ctx.fail("weight is missing")
    return ctx.node("Mul", [y, ctx.const("scale", emit.broadcast_param(ctx.b, y, w))])
