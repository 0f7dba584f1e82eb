"""IR emitters of Torch ``nn`` layers, shared by the BigDL and Torch7 readers (BigDL's layers are Torch's).

Each function adds the nodes of one layer to a :class:`~convertmodel.ir.builder.TypedBuilder`
and returns the output value. NHWC layers are wrapped in transposes to the IR's NCHW.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convertmodel.ir.builder import TypedBuilder

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


def to_nchw(b: TypedBuilder, name: str, x: str, fmt: str) -> str:
    if fmt != "NHWC":
        return x
    (y,) = b.add_node("Transpose", [x], 1, name=f"{name}/to_nchw", perm=TO_NCHW)
    return y


def from_nchw(b: TypedBuilder, name: str, y: str, fmt: str) -> str:
    if fmt != "NHWC":
        return y
    (z,) = b.add_node("Transpose", [y], 1, name=f"{name}/to_nhwc", perm=TO_NHWC)
    return z


def node(b: TypedBuilder, name: str, op: str, inputs: Sequence[str], domain: str = "", **attrs: Any) -> str:
    (y,) = b.add_node(op, inputs, 1, name=name, domain=domain, **attrs)
    return y


def conv(
    b: TypedBuilder,
    name: str,
    x: str,
    w: np.ndarray,
    bias: np.ndarray | None,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int] | None,
    dilations: tuple[int, int] = (1, 1),
    group: int = 1,
    fmt: str = "NCHW",
) -> str:
    """Conv with ``w`` (M, C/g, kh, kw); ``pads`` (pad_h, pad_w) symmetric, None = TF SAME."""
    xi = to_nchw(b, name, x, fmt)
    ins = [xi, b.add_const(f"{name}/weight", w.astype(np.float32, copy=False))]
    if bias is not None:
        ins.append(b.add_const(f"{name}/bias", bias.astype(np.float32, copy=False).reshape(-1)))
    attrs: dict[str, Any] = {
        "kernel_shape": list(kernel),
        "strides": list(strides),
        "dilations": list(dilations),
        "group": group,
    }
    if pads is None:
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = [pads[0], pads[1], pads[0], pads[1]]
    return from_nchw(b, name, node(b, name, "Conv", ins, **attrs), fmt)


def pool(
    b: TypedBuilder,
    name: str,
    x: str,
    kind: str,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int] | None,
    ceil: bool,
    count_include_pad: bool = True,
    fmt: str = "NCHW",
) -> str:
    xi = to_nchw(b, name, x, fmt)
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(strides), "ceil_mode": int(ceil)}
    if pads is None:
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = [pads[0], pads[1], pads[0], pads[1]]
    if kind == "max":
        y = node(b, name, "MaxPool", [xi], **attrs)
    else:
        y = node(b, name, "AveragePool", [xi], count_include_pad=int(count_include_pad), **attrs)
    return from_nchw(b, name, y, fmt)


def global_pool(b: TypedBuilder, name: str, x: str, kind: str, fmt: str = "NCHW") -> str:
    xi = to_nchw(b, name, x, fmt)
    y = node(b, name, "GlobalMaxPool" if kind == "max" else "GlobalAveragePool", [xi])
    return from_nchw(b, name, y, fmt)


def batchnorm(
    b: TypedBuilder,
    name: str,
    x: str,
    mean: np.ndarray,
    var: np.ndarray,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
    fmt: str = "NCHW",
) -> str:
    c = mean.size
    xi = to_nchw(b, name, x, fmt) if b.rank(x) == 4 else x
    ins = [
        xi,
        b.add_const(f"{name}/scale", np.ones(c, np.float32) if scale is None else scale.reshape(c)),
        b.add_const(f"{name}/bias", np.zeros(c, np.float32) if bias is None else bias.reshape(c)),
        b.add_const(f"{name}/mean", mean.astype(np.float32).reshape(c)),
        b.add_const(f"{name}/var", var.astype(np.float32).reshape(c)),
    ]
    y = node(b, name, "BatchNormalization", ins, epsilon=float(eps))
    return from_nchw(b, name, y, fmt) if b.rank(x) == 4 else y


def linear(b: TypedBuilder, name: str, x: str, w: np.ndarray, bias: np.ndarray | None) -> str:
    """Linear: ``w`` (out, in); a 2-D input becomes Gemm(transB=1)."""
    ins = [x, b.add_const(f"{name}/weight", w.astype(np.float32, copy=False))]
    if bias is not None:
        ins.append(b.add_const(f"{name}/bias", bias.astype(np.float32, copy=False).reshape(-1)))
    if b.rank(x) == 2:
        return node(b, name, "Gemm", ins, transB=1)
    wt = b.add_const(f"{name}/weight_t", np.ascontiguousarray(w.T.astype(np.float32)))
    y = node(b, f"{name}/matmul" if bias is not None else name, "MatMul", [x, wt])
    return node(b, name, "Add", [y, ins[2]]) if bias is not None else y


def threshold(b: TypedBuilder, name: str, x: str, th: float, v: float) -> str:
    """Torch's Threshold: ``x if x > th else v``."""
    if th == 0.0 and v == 0.0:
        return node(b, name, "Relu", [x])
    cond = node(b, f"{name}/gt", "Greater", [x, b.add_const(f"{name}/th", np.float32(th))])
    return node(b, name, "Where", [cond, x, b.add_const(f"{name}/v", np.float32(v))])


