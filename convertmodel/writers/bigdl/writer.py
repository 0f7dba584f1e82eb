"""BigDL writer: ``write_bigdl(graph, path)`` writes a BigDL 2.x protobuf model (``Module.loadModule``).

The model is one StaticGraph: an ``Input`` module per graph input, one or more modules per node (a node whose
pads BigDL cannot express gets a SpatialZeroPadding first, a QConv with a fused ReLU a ReLU after), edges in the
node's input order. A MatMul whose only consumer adds a constant per-output bias becomes one Linear with that
bias; Where(Greater(x, th), x, v) one Threshold. fp32 ops become BigDL's fp32 modules (modules.py, modules_shape.py); QConv / QGemm become BigDL's
quantized modules (quantized.py). Every node is checked first: ops BigDL cannot express raise one
UnsupportedOpError listing them all, and nothing is written. The file appears whole or not at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.errors import UnsupportedOpError
from convertmodel.fsutil import atomic_open
from convertmodel.ir.graph import Graph, Node
from convertmodel.writers.bigdl.build import Ids, Mod, Tensors, module_proto, static_graph
from convertmodel.writers.bigdl.modules import EMITTERS, Ctx, EmitKey, NotExpressible

__all__ = ["write_bigdl"]


@dataclass
class Plan:
    """Node groups written as one module: MatMul + Add (Linear with bias), Greater + Where (Threshold),
    x / Sqrt(ReduceSum(x * x, axis 1) + eps) (Normalize)."""

    bias: dict[str, np.ndarray] = field(default_factory=dict)  # MatMul -> its Add's bias
    threshold: dict[str, float] = field(default_factory=dict)  # Where -> its Greater's th
    normalize: dict[str, float] = field(default_factory=dict)  # Div -> eps of its L2 norm
    folded: set[str] = field(default_factory=set)  # nodes written by another node's module
    alias: dict[str, str] = field(default_factory=dict)  # folded Add's output -> the MatMul's output


def _l2_norm_of(
    graph: Graph, prod: dict[str, Node], consumers: dict[str, list[Node]], sqrt: Node, x: str
) -> tuple[float, list[str]] | None:
    """``Sqrt(Add(ReduceSum(Mul(x, x), axes=[1], keepdims=1), eps))`` feeding ``Div(x, .)``: (eps, the nodes)."""

    def only(v: str, op: str) -> Node | None:
        n = prod.get(v)
        ok = n is not None and n.op_type == op and not n.domain and len(consumers.get(v, [])) == 1
        return n if ok else None

    add = only(sqrt.inputs[0], "Add")
    if add is None:
        return None
    eps_v = [v for v in add.inputs if v in graph.constants]
    rs = [only(v, "ReduceSum") for v in add.inputs if v not in graph.constants]
    if len(eps_v) != 1 or len(rs) != 1 or rs[0] is None or np.size(graph.constants[eps_v[0]]) != 1:
        return None
    red = rs[0]
    axes = graph.constants.get(red.inputs[1]) if len(red.inputs) > 1 else None
    sq = only(red.inputs[0], "Mul")
    if axes is None or [int(a) for a in np.reshape(axes, -1)] != [1] or red.attrs.get("keepdims", 1) in (0, "0"):
        return None
    if sq is None or list(sq.inputs) != [x, x]:
        return None
    return float(np.reshape(graph.constants[eps_v[0]], -1)[0]), [sq.name, red.name, add.name, sqrt.name]


def _plan(graph: Graph) -> Plan:
    consumers, prod = graph.consumers(), graph.producers()
    outputs = {o.name for o in graph.outputs}
    plan = Plan()
    for n in graph.nodes:
        if n.domain or n.outputs[0] in outputs:
            continue
        users = consumers.get(n.outputs[0], [])
        if len(users) != 1:
            continue
        user = users[0]
        if n.op_type == "MatMul" and user.op_type == "Add":
            w = graph.constants.get(n.inputs[1]) if len(n.inputs) > 1 else None
            other = [v for v in user.inputs if v != n.outputs[0]]
            c = graph.constants.get(other[0]) if len(other) == 1 else None
            if w is not None and np.ndim(w) == 2 and c is not None and np.size(c) == np.shape(w)[1] and np.ndim(c) <= 2:
                plan.bias[n.name] = np.asarray(c, np.float32).reshape(-1)
                plan.folded.add(user.name)
                plan.alias[user.outputs[0]] = n.outputs[0]
        elif n.op_type == "Sqrt" and user.op_type == "Div" and user.inputs[1] == n.outputs[0]:
            eps = _l2_norm_of(graph, prod, consumers, n, user.inputs[0])
            if eps is not None:
                plan.normalize[user.name] = eps[0]
                plan.folded.update(eps[1])
        elif n.op_type == "Greater" and user.op_type == "Where" and len(user.inputs) == 3:
            th = graph.constants.get(n.inputs[1])
            if th is not None and np.size(th) == 1 and user.inputs[0] == n.outputs[0] and user.inputs[1] == n.inputs[0]:
                plan.threshold[user.name] = float(np.asarray(th).reshape(-1)[0])
                plan.folded.add(n.name)
    return plan


def _emit_all(graph: Graph, plan: Plan) -> list[tuple[Node, list[Mod], list[str]]]:
    """Each node's modules and the IR values its first module reads; one UnsupportedOpError for the rest."""
    out: list[tuple[Node, list[Mod], list[str]]] = []
    bad: dict[str, list[str]] = {}
    produced = {vi.name for vi in graph.inputs}  # values a BigDL module outputs (its one output)
    for node in graph.nodes:
        key = f"{node.domain + '.' if node.domain else ''}{node.op_type}"
        if node.name in plan.folded:
            continue
        emitter = EMITTERS.get(EmitKey(node.domain, node.op_type))
        if emitter is None:
            bad.setdefault(key, []).append(node.name)
            continue
        ctx = Ctx.make(graph, node)
        ctx.fused_bias = plan.bias.get(node.name)
        ctx.fused_threshold = plan.threshold.get(node.name)
        ctx.fused_l2_eps = plan.normalize.get(node.name)
        try:
            mods = emitter(ctx)
        except NotExpressible as e:
            bad.setdefault(f"{key} ({e})", []).append(node.name)
            continue
        data = ctx.data if ctx.data is not None else [v for v in node.inputs if v and v not in graph.constants]
        missing = [v for v in data if plan.alias.get(v, v) not in produced]
        if not data or missing:
            why = "only constant inputs" if not data else f"input {missing[0]!r} is no module's first output"
            bad.setdefault(f"{key} ({why})", []).append(node.name)
            continue
        produced.add(node.outputs[0])
        out.append((node, mods, data))
    for vi in graph.inputs:
        if vi.type.dtype != "float32":
            bad.setdefault(f"input of dtype {vi.type.dtype} (BigDL models take float32)", []).append(vi.name)
    if bad:
        supported = sorted(f"{k.domain + '.' if k.domain else ''}{k.op_type}" for k in EMITTERS)
        raise UnsupportedOpError(graph.name, bad, supported, what="op (not expressible as BigDL modules)")
    return out


