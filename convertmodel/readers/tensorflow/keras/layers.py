"""Handlers of Keras layers (Keras 2 and 3 configs), registered like the TensorFlow op handlers."""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.errors import UnsupportedOpError
from convertmodel.readers.tensorflow.context import HANDLERS, Node, TFOpKey, Translator, keras_layer, supported
from convertmodel.readers.tensorflow.keras.layers_shape import weight as _w  # also registers those layers
from convertmodel.readers.tensorflow.nn import (
    KERAS_ACTIVATIONS,
    activation,
    batch_norm,
    conv2d,
    conv_transpose2d,
    depthwise_to_oihw,
    hwio_to_oihw,
    pool2d,
)

_LAMBDA = "Lambda (Python code in the model file; convertmodel never runs it)"


def _act_name(a: Any) -> str:
    if isinstance(a, dict):  # Keras 3 may serialise a function as {"class_name": "function", "config": "relu"}
        a = a.get("config") if isinstance(a.get("config"), str) else a.get("class_name", "")
    return str(a or "linear")


def _check(node: Node) -> str | None:
    cfg = node.attrs
    if cfg.get("data_format") not in (None, "channels_last", "channels_first"):
        return f"data_format={cfg.get('data_format')}"
    if str(cfg.get("padding", "valid")).lower() not in ("valid", "same") and not isinstance(cfg.get("padding"), list):
        return f"padding={cfg.get('padding')}"
    if _act_name(cfg.get("activation", "linear")) not in KERAS_ACTIVATIONS:
        return f"activation={_act_name(cfg.get('activation'))}"
    return None


def scan(calls: list[Any], path: str, weights: dict[str, list[np.ndarray]]) -> None:
    """One UnsupportedOpError listing every layer class (with counts) that cannot be converted."""
    bad: dict[str, list[str]] = {}
    tr = Translator(path, "scan", {})
    for c in calls:
        if c.cls == "Lambda":
            bad.setdefault(_LAMBDA, []).append(c.layer)
            continue
        h = HANDLERS.get(TFOpKey("keras", c.cls))
        if h is None:
            key = c.cls if c.cls not in ("Sequential", "Functional", "Model") else f"{c.cls} (nested model)"
            bad.setdefault(key, []).append(c.layer)
            continue
        reason = _check(Node(tr, c.cls, c.layer, [], c.config))
        if reason is None and h.check is not None:
            reason = h.check(Node(tr, c.cls, c.layer, [], c.config))
        if reason:
            bad.setdefault(f"{c.cls} ({reason})", []).append(c.layer)
    if bad:
        raise UnsupportedOpError(path, bad, supported("keras"), what="Keras layer")


def convert(tr: Translator, c: Any, weights: list[np.ndarray], shapes: dict[str, Any]) -> None:
    h = HANDLERS.get(TFOpKey("keras", c.cls))
    assert h is not None  # scan() ran first
    node = Node(tr, c.cls, c.out, list(c.inputs), dict(c.config), extra={"weights": weights, "shapes": shapes})
    h.fn(node)


# -- helpers -------------------------------------------------------------------------------------
def _last(node: Node) -> bool:
    return node.attr("data_format") in (None, "channels_last")


def _x(node: Node) -> str:
    return node.nchw(0) if _last(node) else node.tf(0)


def _pair(v: Any, default: int = 1) -> tuple[int, int]:
    if v is None:
        return (default, default)
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def _finish(node: Node, ir: str, nchw: bool) -> None:
    """Apply the layer's ``activation`` and set its output."""
    out = activation(node, _act_name(node.attr("activation", "linear")), ir, nchw, "/act")
    node.set_out(out, nchw=nchw)


def _bias(node: Node, i: int) -> str | None:
    if not node.attr("use_bias", True):
        return None
    return node.tr.add_const(f"{node.name}/bias", _w(node, i, "bias"))


# -- layers --------------------------------------------------------------------------------------
@keras_layer("InputLayer")
def input_layer(node: Node) -> None:
    shape = node.attr("batch_shape") or node.attr("batch_input_shape")
    if shape is None and node.attr("shape") is not None:  # Keras 3 Input(shape=...) without batch
        shape = [None, *node.attr("shape")]
    override = node.extra["shapes"].get(node.name)
    if override is not None:
        shape = override
    dtype = node.attr("dtype", "float32")
    dtype = dtype if isinstance(dtype, str) else "float32"
    node.set_out(
        node.tr.add_input(node.name, dtype, None if shape is None else [None if d is None else int(d) for d in shape])
    )


@keras_layer("Conv2D", "Convolution2D")
def conv(node: Node) -> None:
    w = node.tr.add_const(f"{node.name}/kernel", hwio_to_oihw(_w(node, 0, "kernel")))
    groups = int(node.attr("groups", 1) or 1)
    pad = str(node.attr("padding", "valid"))
    x = _x(node)
    ir = conv2d(node, x, w, _bias(node, 1), _pair(node.attr("strides")), _pair(node.attr("dilation_rate")), pad, groups)
    _finish(node, ir, _last(node))


