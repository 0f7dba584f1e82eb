"""The quantize pass: fp32 Conv / Gemm / MatMul -> int8 QConv / QGemm (BigDL 0.3 local windows).

Every Conv (2-D, any group/dilation/padding) and fully connected layer (Gemm, or MatMul with a
constant 2-D right operand) with constant weights becomes a QConv or QGemm carrying its int8
weights, one scale per output channel and the fp32 row sums (docs/quantization.md has the
contract). Everything else stays fp32 and gets the reason recorded. BatchNormalization and
ChannelAffine are folded into the preceding layer first (passes/fold_bn.py); a Relu that is
the only consumer of a quantized op's output is fused into it as ``activation="Relu"``.
Quantization settings and per-layer decisions go to ``graph.metadata["quantization"]`` (JSON).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.errors import ConvertModelError, InvalidModelError
from convertmodel.ir.graph import Graph, Node, prune
from convertmodel.ir.ops._util import conv_pads
from convertmodel.ir.schema import CM_DOMAIN, resolve_attrs
from convertmodel.passes.fold_bn import fold_bn
from convertmodel.passes.manager import PassRecord, run_passes
from convertmodel.quant.scheme import (
    BIGDL_INPUT_LEVELS,
    BIGDL_WEIGHT_LEVELS,
    DEFAULT_INPUT_LEVELS,
    WEIGHT_LEVELS,
    QuantizedWeight,
    bigdl_compat_requantize,
    quantize_weight_rows,
)

#: Called after each layer is quantized: (layers done, layers to do, node name).
ProgressFn = Callable[[int, int, str], None]

#: Op types with an int8 rule.
QUANTIZABLE = ("Conv", "Gemm", "MatMul")
COMPAT_MODES = ("bigdl",)
SCHEME = "bigdl-local-window"


def parse_patterns(exclude: str | Iterable[str] | None) -> list[str]:
    """Exclude patterns from repeated and/or comma-separated values, blanks dropped."""
    if exclude is None:
        return []
    items = [exclude] if isinstance(exclude, str) else list(exclude)
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    return out


def _excluded_by(node: Node, patterns: list[str]) -> str | None:
    for p in patterns:
        if fnmatch.fnmatchcase(node.name, p) or fnmatch.fnmatchcase(node.op_type.lower(), p.lower()):
            return p
    return None


@dataclass
class _Plan:
    """A layer to quantize: its fp32 weight as (M, K) rows, bias (M,) and the QOp to emit."""

    node: Node
    op_type: str
    w_rows: np.ndarray
    bias: np.ndarray | None
    attrs: dict[str, object] = field(default_factory=dict)


def _bias(g: Graph, node: Node, idx: int, m: int, beta: float = 1.0) -> tuple[np.ndarray | None, str | None]:
    """Constant bias broadcast to (M,), or a reason it cannot be."""
    if len(node.inputs) <= idx or not node.inputs[idx]:
        return None, None
    c = g.constants.get(node.inputs[idx])
    if c is None:
        return None, "bias is not a constant"
    if c.size not in (1, m) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
        return None, f"bias of shape {list(c.shape)} is not one value per output channel"
    b = np.broadcast_to(c.astype(np.float32).reshape(-1), (m,)).astype(np.float32)
    return (b * np.float32(beta) if beta != 1.0 else b), None


def _plan_conv(g: Graph, n: Node) -> _Plan | str:
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
    bias, why = _bias(g, n, 2, m)
    if why:
        return why
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": list(pads), "dilations": dil, "group": a["group"]}
    return _Plan(n, "QConv", w.reshape(m, -1), bias, attrs)


def _plan_gemm(g: Graph, n: Node) -> _Plan | str:
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
    bias, why = _bias(g, n, 2, rows.shape[0], float(a.get("beta", 1.0)))
    if why:
        return why
    return _Plan(n, "QGemm", rows, bias)


def _plan_matmul(g: Graph, n: Node) -> _Plan | str:
    w = g.constants.get(n.inputs[1])
    if w is None:
        return "weight (right operand) is not a constant"
    if w.ndim != 2:
        return f"only a 2-D constant weight is quantized, got shape {list(w.shape)}"
    xt = g.type_of(n.inputs[0])
    if xt is None or xt.rank is None or xt.rank < 2:
        return "input must have a known rank >= 2"
    return _Plan(n, "QGemm", w.T, None)


_PLANNERS = {"Conv": _plan_conv, "Gemm": _plan_gemm, "MatMul": _plan_matmul}


def _fresh(used: set[str], base: str) -> str:
    name, k = base, 0
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def quantize_graph(
    graph: Graph,
    *,
    exclude: str | Iterable[str] = (),
    compat: str | None = None,
    input_levels: int | None = None,
    progress: ProgressFn | None = None,
    records: list[PassRecord] | None = None,
) -> Graph:
    """An int8 copy of ``graph`` in BigDL 0.3's local-window scheme (the input graph is untouched).

    ``exclude``: layer names or op types (fnmatch globs; repeatable and/or comma-separated) to
    keep fp32. ``compat="bigdl"``: BigDL's own numerics (127 input levels, weights re-quantized
    to 64 levels as BigDL did at load time). ``input_levels``: L of the input windows (default
    255, or 127 with ``compat="bigdl"``). ``progress(done, total, name)`` is called per layer.
    """
    if compat not in (None, "", *COMPAT_MODES):
        raise ConvertModelError(f"quantize: unknown compat mode {compat!r}; supported: {', '.join(COMPAT_MODES)}")
    compat = compat or None
    levels = (
        int(input_levels)
        if input_levels is not None
        else (BIGDL_INPUT_LEVELS if compat == "bigdl" else DEFAULT_INPUT_LEVELS)
    )
    if not 1 <= levels <= 255:
        raise ConvertModelError(f"quantize: input levels must be in 1..255 (uint8 codes), got {levels}")
    patterns = parse_patterns(exclude)
    g = run_passes(graph, [("fold_bn", fold_bn)], records)
    n_folded = sum(
        graph.op_counts().get(k, 0) - g.op_counts().get(k, 0) for k in ("BatchNormalization", "ChannelAffine")
    )
    before = g.op_counts()

    plans: dict[str, _Plan] = {}
    kept: dict[str, dict[str, str]] = {}
    fp32_ops: dict[str, int] = {}
    for n in g.nodes:
        if n.domain == "" and n.op_type in QUANTIZABLE:
            pat = _excluded_by(n, patterns)
            res: _Plan | str = f"excluded by pattern {pat!r}" if pat else _PLANNERS[n.op_type](g, n)
            if isinstance(res, str):
                kept[n.name] = {"op": n.op_type, "reason": res}
            else:
                plans[n.name] = res
    consumers = g.consumers()
    outputs = {o.name for o in g.outputs}
    fused: dict[str, Node] = {}  # Relu node name -> quantized node it is fused into
    for p in plans.values():
        out = p.node.outputs[0]
        cons = consumers.get(out, [])
        if out not in outputs and len(cons) == 1 and cons[0].op_type == "Relu" and cons[0].domain == "":
            fused[cons[0].name] = p.node

    consts = dict(g.constants)
    used = set(consts) | {v for n in g.nodes for v in n.outputs} | {i.name for i in g.inputs}
    new_nodes: list[Node] = []
    relu_of = {q.name: r for r, q in fused.items()}
    relu_nodes = {n.name: n for n in g.nodes if n.name in fused}
    total, done = len(plans), 0
    counts: dict[str, int] = {}
    for n in g.nodes:
        if n.name in fused:
            continue
        plan = plans.get(n.name)
        if plan is None:
            if n.name not in kept:
                key = n.op_type if n.domain == "" else f"{n.domain}.{n.op_type}"
                fp32_ops[key] = fp32_ops.get(key, 0) + 1
            new_nodes.append(n)
            continue
        qw: QuantizedWeight = quantize_weight_rows(plan.w_rows, WEIGHT_LEVELS)
        if compat == "bigdl":
            qw = bigdl_compat_requantize(qw, BIGDL_WEIGHT_LEVELS)
        wq = qw.wq.reshape(consts[n.inputs[1]].shape) if plan.op_type == "QConv" else qw.wq
        names = [_fresh(used, f"{n.name}_{s}") for s in ("wq", "w_scale", "w_sum")]
        consts[names[0]], consts[names[1]], consts[names[2]] = wq, qw.w_scale, qw.w_sum
        ins = [n.inputs[0], *names]
        if plan.bias is not None:
            b_in = n.inputs[2]
            src = consts.get(b_in)
            if (
                src is not None
                and src.dtype == np.float32
                and src.shape == plan.bias.shape
                and np.array_equal(src, plan.bias)
            ):
                ins.append(b_in)  # reuse the existing bias constant unchanged
            else:
                bn = _fresh(used, f"{n.name}_b")
                consts[bn] = plan.bias
                ins.append(bn)
        relu = relu_nodes.get(relu_of.get(n.name, ""))
        attrs: dict[str, Any] = dict(plan.attrs, input_levels=levels, activation="Relu" if relu is not None else "")
        out = relu.outputs[0] if relu is not None else n.outputs[0]
        new_nodes.append(Node(plan.op_type, n.name, tuple(ins), (out,), attrs, CM_DOMAIN))
        counts[plan.op_type] = counts.get(plan.op_type, 0) + 1
        done += 1
        if progress is not None:
            progress(done, total, n.name)

    meta = dict(g.metadata)
    meta["quantization"] = json.dumps(
        {
            "scheme": SCHEME,
            "input_levels": levels,
            "weight_levels": BIGDL_WEIGHT_LEVELS if compat == "bigdl" else WEIGHT_LEVELS,
            "compat": compat,
            "excluded": patterns,
            "counts": {"quantized": counts, "kept_fp32": len(kept), "fused_relu": len(fused), "folded": n_folded},
            "kept": kept,
            "fp32_ops": dict(sorted(fp32_ops.items())),
        },
        sort_keys=True,
    )
    out_g = prune(g.replace(nodes=tuple(new_nodes), constants=consts, metadata=meta, infer=False)).replace()
    if records is not None:
        records.append(PassRecord("quantize", before, out_g.op_counts(), 0.0))
    return out_g
