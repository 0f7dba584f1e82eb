"""The intermediate representation: frozen dataclasses, NCHW semantics.

A :class:`Graph` holds graph inputs and outputs (:class:`ValueInfo`), nodes in topological
order, constants as numpy arrays (weights, shapes; int8 weights and window parameters after
quantization) and string metadata. A value is defined exactly once: by a graph input, a
constant or one node output. The empty string stands for an omitted optional input, as in
ONNX. Readers build graphs with :class:`GraphBuilder`; passes build new graphs with
:meth:`Graph.replace`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

import numpy as np

from convertmodel.errors import InvalidModelError

#: A dimension: a fixed size, a symbolic name (e.g. ``"N"`` for batch) or unknown.
Dim = Union[int, str, None]

#: Element types the IR knows. Names are numpy dtype names.
DTYPES = ("float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")

#: Typed attribute values. Lists are stored as tuples so nodes stay hashable-ish and frozen.
AttrValue = Union[int, float, str, tuple[int, ...], tuple[float, ...], tuple[str, ...], np.ndarray]


@dataclass(frozen=True)
class TensorType:
    """Element type and shape of a value; ``shape is None`` means unknown rank."""

    dtype: str
    shape: tuple[Dim, ...] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidModelError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype}[?]"
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class ValueInfo:
    """A named graph input or output."""

    name: str
    type: TensorType


def _freeze_attr(value: object) -> AttrValue:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (str, np.ndarray)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        items = [_freeze_attr(v) for v in value]
        if all(isinstance(v, int) for v in items):
            return tuple(int(v) for v in items)  # type: ignore[arg-type]
        if all(isinstance(v, (int, float)) for v in items):
            return tuple(float(v) for v in items)  # type: ignore[arg-type]
        if all(isinstance(v, str) for v in items):
            return tuple(str(v) for v in items)
    raise InvalidModelError(f"attribute value {value!r} of type {type(value).__name__} is not supported")


@dataclass(frozen=True)
class Node:
    """One operation. ``attrs`` holds only attributes that were set; defaults live in the schema."""

    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, AttrValue] = field(default_factory=lambda: MappingProxyType({}))
    domain: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        frozen = {k: _freeze_attr(v) for k, v in dict(self.attrs).items()}
        object.__setattr__(self, "attrs", MappingProxyType(frozen))

    def with_(self, **changes: object) -> Node:
        """A copy with some fields changed (``attrs`` replaces the whole mapping)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.op_type} {self.name!r}"


