"""Handlers of TensorFlow's neural-network ops: convolutions, pooling, BatchNorm, MatMul, activations, resize."""

from __future__ import annotations

import numpy as np

from convertmodel.readers.tensorflow.context import Node, tf_op
from convertmodel.readers.tensorflow.nn import (
    activation,
    batch_norm,
    conv2d,
    conv_transpose2d,
    depthwise_to_oihw,
    hwio_to_oihw,
    pool2d,
)


def _nhwc(node: Node) -> bool:
    return str(node.attr("data_format", "NHWC")).upper() in ("NHWC", "")


def _spatial(node: Node, key: str, default: int = 1) -> tuple[int, int]:
    v = [int(a) for a in node.attr(key, [default] * 4)]
    if len(v) != 4:
        raise node.fail(f"{key} must have 4 entries, got {v}")
    return (v[1], v[2]) if _nhwc(node) else (v[2], v[3])


def _x(node: Node) -> str:
    """Input 0 as NCHW (an NCHW-format TF op already has it so)."""
    return node.nchw(0) if _nhwc(node) else node.tf(0)


def _set(node: Node, ir: str) -> None:
    node.set_out(ir, nchw=_nhwc(node))


def _explicit(node: Node) -> list[int] | None:
    if str(node.attr("padding", "")).upper() != "EXPLICIT":
        return None
    ep = [int(v) for v in node.attr("explicit_paddings", [])]
    if len(ep) != 8:
        raise node.fail(f"explicit_paddings must have 8 entries, got {ep}")
    rows = [(ep[2 * i], ep[2 * i + 1]) for i in range(4)]
    sp = (rows[1], rows[2]) if _nhwc(node) else (rows[2], rows[3])
    return [sp[0][0], sp[1][0], sp[0][1], sp[1][1]]


def _check_format(node: Node) -> str | None:
    fmt = str(node.attr("data_format", "NHWC")).upper()
    return None if fmt in ("NHWC", "NCHW", "") else f"data_format={fmt}"


def _filter(node: Node, i: int, convert: object, depthwise: bool = False) -> str:
    """The filter in IR layout: converted here when constant, else by IR ops (Conv1D's ExpandDims of
    the kernel, say) that the import pipeline folds."""
    w = node.const(i)
    if w is not None:
        return node.tr.add_const(f"{node.name}/filter", convert(w))  # type: ignore[operator]
    src = node.tf(i)
    if not depthwise:
        return node.tr.transpose(src, (3, 2, 0, 1), f"{node.name}/filter")
    shape = node.tr.tf_shape(node.x(i))
    if shape is None or not all(isinstance(d, int) for d in shape):
        raise node.fail("a computed depthwise filter needs a static shape")
    h, wd, c, m = (int(d) for d in shape)  # type: ignore[arg-type]
    flat = node.emit("Reshape", [src, node.ints("filter_hwk", [h, wd, c * m])], "/filter_flat")
    t = node.tr.transpose(flat, (2, 0, 1), f"{node.name}/filter_khw")
    return node.emit("Reshape", [t, node.ints("filter_shape", [c * m, 1, h, wd])], "/filter")


@tf_op("Conv2D", check=_check_format)
def conv(node: Node) -> None:
    w = _filter(node, 1, hwio_to_oihw)
    x = _x(node)
    groups = 1
    t = node.tr.type_of(x)
    cin = t.shape[1] if t is not None and t.shape is not None and len(t.shape) == 4 else None
    wt = node.tr.type_of(w)
    win = wt.shape[1] if wt is not None and wt.shape is not None else None
    if isinstance(cin, int) and isinstance(win, int) and cin != win:
        groups = cin // win  # grouped Conv2D: the filter's in-dim is in / groups
    pad = str(node.attr("padding", "VALID"))
    ir = conv2d(node, x, w, None, _spatial(node, "strides"), _spatial(node, "dilations"), pad, groups, _explicit(node))
    _set(node, ir)