@keras_layer("DepthwiseConv2D")
def depthwise(node: Node) -> None:
    k = _w(node, 0, "depthwise_kernel")
    w = node.tr.add_const(f"{node.name}/kernel", depthwise_to_oihw(k))
    pad = str(node.attr("padding", "valid"))
    s, d = _pair(node.attr("strides")), _pair(node.attr("dilation_rate"))
    _finish(node, conv2d(node, _x(node), w, _bias(node, 1), s, d, pad, int(k.shape[2])), _last(node))


@keras_layer("SeparableConv2D", "SeparableConvolution2D")
def separable(node: Node) -> None:
    dk, pk = _w(node, 0, "depthwise_kernel"), _w(node, 1, "pointwise_kernel")
    dw = node.tr.add_const(f"{node.name}/depthwise", depthwise_to_oihw(dk))
    pw = node.tr.add_const(f"{node.name}/pointwise", hwio_to_oihw(pk))
    s, d = _pair(node.attr("strides")), _pair(node.attr("dilation_rate"))
    mid = conv2d(
        node, _x(node), dw, None, s, d, str(node.attr("padding", "valid")), int(dk.shape[2]), suffix="/depthwise"
    )
    _finish(node, conv2d(node, mid, pw, _bias(node, 2), (1, 1), (1, 1), "valid"), _last(node))


def _check_deconv(node: Node) -> str | None:
    return "output_padding" if node.attr("output_padding") is not None else None


@keras_layer("Conv2DTranspose", "Convolution2DTranspose", check=_check_deconv)
def conv_transpose(node: Node) -> None:
    k = _w(node, 0, "kernel")  # (H, W, out, in)
    w = node.tr.add_const(f"{node.name}/kernel", np.ascontiguousarray(np.transpose(k, (3, 2, 0, 1))))
    x = _x(node)
    t = node.tr.type_of(x)
    if t is None or t.shape is None or not all(isinstance(v, int) for v in t.shape[2:]):
        raise node.fail("the input's spatial size must be static")
    size = (int(t.shape[2]), int(t.shape[3]))  # type: ignore[arg-type]
    kern, s, d = (int(k.shape[0]), int(k.shape[1])), _pair(node.attr("strides")), _pair(node.attr("dilation_rate"))
    same = str(node.attr("padding", "valid")).lower() == "same"
    # Keras' output size: in * s (same) or (in - 1) * s + dilated kernel (valid).
    out = [n * st if same else (n - 1) * st + (kk - 1) * dl + 1 for n, kk, st, dl in zip(size, kern, s, d, strict=True)]
    ir = conv_transpose2d(node, x, w, _bias(node, 1), size, kern, s, d, out, same)
    _finish(node, ir, _last(node))


@keras_layer("Dense")
def dense(node: Node) -> None:
    w = node.tr.add_const(f"{node.name}/kernel", _w(node, 0, "kernel"))
    y = node.emit("MatMul", [node.tf(0), w], "/matmul" if node.attr("use_bias", True) else "")
    b = _bias(node, 1)
    _finish(node, node.emit("Add", [y, b]) if b else y, False)


