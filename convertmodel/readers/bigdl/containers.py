"""BigDL containers (Sequential, Concat, ConcatTable, ParallelTable, Graph) and table/shape modules.

Activities are value names (tensors) or lists (BigDL Tables). A Graph (StaticGraph/DynamicGraph) lists
its nodes as sub-modules with ``preModules`` edges by name; ``<name>_edges`` attributes give the
table index an edge selects (-1: the whole output); ``inputNames``/``outputNames`` fix the order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.readers.bigdl.context import Act, ModuleContext, module_handler, module_name
from convertmodel.readers.torchnn import emit


@module_handler("Sequential")
def sequential(ctx: ModuleContext) -> Act:
    x = ctx.x
    for sub in ctx.module.subModules:
        x = ctx.run(sub, x)
    return x


@module_handler("ConcatTable")
def concat_table(ctx: ModuleContext) -> Act:
    return [ctx.run(sub, ctx.x) for sub in ctx.module.subModules]


@module_handler("ParallelTable")
def parallel_table(ctx: ModuleContext) -> Act:
    xs = ctx.x
    subs = list(ctx.module.subModules)
    if isinstance(xs, str) or len(xs) < len(subs):
        raise ctx.fail(f"has {len(subs)} branches but its input table has {1 if isinstance(xs, str) else len(xs)}")
    return [ctx.run(sub, xs[i]) for i, sub in enumerate(subs)]


def _axis(ctx: ModuleContext, dimension: int, n_input_dims: int, rank: int) -> int:
    """A 1-based BigDL dimension -> 0-based axis; ``nInputDims`` shifts it past a batch dimension."""
    if dimension < 0:
        return rank + dimension
    axis = dimension - 1
    if n_input_dims > 0 and rank == n_input_dims + 1:
        axis += 1
    if not 0 <= axis < rank:
        raise ctx.fail(f"dimension {dimension} is outside an input of rank {rank}")
    return axis


@module_handler("Concat")
def concat(ctx: ModuleContext) -> Act:
    outs = [ctx.run(sub, ctx.x) for sub in ctx.module.subModules]
    vals = [o for o in outs if isinstance(o, str)]
    if len(vals) != len(outs) or not vals:
        raise ctx.fail("every branch of a Concat must output one tensor")
    axis = _axis(ctx, ctx.i("dimension"), 0, ctx.b.rank(vals[0]))
    return ctx.node("Concat", vals, axis=axis)


@module_handler("JoinTable")
def join_table(ctx: ModuleContext) -> Act:
    xs = ctx.table_in()
    axis = _axis(ctx, ctx.i("dimension"), ctx.i("nInputDims", 0), ctx.b.rank(xs[0]))
    return ctx.node("Concat", xs, axis=axis)


def _chain(ctx: ModuleContext, op: str) -> str:
    xs = ctx.table_in()
    if not xs:
        raise ctx.fail("empty input table")
    if len(xs) == 1:
        return xs[0]
    if op in ("Sum", "Max", "Min"):
        return ctx.node(op, xs)
    y = xs[0]
    for i, v in enumerate(xs[1:]):
        y = ctx.node(op, [y, v], suffix="" if i == len(xs) - 2 else f"{op.lower()}{i}")
    return y


@module_handler("CAddTable")
def cadd_table(ctx: ModuleContext) -> Act:
    return _chain(ctx, "Sum")


@module_handler("CMulTable")
def cmul_table(ctx: ModuleContext) -> Act:
    return _chain(ctx, "Mul")


@module_handler("CSubTable")
def csub_table(ctx: ModuleContext) -> Act:
    return _chain(ctx, "Sub")


@module_handler("CDivTable")
def cdiv_table(ctx: ModuleContext) -> Act:
    return _chain(ctx, "Div")


@module_handler("CMaxTable")
def cmax_table(ctx: ModuleContext) -> Act:
    return _chain(ctx, "Max")


@module_handler("CMinTable")
def cmin_table(ctx: ModuleContext) -> Act:
    return _chain(ctx, "Min")


@module_handler("SelectTable")
def select_table(ctx: ModuleContext) -> Act:
    xs = ctx.x
    if isinstance(xs, str):
        raise ctx.fail("expects a table input")
    i = ctx.i("index")
    k = i - 1 if i > 0 else len(xs) + i
    if not 0 <= k < len(xs):
        raise ctx.fail(f"index {i} is outside a table of {len(xs)}")
    return xs[k]


@module_handler("View")
def view(ctx: ModuleContext) -> Act:
    sizes = [int(v) for v in ctx.attr("sizes")]
    n_in = ctx.i("numInputDims", 0)
    x = ctx.tensor_in()
    if -1 in sizes:
        return emit.reshape(ctx.b, ctx.name, x, sizes)
    if n_in > 0 and ctx.b.rank(x) <= n_in:
        return emit.reshape(ctx.b, ctx.name, x, sizes)
    # BigDL's View keeps a leading batch dimension: (nElement / prod(sizes), *sizes).
    return emit.reshape(ctx.b, ctx.name, x, [-1, *sizes])


@module_handler("Reshape")
def reshape(ctx: ModuleContext) -> Act:
    size = [int(v) for v in ctx.attr("size")]
    mode = ctx.attr("batchMode", 0)
    x = ctx.tensor_in()
    n = int(np.prod(size))
    if mode is False or mode == 1:
        return emit.reshape(ctx.b, ctx.name, x, size)
    if mode is True or mode == 2:
        return emit.reshape(ctx.b, ctx.name, x, [-1, *size])
    shp = ctx.shape(x)
    if all(isinstance(d, int) for d in shp):
        total = int(np.prod([int(d) for d in shp]))  # type: ignore[arg-type]
        if total == n and shp and shp[0] != 1:
            return emit.reshape(ctx.b, ctx.name, x, size)
    return emit.reshape(ctx.b, ctx.name, x, [-1, *size])


@module_handler("Squeeze")
def squeeze(ctx: ModuleContext) -> Act:
    x = ctx.tensor_in()
    dims = ctx.attr("dims", None)
    shp = ctx.shape(x)
    if dims is None:
        if not all(isinstance(d, int) for d in shp):
            raise ctx.fail(f"Squeeze without dims needs a static input shape, got {list(shp)}")
        axes = [i for i, d in enumerate(shp) if d == 1]
    else:
        shift = 1 if bool(ctx.attr("batchMode", False)) else 0
        axes = [int(d) - 1 + shift if int(d) > 0 else len(shp) + int(d) for d in dims]
        axes = [a for a in axes if shp[a] == 1 or not isinstance(shp[a], int)]
    if not axes:
        return x
    return ctx.node("Squeeze", [x, ctx.const("axes", np.asarray(sorted(axes), np.int64))])


@module_handler("Unsqueeze")
def unsqueeze(ctx: ModuleContext) -> Act:
    x = ctx.tensor_in()
    pos = ctx.attr("pos", None)
    if pos is None:
        pos = [ctx.i("pos")]
    pos = [int(p) for p in (pos if isinstance(pos, list) else [pos])]
    n_in = ctx.i("numInputDims", -(2**31))
    shift = 1 if n_in > 0 and ctx.b.rank(x) > n_in else 0
    axes = [p - 1 + shift for p in pos]
    return ctx.node("Unsqueeze", [x, ctx.const("axes", np.asarray(axes, np.int64))])


@module_handler("Transpose")
def transpose(ctx: ModuleContext) -> Act:
    x = ctx.tensor_in()
    n = ctx.i("size", 0)
    pairs: list[list[int]] = []
    if n:
        for i in range(n):
            pairs.append([int(v) for v in ctx.attr(f"permutation_{i}")])
    r = ctx.b.rank(x)
    perm = list(range(r))
    for pr in pairs:
        if len(pr) != 2 or not all(1 <= v <= r for v in pr):
            raise ctx.fail(f"permutation {pr} does not fit an input of rank {r}")
        a, c = pr[0] - 1, pr[1] - 1
        perm[a], perm[c] = perm[c], perm[a]
    return ctx.node("Transpose", [x], perm=perm)


def _graph_edges(ctx: ModuleContext, name: str) -> dict[str, int]:
    key = f"{name}_edges"
    if key not in ctx.module.attr:
        return {}
    v = ctx.attr(key)
    if isinstance(v, dict):
        inner = v.get(name, next(iter(v.values()), {}))
        return {str(k): int(e) for k, e in inner.items()} if isinstance(inner, dict) else {}
    return {}


@module_handler("StaticGraph", "DynamicGraph", "Graph")
def graph(ctx: ModuleContext) -> Act:
    subs = list(ctx.module.subModules)
    by_name: dict[str, Any] = {}
    for s in subs:
        nm = module_name(s)
        if not nm:
            raise ctx.fail("a graph node has no name")
        if nm in by_name:
            raise ctx.fail(f"two graph nodes are named {nm!r}")
        by_name[nm] = s
    inputs = [str(v) for v in ctx.attr("inputNames", [])]
    outputs = [str(v) for v in ctx.attr("outputNames", [])]
    if not inputs:
        inputs = [n for n, s in by_name.items() if not any(p in by_name for p in s.preModules)]
    if not outputs:
        used = {p for s in subs for p in s.preModules}
        outputs = [n for n in by_name if n not in used]
    for n in inputs + outputs:
        if n not in by_name:
            raise ctx.fail(f"graph input/output {n!r} is not one of its nodes")
    xs: list[Act] = [ctx.x] if len(inputs) == 1 else (list(ctx.x) if isinstance(ctx.x, list) else [ctx.x])
    if len(xs) != len(inputs):
        raise ctx.fail(f"graph has {len(inputs)} inputs but got {len(xs)}")
    order = _toposort(ctx, by_name)
    done: dict[str, Act] = {}
    for name in order:
        m = by_name[name]
        pre = [p for p in m.preModules if p in by_name]
        if name in inputs and not pre:
            act: Act = xs[inputs.index(name)]
        elif not pre:
            continue  # a node no graph input reaches (BigDL would not run it either)
        else:
            act = _collect(ctx, name, pre, done)
        done[name] = ctx.run(m, act)
    missing = [n for n in outputs if n not in done]
    if missing:
        raise ctx.fail(f"graph outputs {missing} are not reachable from its inputs")
    outs = [done[n] for n in outputs]
    return outs[0] if len(outs) == 1 else outs


def graph_order(by_name: dict[str, Any]) -> list[str]:
    """Kahn's order of graph nodes by their ``preModules`` edges (FIFO); nodes on a cycle are left out."""
    indeg = {n: 0 for n in by_name}
    nexts: dict[str, list[str]] = {n: [] for n in by_name}
    for n, m in by_name.items():
        for p in dict.fromkeys(m.preModules):
            if p in by_name:
                indeg[n] += 1
                nexts[p].append(n)
    ready = [n for n in by_name if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for c in nexts[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return order


def _toposort(ctx: ModuleContext, by_name: dict[str, Any]) -> list[str]:
    """:func:`graph_order`; a cycle is an error."""
    order = graph_order(by_name)
    if len(order) != len(by_name):
        placed = set(order)
        stuck = [n for n in by_name if n not in placed]
        raise ctx.fail(f"graph edges form a cycle through {stuck[:3]}")
    return order


def _collect(ctx: ModuleContext, name: str, pre: list[str], done: dict[str, Act]) -> Act:
    edges = _graph_edges(ctx, name)
    vals: list[Act] = []
    for p in pre:
        if p not in done:
            raise ctx.fail(f"graph node {name!r} needs {p!r}, which no graph input reaches")
        a = done[p]
        idx = edges.get(p, -1)
        if idx != -1:
            if isinstance(a, str) or not 1 <= idx <= len(a):
                raise ctx.fail(f"edge {p!r} -> {name!r} selects output {idx} of a module without that many")
            a = a[idx - 1]
        vals.append(a)
    return vals[0] if len(vals) == 1 else vals
