"""Keras shape, merge and preprocessing layers (Flatten ... Normalization); the rest is in layers.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.readers.tensorflow.context import Node, Val, keras_layer, tf_axis_to_ir
from convertmodel.readers.tensorflow.handlers_array import binary_inputs


def weight(node: Node, i: int, what: str) -> np.ndarray:
    ws = node.extra["weights"]
    if i >= len(ws):
        raise node.fail(f"the file holds {len(ws)} weight arrays for this layer, {what} (#{i}) is missing")
    return np.asarray(ws[i], dtype=np.float32)


@keras_layer("Flatten")
def flatten(node: Node) -> None:
    x = node.tf(0)  # Keras flattens in NHWC order; the import pipeline folds the Transpose into Dense
    t = node.tr.type_of(x)
    inner = t.shape[1:] if t is not None and t.shape is not None else None
    if inner is not None and all(isinstance(d, int) for d in inner):
        node.set_out(node.emit("Reshape", [x, node.ints("shape", [-1, int(np.prod(inner))])]))  # type: ignore[arg-type]
    else:
        node.set_out(node.emit("Flatten", [x], axis=1))


@keras_layer("Reshape")
def reshape(node: Node) -> None:
    target = [int(d) for d in node.attr("target_shape")]
    node.set_out(node.emit("Reshape", [node.tf(0), node.ints("shape", [0, *target])]))


@keras_layer("Permute")
def permute(node: Node) -> None:
    perm = [0] + [int(d) for d in node.attr("dims")]
    node.set_out(node.tr.transpose(node.tf(0), perm, node.name))


@keras_layer("Concatenate")
def concatenate(node: Node) -> None:
    axis = int(node.attr("axis", -1))
    vals = [node.x(i) for i in range(len(node.inputs))]
    if any(v.nchw for v in vals) and all(node.tr.tf_rank(v) == 4 for v in vals):
        ins = [node.tr.as_nchw(v, node.where) for v in vals]
        node.set_out(node.emit("Concat", ins, axis=tf_axis_to_ir(axis)), nchw=True)
    else:
        node.set_out(node.emit("Concat", [node.tr.as_tf(v) for v in vals], axis=axis))


_MERGE = {"Add": "Sum", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min", "Subtract": "Sub", "Average": "Sum"}


@keras_layer(*_MERGE)
def merge(node: Node) -> None:
    ins, nchw = binary_inputs(node, [node.x(i) for i in range(len(node.inputs))])
    op, avg = _MERGE[node.op], node.op == "Average"
    if op == "Sum" and len(ins) > 2:
        out = node.emit("Sum", ins, "/sum" if avg else "")
    else:
        out = ins[0]
        for k, other in enumerate(ins[1:]):
            last = k == len(ins) - 2 and not avg
            out = node.emit("Add" if op == "Sum" else op, [out, other], "" if last else f"/{k}")
    if avg:
        out = node.emit("Mul", [out, node.floats("inv_n", 1.0 / len(ins))])
    node.set_out(out, nchw=nchw)


@keras_layer("__alias__")
def alias(node: Node) -> None:
    node.alias(node.x(0))  # a nested model's input or output: the same tensor under its inner name


@keras_layer(
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization"
)
def identity(node: Node) -> None:
    node.alias(node.x(0))  # inference: no-ops


def _const_like(node: Node, name: str, value: Any) -> Val:
    return Val(node.tr.add_const(f"{node.name}/{name}", np.asarray(value, dtype=np.float32)))


@keras_layer("Rescaling")
def rescaling(node: Node) -> None:
    ins, nchw = binary_inputs(node, [node.x(0), _const_like(node, "scale", node.attr("scale", 1.0))])
    y = node.emit("Mul", ins, "/scale")
    ins, nchw = binary_inputs(node, [Val(y, nchw), _const_like(node, "offset", node.attr("offset", 0.0))])
    node.set_out(node.emit("Add", ins), nchw=nchw)


def _check_norm(node: Node) -> str | None:
    return "invert=true" if node.attr("invert", False) else None


@keras_layer("Normalization", check=_check_norm)
def normalization(node: Node) -> None:
    # Keras: (x - mean) / max(sqrt(variance), epsilon), epsilon = 1e-7 (keras.backend.epsilon()).
    mean, var = node.attr("mean"), node.attr("variance")
    if mean is None or var is None:
        mean, var = weight(node, 0, "mean"), weight(node, 1, "variance")
    mean, var = np.asarray(mean, np.float32), np.asarray(var, np.float32)
    rank = node.tr.tf_rank(node.x(0)) or mean.ndim
    if mean.ndim == 1 and rank > 1:  # per-channel over the last axis
        mean, var = mean.reshape((1,) * (rank - 1) + (-1,)), var.reshape((1,) * (rank - 1) + (-1,))
    denom = np.maximum(np.sqrt(var), np.float32(1e-7))
    ins, nchw = binary_inputs(node, [node.x(0), _const_like(node, "mean", mean)])
    d = node.emit("Sub", ins, "/sub")
    ins, nchw = binary_inputs(node, [Val(d, nchw), _const_like(node, "denom", denom)])
    node.set_out(node.emit("Div", ins), nchw=nchw)
