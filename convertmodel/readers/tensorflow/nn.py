"""Building blocks shared by the TensorFlow op handlers and the Keras layer handlers (NCHW IR)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convertmodel.readers.tensorflow.context import Node


def same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: out = ceil(size / s); the odd unit goes after."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _pad_attrs(
    node: Node, x: str, kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int], padding: str
) -> dict[str, object]:
    """``pads`` (or ``auto_pad`` when the spatial size is not static) for TF's VALID/SAME."""
    p = padding.upper()
    if p == "VALID":
        return {"pads": (0, 0, 0, 0)}
    if p != "SAME":
        raise node.fail(f"padding {padding!r} is not supported; supported: SAME, VALID, EXPLICIT")
    t = node.tr.type_of(x)
    spatial = t.shape[2:] if t is not None and t.shape is not None else ()
    if len(spatial) != 2 or not all(isinstance(v, int) for v in spatial):
        return {"auto_pad": "SAME_UPPER"}  # ONNX SAME_UPPER: the odd unit at the end, as in TensorFlow
    (t0, b0), (t1, b1) = (same_pads(int(spatial[i]), kernel[i], strides[i], dil[i]) for i in range(2))  # type: ignore[arg-type]
    return {"pads": (t0, t1, b0, b1)}


def conv2d(
    node: Node,
    x: str,
    w_oihw: str,
    bias: str | None,
    strides: Sequence[int],
    dilations: Sequence[int],
    padding: str,
    group: int = 1,
    explicit: Sequence[int] | None = None,
    suffix: str = "",
) -> str:
    """Conv on an NCHW value with OIHW weights; TF's padding modes."""
    w = node.tr.const_value(w_oihw)
    kernel = tuple(int(v) for v in w.shape[2:]) if w is not None else None
    t = node.tr.type_of(w_oihw)
    if kernel is None and t is not None and t.shape is not None:
        kernel = tuple(int(v) for v in t.shape[2:])  # type: ignore[arg-type]
    if kernel is None:
        raise node.fail("the filter's shape is not known")
    pads = (
        {"pads": tuple(explicit)} if explicit is not None else _pad_attrs(node, x, kernel, strides, dilations, padding)
    )
    ins = [x, w_oihw] + ([bias] if bias else [])
    return node.emit(
        "Conv",
        ins,
        suffix,
        kernel_shape=kernel,
        strides=tuple(strides),
        dilations=tuple(dilations),
        group=group,
        **pads,  # type: ignore[arg-type]
    )


def conv_transpose2d(
    node: Node,
    x: str,
    w_iohw: str,
    bias: str | None,
    size: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out: Sequence[int],
    same: bool,
    suffix: str = "",
) -> str:
    """ConvTranspose producing spatial size ``out`` as TF's conv2d_transpose does.

    TF computes the gradient of the forward conv (SAME or VALID) whose input has size ``out``:
    that conv's leading pads are ours; the full transposed output s*(size-1)+eff is cropped to
    ``out`` at the end, or extended with zero rows (ONNX output_padding) when it is shorter.
    """
    pads_b, pads_e, outpad = [], [], []
    for n, k, st, dl, o in zip(size, kernel, strides, dilations, out, strict=True):
        before = same_pads(o, k, st, dl)[0] if same else 0
        end = st * (n - 1) + (k - 1) * dl + 1 - before - o
        pads_b.append(before)
        pads_e.append(max(end, 0))
        outpad.append(max(-end, 0))
    ins = [x, w_iohw] + ([bias] if bias else [])
    return node.emit(
        "ConvTranspose",
        ins,
        suffix,
        kernel_shape=tuple(kernel),
        strides=tuple(strides),
        dilations=tuple(dilations),
        pads=tuple(pads_b + pads_e),
        output_padding=tuple(outpad),
    )


def pool2d(
    node: Node, kind: str, x: str, ksize: Sequence[int], strides: Sequence[int], padding: str, suffix: str = ""
) -> str:
    """MaxPool/AveragePool on NCHW. TF's AvgPool with SAME averages over the valid cells only
    (ONNX count_include_pad=0, the default); MaxPool pads with -inf as ONNX does."""
    attrs = _pad_attrs(node, x, ksize, strides, (1, 1), padding)
    return node.emit(kind, [x], suffix, kernel_shape=tuple(ksize), strides=tuple(strides), **attrs)  # type: ignore[arg-type]


def batch_norm(node: Node, x: str, scale: str, offset: str, mean: str, var: str, eps: float, suffix: str = "") -> str:
    return node.emit("BatchNormalization", [x, scale, offset, mean, var], suffix, epsilon=float(eps))


def hwio_to_oihw(w: np.ndarray) -> np.ndarray:
    """TF/Keras Conv2D filter (H, W, in, out) -> IR (out, in, H, W)."""
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def depthwise_to_oihw(w: np.ndarray) -> np.ndarray:
    """Depthwise filter (H, W, C, mult) -> grouped conv (C * mult, 1, H, W); output c*mult+m as in TF."""
    h, wd, c, m = w.shape
    return np.ascontiguousarray(np.transpose(w.reshape(h, wd, c * m), (2, 0, 1)).reshape(c * m, 1, h, wd))


def activation(node: Node, kind: str, x: str, nchw: bool, suffix: str = "", alpha: float | None = None) -> str:
    """A Keras/TF activation by name on value ``x`` (``nchw`` tells where the channel axis is)."""
    k = kind.lower()
    if k in ("linear", "identity"):
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "selu": "Selu"}
    simple |= {"softplus": "Softplus", "softsign": "Softsign", "exponential": "Exp", "hard_swish": "HardSwish"}
    if k in simple:
        return node.emit(simple[k], [x], suffix)
    if k == "relu6":
        return node.emit("Clip", [x, node.floats("relu6_min", 0.0), node.floats("relu6_max", 6.0)], suffix)
    if k in ("leaky_relu", "leakyrelu"):
        return node.emit("LeakyRelu", [x], suffix, alpha=0.2 if alpha is None else float(alpha))
    if k == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6, i.e. slope 1/6, offset 0.5
        return node.emit("HardSigmoid", [x], suffix, alpha=1.0 / 6.0, beta=0.5)
    if k in ("swish", "silu"):
        s = node.emit("Sigmoid", [x], suffix + "/sigmoid")
        return node.emit("Mul", [x, s], suffix)
    if k == "gelu":  # exact form (Keras' default approximate=False)
        d = node.emit("Div", [x, node.floats("sqrt2", np.sqrt(2.0))], suffix + "/div")
        e = node.emit("Erf", [d], suffix + "/erf")
        p = node.emit("Add", [e, node.floats("one", 1.0)], suffix + "/add")
        h = node.emit("Mul", [x, p], suffix + "/mul")
        return node.emit("Mul", [h, node.floats("half", 0.5)], suffix)
    if k == "softmax":
        rank = node.tr.ir_rank(x)
        return node.emit("Softmax", [x], suffix, axis=1 if nchw and rank == 4 else -1)
    raise node.fail(f"activation {kind!r} is not supported")


KERAS_ACTIVATIONS = (
    "linear relu relu6 sigmoid tanh elu selu softplus softsign exponential hard_swish leaky_relu "
    "hard_sigmoid swish silu gelu softmax"
).split()