def clip(b: TypedBuilder, name: str, x: str, lo: float, hi: float) -> str:
    return node(
        b, name, "Clip", [x, b.add_const(f"{name}/min", np.float32(lo)), b.add_const(f"{name}/max", np.float32(hi))]
    )


def softmax(b: TypedBuilder, name: str, x: str, log: bool = False) -> str:
    """Torch's SoftMax dim rule: 1-D and 3-D inputs over dim 0, 2-D and 4-D over dim 1."""
    r = b.rank(x)
    axis = 0 if r in (1, 3) else 1 if r in (2, 4) else -1
    return node(b, name, "LogSoftmax" if log else "Softmax", [x], axis=axis)


def reshape(b: TypedBuilder, name: str, x: str, shape: Sequence[int]) -> str:
    return node(b, name, "Reshape", [x, b.add_const(f"{name}/shape", np.asarray(list(shape), np.int64))])


def lrn(b: TypedBuilder, name: str, x: str, size: int, alpha: float, beta: float, k: float, fmt: str = "NCHW") -> str:
    """BigDL's SpatialCrossMapLRN with BigDL's own arithmetic (running channel sum; the power in float64
    in 0.3, float32 in 2.x): its last bits decide the truncated int8 codes of a quantized conv after it."""
    xi = to_nchw(b, name, x, fmt)
    arith = "bigdl" if str(b.metadata.get("bigdl_version", "")).startswith("0.") else "bigdl-f32"
    y = node(b, name, "LRN", [xi], size=int(size), alpha=float(alpha), beta=float(beta), bias=float(k), arith=arith)
    return from_nchw(b, name, y, fmt)


def pad2d(b: TypedBuilder, name: str, x: str, left: int, right: int, top: int, bottom: int) -> str:
    r = b.rank(x)
    begin = [0] * (r - 2) + [top, left]
    end = [0] * (r - 2) + [bottom, right]
    return node(b, name, "Pad", [x, b.add_const(f"{name}/pads", np.asarray(begin + end, np.int64))], mode="constant")


def normalize_lp(b: TypedBuilder, name: str, x: str, p: float, eps: float) -> str:
    """BigDL/Torch Normalize: ``x / (sum_c |x|^p + eps)^(1/p)`` over dim 1."""
    if p == 2.0:
        sq = node(b, f"{name}/sq", "Mul", [x, x])
    else:
        ax = node(b, f"{name}/abs", "Abs", [x])
        sq = node(b, f"{name}/pow", "Pow", [ax, b.add_const(f"{name}/p", np.float32(p))])
    s = node(b, f"{name}/sum", "ReduceSum", [sq, b.add_const(f"{name}/axes", np.asarray([1], np.int64))], keepdims=1)
    s = node(b, f"{name}/eps", "Add", [s, b.add_const(f"{name}/eps_c", np.float32(eps))])
    n = (
        node(b, f"{name}/norm", "Sqrt", [s])
        if p == 2.0
        else node(b, f"{name}/norm", "Pow", [s, b.add_const(f"{name}/inv_p", np.float32(1.0 / p))])
    )
    return node(b, name, "Div", [x, n])


def broadcast_param(b: TypedBuilder, x: str, w: np.ndarray) -> np.ndarray:
    """A CMul/CAdd parameter shaped to broadcast against ``x`` as BigDL's expandAs does."""
    xs = b.shape(x)
    if w.ndim > len(xs) and all(d == 1 for d in w.shape[: w.ndim - len(xs)]):
        w = w.reshape(w.shape[w.ndim - len(xs) :])
    dims = [d for d in xs if isinstance(d, int)]
    if len(dims) == len(xs) and w.size == int(np.prod(dims)) and w.shape != tuple(dims):
        return w.reshape(dims)
    return w
