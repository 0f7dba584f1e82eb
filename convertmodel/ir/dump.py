"""A readable text dump of a graph, one line per node (used by ``inspect --graph`` and tests)."""

from __future__ import annotations

import numpy as np

from convertmodel.ir.graph import Graph


def _fmt_attr(v: object) -> str:
    if isinstance(v, np.ndarray):
        return f"tensor<{v.dtype}{list(v.shape)}>"
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt_attr(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return repr(v) if isinstance(v, str) else str(v)


def dump(g: Graph, max_nodes: int | None = None) -> str:
    lines = [f"graph {g.name} ({len(g.nodes)} nodes, {len(g.constants)} constants, {g.param_count():,} params)"]
    for vi in g.inputs:
        lines.append(f"  input  %{vi.name}: {vi.type}")
    for i, n in enumerate(g.nodes):
        if max_nodes is not None and i >= max_nodes:
            lines.append(f"  ... {len(g.nodes) - max_nodes} more nodes")
            break
        ins = ", ".join(
            ("$" if x in g.constants else "%") + x + (f":{g.value_types[x]}" if x in g.constants else "") if x else "_"
            for x in n.inputs
        )
        outs = ", ".join(f"%{o}: {g.value_types.get(o, '?')}" for o in n.outputs)
        attrs = " ".join(f"{k}={_fmt_attr(v)}" for k, v in sorted(n.attrs.items()))
        dom = f"{n.domain}." if n.domain else ""
        lines.append(f"  {outs} = {dom}{n.op_type}({ins}){' ' + attrs if attrs else ''}  # {n.name}")
    for vi in g.outputs:
        lines.append(f"  output %{vi.name}: {vi.type}")
    return "\n".join(lines)