def _check_bn(node: Node) -> str | None:
    axis = node.attr("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    return None if isinstance(axis, int) else f"axis={axis}"


@keras_layer("BatchNormalization", check=_check_bn)
def bn(node: Node) -> None:
    i = 0
    v = node.x(0)
    c = None
    ws = node.extra["weights"]
    if ws:
        c = int(np.asarray(ws[-1]).size)
    if c is None:
        raise node.fail("the layer has no weights")
    params = {}
    for name, flag, default in (("gamma", "scale", 1.0), ("beta", "center", 0.0)):
        if node.attr(flag, True):
            params[name] = _w(node, i, name).reshape(-1)
            i += 1
        else:
            params[name] = np.full(c, default, np.float32)
    params["mean"], params["var"] = (
        _w(node, i, "moving_mean").reshape(-1),
        _w(node, i + 1, "moving_variance").reshape(-1),
    )
    g, b, m, var = (node.tr.add_const(f"{node.name}/{k}", params[k]) for k in ("gamma", "beta", "mean", "var"))
    axis = node.attr("axis", -1)
    axis = int(axis[0] if isinstance(axis, list) else axis)
    rank = node.tr.tf_rank(v)
    eps = float(node.attr("epsilon", 1e-3))
    if rank == 4 and axis in (-1, 3):
        node.set_out(batch_norm(node, node.nchw(0), g, b, m, var, eps), nchw=True)
    elif (rank == 4 and axis == 1) or (rank == 2 and axis in (-1, 1)):
        node.set_out(batch_norm(node, node.tf(0), g, b, m, var, eps))
    else:
        raise node.fail(f"BatchNormalization over axis {axis} of a rank-{rank} input is not supported")


@keras_layer("Activation")
def act(node: Node) -> None:
    v = node.x(0)
    node.set_out(activation(node, _act_name(node.attr("activation")), v.ir, v.nchw), nchw=v.nchw)


def _check_relu(node: Node) -> str | None:
    mx, th = node.attr("max_value"), float(node.attr("threshold", 0.0) or 0.0)
    slope = float(node.attr("negative_slope", 0.0) or 0.0)
    if th != 0.0 or (mx is not None and slope != 0.0):
        return "threshold or max_value with negative_slope"
    return None


@keras_layer("ReLU", check=_check_relu)
def relu(node: Node) -> None:
    v = node.x(0)
    mx, slope = node.attr("max_value"), float(node.attr("negative_slope", 0.0) or 0.0)
    if mx is not None:
        lo, hi = node.floats("min", 0.0), node.floats("max", float(mx))
        node.set_out(node.emit("Clip", [v.ir, lo, hi]), nchw=v.nchw)
    elif slope:
        node.set_out(node.emit("LeakyRelu", [v.ir], alpha=slope), nchw=v.nchw)
    else:
        node.set_out(node.emit("Relu", [v.ir]), nchw=v.nchw)


@keras_layer("LeakyReLU")
def leaky(node: Node) -> None:
    v = node.x(0)
    alpha = node.attr("negative_slope", node.attr("alpha", 0.3))
    node.set_out(node.emit("LeakyRelu", [v.ir], alpha=float(alpha)), nchw=v.nchw)


@keras_layer("ELU")
def elu(node: Node) -> None:
    v = node.x(0)
    node.set_out(node.emit("Elu", [v.ir], alpha=float(node.attr("alpha", 1.0))), nchw=v.nchw)


@keras_layer("Softmax")
def softmax(node: Node) -> None:
    v = node.x(0)
    axis = node.attr("axis", -1)
    axis = int(axis[0] if isinstance(axis, list) else axis)
    rank = node.tr.tf_rank(v)
    if axis == -1 or (rank is not None and axis == rank - 1):
        node.set_out(node.emit("Softmax", [v.ir], axis=1 if v.nchw else -1), nchw=v.nchw)
    else:
        node.set_out(node.emit("Softmax", [node.tf(0)], axis=axis))


@keras_layer("MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D")
def pool(node: Node) -> None:
    kind = "MaxPool" if node.op.startswith("Max") else "AveragePool"
    k = _pair(node.attr("pool_size"), 2)
    s = _pair(node.attr("strides")) if node.attr("strides") is not None else k
    node.set_out(pool2d(node, kind, _x(node), k, s, str(node.attr("padding", "valid"))), nchw=_last(node))


@keras_layer("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D")
def global_pool(node: Node) -> None:
    kind = "GlobalMaxPool" if "Max" in node.op else "GlobalAveragePool"
    keep = bool(node.attr("keepdims", False))
    g = node.emit(kind, [_x(node)], "" if keep else "/pool")
    if keep:
        node.set_out(g, nchw=_last(node))
    else:
        node.set_out(node.emit("Flatten", [g], axis=1))


def _two_pairs(v: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(v, int):
        return (v, v), (v, v)
    a, b = v
    return (_pair(a) if not isinstance(a, int) else (a, a)), (_pair(b) if not isinstance(b, int) else (b, b))


@keras_layer("ZeroPadding2D")
def zero_pad(node: Node) -> None:
    (t, b), (left, r) = _two_pairs(node.attr("padding", 1))
    pads = node.ints("pads", [0, 0, t, left, 0, 0, b, r])
    node.set_out(node.emit("Pad", [_x(node), pads], mode="constant"), nchw=_last(node))


@keras_layer("Cropping2D")
def crop(node: Node) -> None:
    (t, b), (left, r) = _two_pairs(node.attr("cropping", 0))
    big = np.iinfo(np.int64).max
    ends = [-b if b else big, -r if r else big]
    ins = [_x(node), node.ints("starts", [t, left]), node.ints("ends", ends), node.ints("axes", [2, 3])]
    node.set_out(node.emit("Slice", ins), nchw=_last(node))


@keras_layer("UpSampling2D")
def upsample(node: Node) -> None:
    x = _x(node)
    t = node.tr.type_of(x)
    sh, sw = _pair(node.attr("size"), 2)
    if t is None or t.shape is None or not all(isinstance(d, int) for d in t.shape):
        scales = node.floats("scales", [1.0, 1.0, float(sh), float(sw)])
        ins = [x, "", scales]
    else:
        n, c, h, w = (int(d) for d in t.shape)  # type: ignore[arg-type]
        ins = [x, "", "", node.ints("sizes", [n, c, h * sh, w * sw])]
    if str(node.attr("interpolation", "nearest")) == "bilinear":  # tf.image.resize: half-pixel centres
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    else:
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    node.set_out(node.emit("Resize", ins, **attrs), nchw=_last(node))
