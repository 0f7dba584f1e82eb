"""int8 rules of the layers with weights: Conv (2-D) -> QConv, Gemm and MatMul (2-D constant weight) -> QGemm."""

from __future__ import annotations

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Graph, Node
from convertmodel.ir.ops._util import conv_pads
from convertmodel.ir.schema import resolve_attrs
from convertmodel.passes.quantize.rules import Plan, constant_bias, quant_rule


@quant_rule("Conv")
def conv(g: Graph, n: Node) -> Plan | str:
    w = g.constants.get(n.inputs[1])
    if w is None:
        return "weight is not a constant"
    if w.ndim != 4:
        return f"only 2-D convolutions are quantized (weight has rank {w.ndim})"
    a = resolve_attrs(n)
    xt = g.type_of(n.inputs[0])
    kernel = list(a["kernel_shape"] or w.shape[2:])
    strides = list(a["strides"] or [1, 1])
    dil = list(a["dilations"] or [1, 1])
    spatial = list(xt.shape[2:]) if xt is not None and xt.shape is not None and len(xt.shape) == 4 else [None, None]
    try:
        pads = conv_pads(dict(a), spatial, kernel, strides, dil)
    except InvalidModelError as e:
        return f"cannot resolve padding: {e}"
    m = w.shape[0]
    bias, why = constant_bias(g, n, 2, m)
    if why:
        return why
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": list(pads), "dilations": dil, "group": a["group"]}
    return Plan(n, "QConv", w.reshape(m, -1), bias, attrs)


@quant_rule("Gemm")
def gemm(g: Graph, n: Node) -> Plan | str:
    a = resolve_attrs(n)
    if a.get("transA", 0):
        return "Gemm with transA=1 is not quantized"
    w = g.constants.get(n.inputs[1])
    if w is None:
        return "weight is not a constant"
    if w.ndim != 2:
        return f"weight must be 2-D, got shape {list(w.shape)}"
    rows = w if a.get("transB", 0) else w.T  # (M, K)
    alpha = float(a.get("alpha", 1.0))
    if alpha != 1.0:
        rows = rows.astype(np.float32) * np.float32(alpha)  # folded: changes fp rounding only
    bias, why = constant_bias(g, n, 2, rows.shape[0], float(a.get("beta", 1.0)))
    if why:
        return why
    return Plan(n, "QGemm", rows, bias)


@quant_rule("MatMul")
def matmul(g: Graph, n: Node) -> Plan | str:
    w = g.constants.get(n.inputs[1])
    if w is None:
        return "weight (right operand) is not a constant"
    if w.ndim != 2:
        return f"only a 2-D constant weight is quantized, got shape {list(w.shape)}"
    xt = g.type_of(n.inputs[0])
    if xt is None or xt.rank is None or xt.rank < 2:
        return "input must have a known rank >= 2"
    return Plan(n, "QGemm", w.T, None)