@dataclass(frozen=True)
class Graph:
    """A whole model. Construct with :class:`GraphBuilder` or :meth:`replace`."""

    name: str
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    nodes: tuple[Node, ...]
    constants: Mapping[str, np.ndarray]
    #: Inferred types of every value (inputs, constants, node outputs).
    value_types: Mapping[str, TensorType] = field(default_factory=lambda: MappingProxyType({}))
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))
        object.__setattr__(self, "value_types", MappingProxyType(dict(self.value_types)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def replace(self, *, infer: bool = True, **changes: object) -> Graph:
        """A new graph with fields changed; re-sorts nodes and re-runs shape inference."""
        g = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        if infer:
            from convertmodel.ir.infer import infer_types

            g = infer_types(toposort(g))
        return g

    # -- queries ---------------------------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        """Map value name -> node producing it."""
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        """Map value name -> nodes consuming it (in node order)."""
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def type_of(self, value: str) -> TensorType | None:
        return self.value_types.get(value)

    def param_count(self) -> int:
        return int(sum(a.size for a in self.constants.values()))

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        return counts

    def __str__(self) -> str:
        from convertmodel.ir.dump import dump

        return dump(self)


def toposort(g: Graph) -> Graph:
    """Nodes in a topological order (stable: keeps the given order where it is valid)."""
    available = {vi.name for vi in g.inputs} | set(g.constants) | {""}
    pending = list(g.nodes)
    ordered: list[Node] = []
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all(i in available for i in n.inputs):
                ordered.append(n)
                available.update(n.outputs)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            missing = sorted({i for n in rest for i in n.inputs if i not in available})
            names = ", ".join(repr(n.name) for n in rest[:3])
            raise InvalidModelError(
                f"graph {g.name!r}: nodes {names} use values nobody defines or form a cycle: {', '.join(missing[:5])}"
            )
        pending = rest
    return dataclasses.replace(g, nodes=tuple(ordered))


class GraphBuilder:
    """Mutable helper for readers and passes; :meth:`build` checks and infers types."""

    def __init__(self, name: str = "graph", metadata: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.inputs: list[ValueInfo] = []
        self.outputs: list[ValueInfo] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self.metadata: dict[str, str] = dict(metadata or {})
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._counter = itertools.count()

    def unique(self, base: str) -> str:
        """A value name not used yet, derived from ``base``."""
        base = base or "v"
        name = base
        while name in self._names:
            name = f"{base}_{next(self._counter)}"
        self._names.add(name)
        return name

    def has_value(self, name: str) -> bool:
        """Whether a value of this name is defined (input, constant or node output)."""
        return name in self._names

    def rename_value(self, old: str, new: str) -> None:
        """Rename value ``old`` to ``new`` everywhere it is defined or used (``new`` becomes taken)."""

        def m(v: str) -> str:
            return new if v == old else v

        if old in self.constants:
            self.constants[new] = self.constants.pop(old)
        self.nodes = [n.with_(inputs=tuple(map(m, n.inputs)), outputs=tuple(map(m, n.outputs))) for n in self.nodes]
        self.inputs = [ValueInfo(new, i.type) if i.name == old else i for i in self.inputs]
        self.outputs = [ValueInfo(new, o.type) if o.name == old else o for o in self.outputs]
        self._names.discard(old)
        self._names.add(new)

    def _unique_node_name(self, base: str) -> str:
        name = base
        while name in self._node_names:
            name = f"{base}_{next(self._counter)}"
        self._node_names.add(name)
        return name

    def add_input(self, name: str, dtype: str, shape: Sequence[Dim] | None) -> str:
        if name in self._names:
            raise InvalidModelError(f"graph input {name!r} is defined twice")
        self._names.add(name)
        self.inputs.append(ValueInfo(name, TensorType(dtype, None if shape is None else tuple(shape))))
        return name

    def add_const(self, name: str, value: np.ndarray | float | int | Sequence[float], dtype: str | None = None) -> str:
        """Register a constant; an existing name gets a fresh suffix. Returns the final name."""
        arr = np.asarray(value, dtype=dtype) if dtype or not isinstance(value, np.ndarray) else value
        if arr.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
            arr = arr.astype(np.float32)
        final = self.unique(name)
        self.constants[final] = arr
        return final

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int = 1,
        name: str | None = None,
        domain: str = "",
        **attrs: object,
    ) -> list[str]:
        """Append a node. ``outputs`` is a list of names or a count of fresh names."""
        node_name = self._unique_node_name(name or f"{op_type.lower()}_{len(self.nodes)}")
        if isinstance(outputs, int):
            outs = [self.unique(f"{node_name}:{k}" if outputs > 1 else node_name) for k in range(outputs)]
        else:
            outs = []
            for o in outputs:
                if o and o in self._names:
                    raise InvalidModelError(f"value {o!r} is defined twice (second time by {op_type} {node_name!r})")
                if o:
                    self._names.add(o)
                outs.append(o)
        clean = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(Node(op_type, node_name, tuple(inputs), tuple(outs), clean, domain))  # type: ignore[arg-type]
        return outs

    def mark_output(self, name: str, dtype: str = "float32", shape: Sequence[Dim] | None = None) -> None:
        self.outputs.append(ValueInfo(name, TensorType(dtype, None if shape is None else tuple(shape))))

    def build(self, infer: bool = True) -> Graph:
        g = Graph(
            self.name,
            tuple(self.inputs),
            tuple(self.outputs),
            tuple(self.nodes),
            self.constants,
            metadata=self.metadata,
        )
        g = toposort(prune(g))
        if infer:
            from convertmodel.ir.infer import infer_types

            g = infer_types(g)
        return g


def prune(g: Graph) -> Graph:
    """Drop nodes and constants that no graph output depends on."""
    needed = {o.name for o in g.outputs}
    prod = g.producers()
    stack = list(needed)
    while stack:
        v = stack.pop()
        n = prod.get(v)
        if n is None:
            continue
        for i in n.inputs:
            if i and i not in needed:
                needed.add(i)
                stack.append(i)
    keep_nodes = tuple(n for n in g.nodes if any(o in needed for o in n.outputs))
    used = {i for n in keep_nodes for i in n.inputs} | {o.name for o in g.outputs}
    consts = {k: v for k, v in g.constants.items() if k in used}
    return dataclasses.replace(g, nodes=keep_nodes, constants=consts)


def rename_values(g: Graph, mapping: Mapping[str, str]) -> Graph:
    """Rewire every use of value ``a`` to ``mapping[a]`` (used when a pass removes a node)."""

    def m(v: str) -> str:
        seen = 0
        while v in mapping and seen < 1000:
            v = mapping[v]
            seen += 1
        return v

    nodes = tuple(n.with_(inputs=tuple(m(i) for i in n.inputs)) for n in g.nodes)
    outputs = tuple(ValueInfo(m(o.name), o.type) if o.name in mapping else o for o in g.outputs)
    # An output renamed away keeps its public name via an Identity so users see the same names.
    extra: list[Node] = []
    final_outputs = []
    for old, new in zip(g.outputs, outputs, strict=True):
        if old.name != new.name:
            extra.append(Node("Identity", f"{old.name}_identity", (new.name,), (old.name,)))
            final_outputs.append(old)
        else:
            final_outputs.append(new)
    return dataclasses.replace(g, nodes=nodes + tuple(extra), outputs=tuple(final_outputs))
