"""Graph checker: run after every reader and pass in tests (``check_graph(g)``)."""

from __future__ import annotations

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Graph
from convertmodel.ir.infer import infer_types
from convertmodel.ir.schema import get_schema, resolve_attrs


def check_graph(g: Graph) -> None:
    """Raise :class:`InvalidModelError` on the first structural problem found.

    Checks: every value defined once; nodes topologically ordered; each input defined
    before use; node names unique; op schemas exist and attributes type-check; graph
    outputs defined; constants are numpy arrays; inferred types agree with the recorded ones.
    """
    defined: set[str] = set()

    def define(name: str, what: str) -> None:
        if not name:
            return
        if name in defined:
            raise InvalidModelError(f"graph {g.name!r}: value {name!r} is defined twice (again by {what})")
        defined.add(name)

    for vi in g.inputs:
        define(vi.name, "graph input")
    for name, arr in g.constants.items():
        if not hasattr(arr, "dtype") or not hasattr(arr, "shape"):
            raise InvalidModelError(f"graph {g.name!r}: constant {name!r} is not an array")
        define(name, "constant")
    node_names: set[str] = set()
    for n in g.nodes:
        if n.name in node_names:
            raise InvalidModelError(f"graph {g.name!r}: node name {n.name!r} is used twice")
        node_names.add(n.name)
        for i in n.inputs:
            if i and i not in defined:
                raise InvalidModelError(f"{n.op_type} {n.name!r}: input {i!r} is not defined before use")
        resolve_attrs(n, get_schema(n.op_type, n.domain))
        for o in n.outputs:
            define(o, f"{n.op_type} {n.name!r}")
    for vi in g.outputs:
        if vi.name not in defined:
            raise InvalidModelError(f"graph {g.name!r}: output {vi.name!r} is not defined")
    fresh = infer_types(g)
    for name, t in g.value_types.items():
        ft = fresh.value_types.get(name)
        if ft is not None and ft.dtype != t.dtype:
            raise InvalidModelError(f"graph {g.name!r}: value {name!r} recorded as {t}, inferred {ft}")