@tf_op("DepthwiseConv2dNative", check=_check_format)
def depthwise(node: Node) -> None:
    w = _filter(node, 1, depthwise_to_oihw, depthwise=True)
    c = int(node.tr.tf_shape(node.x(1))[2])  # type: ignore[index, arg-type]
    pad = str(node.attr("padding", "VALID"))
    ir = conv2d(
        node, _x(node), w, None, _spatial(node, "strides"), _spatial(node, "dilations"), pad, c, _explicit(node)
    )
    _set(node, ir)


@tf_op("Conv2DBackpropInput", check=_check_format)
def conv_transpose(node: Node) -> None:
    # Inputs: output size (N, H, W, C), filter (H, W, out_channels, in_channels), the input to upsample.
    sizes = node.require_const(0, "input_sizes").astype(np.int64).tolist()
    w = node.require_const(1, "filter")
    x_val = node.x(2)
    x = node.tr.as_nchw(x_val, node.where) if _nhwc(node) else node.tr.as_tf(x_val)
    oh, ow = (sizes[1], sizes[2]) if _nhwc(node) else (sizes[2], sizes[3])
    kh, kw = int(w.shape[0]), int(w.shape[1])
    wir = node.tr.add_const(f"{node.name}/filter", np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))))
    s = _spatial(node, "strides")
    d = _spatial(node, "dilations")
    t = node.tr.type_of(x)
    if t is None or t.shape is None or not all(isinstance(v, int) for v in t.shape[2:]):
        raise node.fail("the input's spatial size must be static")
    ih, iw = int(t.shape[2]), int(t.shape[3])  # type: ignore[arg-type]
    same = str(node.attr("padding")).upper() == "SAME"
    ir = conv_transpose2d(node, x, wir, None, (ih, iw), (kh, kw), s, d, (oh, ow), same)
    _set(node, ir)


@tf_op("BiasAdd", "BiasAddV1")
def bias_add(node: Node) -> None:
    b = node.const(1)
    v = node.x(0)
    rank = node.tr.tf_rank(v)
    channels_first = str(node.attr("data_format", "NHWC")).upper() == "NCHW"
    if b is not None and rank == 4 and (v.nchw or channels_first):
        x = v.ir if v.nchw else node.tf(0)
        bias = node.tr.add_const(f"{node.name}/bias", b.reshape(-1, 1, 1))
        node.set_out(node.emit("Add", [x, bias]), nchw=v.nchw)
        return
    node.set_out(node.emit("Add", [node.tf(0), node.tf(1)]))


def _check_bn(node: Node) -> str | None:
    if node.attr("is_training", False):
        return "is_training=true"
    return _check_format(node)


@tf_op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", check=_check_bn)
def fused_bn(node: Node) -> None:
    scale, offset, mean, var = (node.tf(i) for i in range(1, 5))
    _set(node, batch_norm(node, _x(node), scale, offset, mean, var, float(node.attr("epsilon", 1e-4))))


@tf_op("MatMul")
def matmul(node: Node) -> None:
    a, b = node.tf(0), node.tf(1)
    if node.attr("transpose_a", False):
        a = node.tr.transpose(a, (1, 0), f"{node.name}/a_t")
    if node.attr("transpose_b", False):
        b = node.tr.transpose(b, (1, 0), f"{node.name}/b_t")
    node.set_out(node.emit("MatMul", [a, b]))


# -- activations: layout-free, the output keeps the input's layout ------------------------------
_ACT = {
    "Relu": "relu",
    "Relu6": "relu6",
    "Elu": "elu",
    "Selu": "selu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softplus": "softplus",
    "Softsign": "softsign",
}
_UNARY = {"Exp": "Exp", "Sqrt": "Sqrt", "Neg": "Neg", "Abs": "Abs", "Log": "Log", "Reciprocal": "Reciprocal"}
_UNARY |= {"Floor": "Floor", "Ceil": "Ceil", "Erf": "Erf", "Sign": "Sign", "Inv": "Reciprocal"}


