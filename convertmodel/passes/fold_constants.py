"""Constant folding: evaluate nodes whose inputs are all constants with the reference kernels, and
resolve shape computations (Shape -> Gather/Slice -> Concat -> Reshape) symbolically.

Exporters compute reshape targets at run time from ``Shape(x)``: tf2onnx's flatten is
``Reshape(x, Concat(Slice(Cast(Gather(Shape(x), 0))), [-1]))``, whose first entry is the batch
size. With static shapes the whole chain folds to a constant. With a symbolic batch dim the
chain is tracked as a vector of ints and dim names; an entry equal to the Reshape input's own
dim at the same position becomes ``0``, which ONNX Reshape (allowzero=0) defines as "copy
that dim", so the Reshape gets a constant shape and the chain disappears.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convertmodel.errors import ConvertModelError, InvalidModelError
from convertmodel.ir.graph import Dim, Graph, Node, prune
from convertmodel.ir.schema import CM_DOMAIN, resolve_attrs
from convertmodel.limits import Budget
from convertmodel.runtime.registry import KernelContext, find_kernel

#: A shape-like value known element by element: ints, dim names, or None (unknown).
Sym = tuple[Dim, ...]

_INT_DTYPES = ("int64", "int32")


def _evaluate(node: Node, args: list[np.ndarray | None]) -> list[np.ndarray] | None:
    found = find_kernel(node.op_type, node.domain, ("ref",))
    if found is None:
        return None
    _, fn = found
    try:
        res = fn(KernelContext(node, resolve_attrs(node)), *args)
    except ConvertModelError:
        raise
    except Exception as e:  # constants a kernel rejects mean the model is inconsistent
        raise InvalidModelError(f"{node.op_type} {node.name!r}: folding constant inputs failed: {e}") from e
    outs = list(res) if isinstance(res, (tuple, list)) else [res]
    return [np.asarray(o) for o in outs]


class _Folder:
    def __init__(self, g: Graph, budget: Budget) -> None:
        self.g = g
        self.budget = budget  # every byte folding creates counts against the memory cap (convertmodel.limits)
        self.consts: dict[str, np.ndarray] = dict(g.constants)
        self.sym: dict[str, Sym] = {}
        self.scalar: set[str] = set()  # sym values that are 0-D (a single dim)
        self.nodes: list[Node] = []
        self.changed = False

    # -- symbolic shape values ---------------------------------------------------------------
    def sym_of(self, name: str) -> Sym | None:
        if name in self.sym:
            return self.sym[name]
        c = self.consts.get(name)
        if c is not None and c.dtype.kind in "iu" and c.ndim <= 1:
            return tuple(int(v) for v in c.reshape(-1))
        return None

    def is_scalar(self, name: str) -> bool:
        c = self.consts.get(name)
        return name in self.scalar or (c is not None and c.ndim == 0)

    def set_sym(self, node: Node, value: Sym, scalar: bool, dtype: str = "int64") -> None:
        out = node.outputs[0]
        if all(isinstance(d, int) for d in value):
            arr = np.asarray(value, dtype=dtype)
            self.consts[out] = arr.reshape(()) if scalar else arr
            self.changed = True
            return
        self.sym[out] = value
        if scalar:
            self.scalar.add(out)
        self.nodes.append(node)

    def try_symbolic(self, node: Node) -> bool:
        """Track shape computations; True when the node was consumed (folded or tracked)."""
        op, ins = node.op_type, node.inputs
        if node.domain or not node.outputs:
            return False
        if op == "Shape":
            t = self.g.value_types.get(ins[0])
            if t is None or t.shape is None:
                return False
            start = int(node.attrs.get("start", 0))  # type: ignore[arg-type]
            end = node.attrs.get("end")
            dims = t.shape[start : end if end is None else int(end)]  # type: ignore[misc, arg-type]
            self.set_sym(node, tuple(dims), scalar=False)
            return True
        if op == "Cast":
            s = self.sym_of(ins[0])
            to = int(node.attrs["to"])  # type: ignore[arg-type]
            if s is None or ins[0] not in self.sym or to not in (6, 7):  # 6=int32, 7=int64 (TensorProto)
                return False
            self.set_sym(node, s, self.is_scalar(ins[0]), "int64" if to == 7 else "int32")
            return True
        if op == "Gather":
            s, idx = self.sym.get(ins[0]), self.consts.get(ins[1])
            if s is None or idx is None or int(node.attrs.get("axis", 0)) != 0 or idx.ndim > 1:  # type: ignore[arg-type]
                return False
            if any(not -len(s) <= int(i) < len(s) for i in idx.reshape(-1)):
                return False  # out of range: leave it to the kernel, which reports it at run time
            picked = tuple(s[int(i)] for i in idx.reshape(-1))
            self.set_sym(node, picked, scalar=idx.ndim == 0)
            return True
        if op == "Slice":
            s = self.sym.get(ins[0])
            vals = [self.consts.get(i) if i else None for i in ins[1:]]
            if s is None or len(vals) < 2 or any(v is None or v.size != 1 for v in vals if v is not None):
                return False
            if any(v is None for v, i in zip(vals, ins[1:], strict=True) if i):
                return False
            axes = vals[2] if len(vals) > 2 else None
            steps = int(vals[3].reshape(-1)[0]) if len(vals) > 3 and vals[3] is not None else 1
            if (axes is not None and int(axes.reshape(-1)[0]) not in (0, -1)) or steps < 1:
                return False
            # ONNX Slice clamps starts/ends like Python slicing does for positive steps.
            lo, hi = int(vals[0].reshape(-1)[0]), int(vals[1].reshape(-1)[0])  # type: ignore[union-attr]
            self.set_sym(node, tuple(s[lo:hi:steps]), scalar=False)
            return True
        if op == "Concat":
            parts = [self.sym_of(i) for i in ins]
            if any(p is None for p in parts) or not any(i in self.sym for i in ins):
                return False
            self.set_sym(node, tuple(d for p in parts for d in p), scalar=False)  # type: ignore[union-attr]
            return True
        if op == "Unsqueeze" and ins[0] in self.scalar:
            self.set_sym(node, self.sym[ins[0]], scalar=False)
            return True
        if op == "Reshape":
            return self.fold_reshape(node)
        return False

    def fold_reshape(self, node: Node) -> bool:
        s = self.sym.get(node.inputs[1])
        t = self.g.value_types.get(node.inputs[0])
        if s is None or t is None or t.shape is None or int(node.attrs.get("allowzero", 0)):  # type: ignore[arg-type]
            return False
        target: list[int] = []
        for k, d in enumerate(s):
            if isinstance(d, int):
                target.append(d)
            elif isinstance(d, str) and k < len(t.shape) and t.shape[k] == d:
                target.append(0)  # Reshape copies input dim k (ONNX Reshape, allowzero=0)
            else:
                return False
        shape_name = f"{node.name}/shape"
        while shape_name in self.consts or shape_name in self.g.value_types:
            shape_name += "_"
        self.consts[shape_name] = np.asarray(target, dtype=np.int64)
        self.nodes.append(node.with_(inputs=(node.inputs[0], shape_name)))
        self.changed = True
        return True

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> Graph:
        for node in self.g.nodes:
            ins = [i for i in node.inputs if i]
            if ins and node.domain != CM_DOMAIN and all(i in self.consts for i in ins):
                outs = _evaluate(node, [self.consts[i] if i else None for i in node.inputs])
                if outs is not None:
                    for name, val in zip(node.outputs, outs, strict=False):
                        if name:
                            self.budget.charge(val.nbytes, f"{node.op_type} {node.name!r}: folding output {name!r}")
                            self.consts[name] = val
                    self.changed = True
                    continue
            if self.try_symbolic(node):
                continue
            self.nodes.append(node)
        g = self.g.replace(nodes=tuple(self.nodes), constants=self.consts, infer=False)
        return prune(g).replace()


def fold_constants(g: Graph, max_rounds: int = 4) -> Graph:
    """Return ``g`` with constant subgraphs evaluated and shape chains resolved (a pure rewrite)."""
    budget = Budget("constant folding")
    for _ in range(max_rounds):
        f = _Folder(g, budget)
        g2 = f.run()
        if not f.changed:
            return g2
        g = g2
    return g


def shape_entries(values: Sequence[Dim]) -> str:
    """Readable form of a symbolic shape vector (for messages and dumps)."""
    return "[" + ", ".join("?" if v is None else str(v) for v in values) + "]"