class _Names:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, base: str) -> str:
        base = re.sub(r"\s+", "_", base) or "module"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name


def build_model(graph: Graph) -> Any:
    """The top BigDLModule (a StaticGraph) for ``graph``."""
    plan = _plan(graph)
    emitted = _emit_all(graph, plan)
    ts = Tensors(Ids())
    names = _Names()
    source: dict[str, str] = {}  # IR value -> name of the module producing it
    modules: list[tuple[Any, list[Any]]] = []
    inputs = []
    for vi in graph.inputs:
        name = names.make(vi.name)
        modules.append(module_proto(Mod("Input"), name, [], ts))
        source[vi.name] = name
        inputs.append(name)
    alias = plan.alias
    for node, mods, data in emitted:
        pre = [source[alias.get(v, v)] for v in data]
        for i in range(1, len(pre)):  # BigDL keys a module's edges by predecessor: repeat one through Identity
            if pre[i] in pre[:i]:
                ident = names.make(f"{node.name}/input{i}")
                modules.append(module_proto(Mod("Identity"), ident, [pre[i]], ts))
                pre[i] = ident
        main = next((i for i, m in enumerate(mods) if m.cls != "SpatialZeroPadding"), 0)
        for i, mod in enumerate(mods):
            name = names.make(node.name if i == main else f"{node.name}/{mod.cls.rsplit('.', 1)[-1]}")
            modules.append(module_proto(mod, name, pre, ts))
            pre = [name]
        source[node.outputs[0]] = pre[0]
    for add_out, mm_out in alias.items():
        source[add_out] = source[mm_out]
    outputs = []
    for o in graph.outputs:
        if o.name not in source:
            raise UnsupportedOpError(graph.name, {"graph output that no node computes": [o.name]})
        outputs.append(source[o.name])
    return static_graph(graph.name or "model", modules, inputs, outputs, ts)


def write_bigdl(graph: Graph, path: str) -> None:
    """Write ``graph`` to ``path`` as a BigDL 2.x protobuf model (single file, weights included)."""
    path = os.fspath(path)
    data = build_model(graph).SerializeToString()
    with atomic_open(path, "wb") as f:
        f.write(data)