@tf_op(*_ACT)
def act(node: Node) -> None:
    v = node.x(0)
    node.set_out(activation(node, _ACT[node.op], v.ir, v.nchw), nchw=v.nchw)


@tf_op("LeakyRelu")
def leaky_relu(node: Node) -> None:
    v = node.x(0)
    node.set_out(node.emit("LeakyRelu", [v.ir], alpha=float(node.attr("alpha", 0.2))), nchw=v.nchw)


@tf_op(*_UNARY)
def unary(node: Node) -> None:
    v = node.x(0)
    node.set_out(node.emit(_UNARY[node.op], [v.ir]), nchw=v.nchw)


@tf_op("Rsqrt")
def rsqrt(node: Node) -> None:
    v = node.x(0)
    s = node.emit("Sqrt", [v.ir], "/sqrt")
    node.set_out(node.emit("Reciprocal", [s]), nchw=v.nchw)


@tf_op("Square")
def square(node: Node) -> None:
    v = node.x(0)
    node.set_out(node.emit("Mul", [v.ir, v.ir]), nchw=v.nchw)


@tf_op("Softmax", "LogSoftmax")
def softmax(node: Node) -> None:
    v = node.x(0)  # TF normalises the last axis: C of an NCHW-held tensor is IR axis 1
    axis = 1 if v.nchw else -1
    node.set_out(node.emit("Softmax" if node.op == "Softmax" else "LogSoftmax", [v.ir], axis=axis), nchw=v.nchw)


# -- pooling -------------------------------------------------------------------------------------
@tf_op("MaxPool", "AvgPool", check=_check_format)
def pool(node: Node) -> None:
    kind = "MaxPool" if node.op == "MaxPool" else "AveragePool"
    ir = pool2d(node, kind, _x(node), _spatial(node, "ksize"), _spatial(node, "strides"), str(node.attr("padding")))
    _set(node, ir)


# -- resize --------------------------------------------------------------------------------------
def _check_resize(node: Node) -> str | None:
    if node.attr("align_corners", False) and node.attr("half_pixel_centers", False):
        return "align_corners and half_pixel_centers both set"
    return None


@tf_op("ResizeBilinear", "ResizeNearestNeighbor", check=_check_resize)
def resize(node: Node) -> None:
    x = node.nchw(0)
    size = node.const(1)
    if size is None:
        raise node.fail("the output size (input 1) must be a constant")
    t = node.tr.type_of(x)
    if t is None or t.shape is None or not all(isinstance(v, int) for v in t.shape[:2]):
        raise node.fail("the batch and channel sizes must be static")
    sizes = node.ints("sizes", [t.shape[0], t.shape[1], int(size[0]), int(size[1])])
    ac, hp = bool(node.attr("align_corners", False)), bool(node.attr("half_pixel_centers", False))
    if node.op == "ResizeBilinear":
        # TF's bilinear: align_corners, half_pixel (same formula as ONNX half_pixel) or asymmetric.
        coord = "align_corners" if ac else "half_pixel" if hp else "asymmetric"
        attrs = {"mode": "linear", "coordinate_transformation_mode": coord}
    else:
        # TF's nearest: align_corners rounds (half away from zero for positive coords), half_pixel
        # floors (x + 0.5) * scale (ONNX tf_half_pixel_for_nn), the legacy form floors x * scale.
        if ac:
            attrs = {"mode": "nearest", "coordinate_transformation_mode": "align_corners"}
            attrs["nearest_mode"] = "round_prefer_ceil"
        else:
            coord = "tf_half_pixel_for_nn" if hp else "asymmetric"
            attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": "floor"}
    node.set_out(node.emit("Resize", [x, "", "", sizes], **attrs), nchw=True)
