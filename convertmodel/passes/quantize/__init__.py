"""The quantize pass: fp32 Conv / Gemm / MatMul -> int8 QConv / QGemm (BigDL 0.3 local windows).

Every Conv (2-D, any group/dilation/padding) and fully connected layer (Gemm, or MatMul with a
constant 2-D right operand) with constant weights becomes a QConv or QGemm carrying its int8
weights, one scale per output channel and the fp32 row sums (docs/quantization.md has the
contract). Everything else stays fp32 and gets the reason recorded. The steps:

1. **fold**: BatchNormalization and ChannelAffine into the preceding layer (passes/fold_bn.py);
2. **plan**: each node with a rule (rules_linear.py, ``@quant_rule``) gets a :class:`Plan` or the
   reason it stays fp32; layers the options keep fp32 are not asked; depthwise convolutions (C/G = 1)
   stay fp32 unless ``QuantizeOptions.quantize_depthwise`` (or compat mode) asks for them;
3. **fuse**: a Relu that is the only consumer of a planned layer's output joins it (``activation``);
4. **rewrite**: planned layers become int8 ops with their quantized weights;
5. **record**: the decisions as a :class:`~convertmodel.quant.options.QuantizationInfo` in
   ``graph.metadata["quantization"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.errors import UsageError
from convertmodel.ir.graph import Graph, Node, prune
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.passes.fold_bn import fold_bn
from convertmodel.passes.manager import PassRecord, run_passes
from convertmodel.passes.quantize import rules_linear  # noqa: F401  (registers the rules)
from convertmodel.passes.quantize.rules import RULES, Plan, quant_rule, rule_for
from convertmodel.quant.ops import is_quantized, quantized_nodes
from convertmodel.quant.options import (
    METADATA_KEY,
    KeptLayer,
    Levels,
    QuantizationInfo,
    QuantizeOptions,
    pattern_matches,
)
from convertmodel.quant.scheme import WEIGHT_LEVELS, bigdl_compat_requantize, quantize_weight_rows

__all__ = [
    "DEPTHWISE_KEPT",
    "RULES",
    "Plan",
    "ProgressFn",
    "QuantizeOptions",
    "is_depthwise",
    "quant_rule",
    "quantize_graph",
]

#: Called after each layer is quantized: (layers done, layers to do, node name).
ProgressFn = Callable[[int, int, str], None]

_FOLDED = ("BatchNormalization", "ChannelAffine")


@dataclass
class _Rewrite:
    """The state of the rewrite step: new nodes and constants, names in use, what was done."""

    consts: dict[str, np.ndarray]
    used: set[str]
    nodes: list[Node] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    fp32_ops: dict[str, int] = field(default_factory=dict)
    layer_levels: dict[str, Levels] = field(default_factory=dict)

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


#: The reason a depthwise convolution stays fp32 by default (docs/quantization.md section 10).
DEPTHWISE_KEPT = "depthwise (C/G = 1): faster in fp32 than as int8 windows (--quantize-depthwise quantizes it)"


def is_depthwise(g: Graph, p: Plan) -> bool:
    """A planned QConv with one input channel per group and more than one group (C/G = 1)."""
    w = g.constants.get(p.node.inputs[1])
    group = p.attrs.get("group", 1)
    return (
        p.op_type == "QConv"
        and w is not None
        and w.ndim == 4
        and w.shape[1] == 1
        and isinstance(group, int)
        and group > 1
    )


def plan(
    g: Graph, opts: QuantizeOptions, original: dict[str, str] | None = None
) -> tuple[dict[str, Plan], dict[str, KeptLayer]]:
    """The layers to quantize and the ones with a rule that stay fp32 (with the reason).

    ``original``: node name -> op type before folding (a pattern may name the type ``inspect`` shows).
    """
    plans: dict[str, Plan] = {}
    kept: dict[str, KeptLayer] = {}
    orig = original or {}
    for n in g.nodes:
        rule = rule_for(n)
        if rule is None:
            continue
        types = (n.op_type, orig[n.name]) if orig.get(n.name, n.op_type) != n.op_type else (n.op_type,)
        why = opts.kept_because(n.name, *types)
        res = why if why is not None else rule(g, n)
        if isinstance(res, Plan) and opts.keeps_depthwise and is_depthwise(g, res):
            res = DEPTHWISE_KEPT
        if isinstance(res, str):
            kept[n.name] = KeptLayer(n.op_type, res)
        else:
            plans[n.name] = res
    return plans, kept


def fuse(g: Graph, plans: dict[str, Plan]) -> dict[str, Node]:
    """Relu node name -> the planned node it joins (its only consumer, not a graph output)."""
    consumers = g.consumers()
    outputs = {o.name for o in g.outputs}
    fused: dict[str, Node] = {}
    for p in plans.values():
        out = p.node.outputs[0]
        cons = consumers.get(out, [])
        if out not in outputs and len(cons) == 1 and cons[0].op_type == "Relu" and cons[0].domain == "":
            fused[cons[0].name] = p.node
    return fused


def _bias_input(st: _Rewrite, n: Node, p: Plan) -> list[str]:
    if p.bias is None:
        return []
    src = st.consts.get(n.inputs[2])
    if src is not None and src.dtype == np.float32 and src.shape == p.bias.shape and np.array_equal(src, p.bias):
        return [n.inputs[2]]  # reuse the existing bias constant unchanged
    name = st.fresh(f"{n.name}_b")
    st.consts[name] = p.bias
    return [name]


def _quantized_node(st: _Rewrite, n: Node, p: Plan, relu: Node | None, lv: Levels) -> Node:
    qw = quantize_weight_rows(p.w_rows, WEIGHT_LEVELS)
    if lv.weight != WEIGHT_LEVELS:
        qw = bigdl_compat_requantize(qw, lv.weight)
    wq = qw.wq.reshape(st.consts[n.inputs[1]].shape) if p.op_type == "QConv" else qw.wq
    names = [st.fresh(f"{n.name}_{s}") for s in ("wq", "w_scale", "w_sum")]
    st.consts[names[0]], st.consts[names[1]], st.consts[names[2]] = wq, qw.w_scale, qw.w_sum
    ins = (n.inputs[0], *names, *_bias_input(st, n, p))
    attrs: dict[str, Any] = dict(p.attrs, input_levels=lv.input, activation="Relu" if relu is not None else "")
    out = relu.outputs[0] if relu is not None else n.outputs[0]
    return Node(p.op_type, n.name, ins, (out,), attrs, CM_DOMAIN)


def rewrite(
    g: Graph,
    plans: dict[str, Plan],
    kept: dict[str, KeptLayer],
    fused: dict[str, Node],
    opts: QuantizeOptions,
    progress: ProgressFn | None = None,
) -> _Rewrite:
    """Planned layers -> int8 nodes (fused Relus dropped); other nodes unchanged, counted by type."""
    st = _Rewrite(
        dict(g.constants), set(g.constants) | {v for n in g.nodes for v in n.outputs} | {i.name for i in g.inputs}
    )
    relu_of = {q.name: r for r, q in fused.items()}
    relu_nodes = {n.name: n for n in g.nodes if n.name in fused}
    done = 0
    for n in g.nodes:
        if n.name in fused:
            continue
        p = plans.get(n.name)
        if p is None:
            if n.name not in kept:
                key = n.op_type if n.domain == "" else f"{n.domain}.{n.op_type}"
                st.fp32_ops[key] = st.fp32_ops.get(key, 0) + 1
            st.nodes.append(n)
            continue
        lv = opts.levels_for(n.name)
        if lv != opts.levels:
            st.layer_levels[n.name] = lv
        st.nodes.append(_quantized_node(st, n, p, relu_nodes.get(relu_of.get(n.name, "")), lv))
        st.counts[p.op_type] = st.counts.get(p.op_type, 0) + 1
        done += 1
        if progress is not None:
            progress(done, len(plans), n.name)
    return st


def record(
    opts: QuantizeOptions, st: _Rewrite, kept: dict[str, KeptLayer], fused: int, folded: int
) -> QuantizationInfo:
    """The decisions of this run, as stored in the .q8 metadata."""
    lv = opts.levels
    return QuantizationInfo(
        input_levels=lv.input,
        weight_levels=lv.weight,
        compat=opts.compat,
        excluded=opts.exclude,
        quantized=st.counts,
        kept=kept,
        fused_relu=fused,
        folded=folded,
        fp32_ops=st.fp32_ops,
        fp32_layers=opts.fp32_layers,
        layer_levels=st.layer_levels,
    )


def check_quantizable(graph: Graph, opts: QuantizeOptions, source: str | None = None) -> None:
    """UsageError for a graph that is int8 already, or an exclude pattern that names nothing in it."""
    where = source or graph.name
    if is_quantized(graph):
        n = len(quantized_nodes(graph))
        raise UsageError(
            f"{where}: the model is int8 already ({n} QConv/QGemm layer(s)); quantizing it again would change "
            "nothing: quantize its fp32 source instead"
        )
    for p in opts.exclude:
        if not any(pattern_matches(p, n.name, n.op_type) for n in graph.nodes):
            layers = [n.name for n in graph.nodes if rule_for(n) is not None]
            shown = ", ".join(layers[:12]) + (f", ... ({len(layers)} in all)" if len(layers) > 12 else "")
            types = ", ".join(sorted({n.op_type for n in graph.nodes}))
            raise UsageError(
                f"{where}: --exclude pattern {p!r} matches no layer name or op type; layers with an int8 rule: "
                f"{shown or '(none)'}; op types: {types} (names as `convertmodel inspect --graph` lists them)"
            )


def quantize_graph(
    graph: Graph,
    options: QuantizeOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    records: list[PassRecord] | None = None,
) -> Graph:
    """An int8 copy of ``graph`` in BigDL 0.3's local-window scheme (the input graph is untouched).

    ``options`` (:class:`QuantizeOptions`) say which layers stay fp32 and with which levels the
    others are quantized; ``progress(done, total, name)`` is called per quantized layer.
    """
    opts = options or QuantizeOptions()
    check_quantizable(graph, opts)
    g = run_passes(graph, [("fold_bn", fold_bn)], records)
    folded = sum(graph.op_counts().get(k, 0) - g.op_counts().get(k, 0) for k in _FOLDED)
    before = g.op_counts()
    plans, kept = plan(g, opts, {n.name: n.op_type for n in graph.nodes})
    fused = fuse(g, plans)
    st = rewrite(g, plans, kept, fused, opts, progress)
    meta = dict(g.metadata)
    meta[METADATA_KEY] = record(opts, st, kept, len(fused), folded).to_metadata()
    out = prune(g.replace(nodes=tuple(st.nodes), constants=st.consts, metadata=meta, infer=False)).replace()
    if records is not None:
        records.append(PassRecord("quantize", before, out.op_counts(), 0.0))
    return out
