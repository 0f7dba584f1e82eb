"""GraphDef -> IR: cut the graph at the requested inputs/outputs, scan, translate node by node."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from convertmodel.errors import ConvertModelError, InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import Graph
from convertmodel.readers.tensorflow import handlers_array, handlers_nn  # noqa: F401  (register handlers)
from convertmodel.readers.tensorflow.context import HANDLERS, Node, TFOpKey, Translator, Val, supported
from convertmodel.readers.tensorflow.protos import dtype_name, node_attrs

#: TF1 and TF2 control flow: a graph using them cannot be translated op by op.
CONTROL_FLOW = frozenset(
    "Switch Merge Enter Exit NextIteration LoopCond RefSwitch RefMerge While StatelessWhile If StatelessIf Case "
    "StatelessCase".split()
)
#: Sinks that are not model outputs (training, saving, asserts).
_NOT_OUTPUTS = frozenset("NoOp Const Placeholder PlaceholderWithDefault Assert SaveV2 RestoreV2 VarHandleOp".split())

_SHAPE_RE = re.compile(r"^\[?[0-9?,x\- ]*\]?$")


def tensor_key(name: str) -> str:
    """'node:0' and 'node' name the same tensor; other outputs keep their ':k'."""
    return name[:-2] if name.endswith(":0") else name


def parse_inputs(spec: str | Sequence[str] | None) -> dict[str, list[int | None] | None]:
    """``NAME[:SHAPE]`` entries (SHAPE like ``1,224,224,3`` or ``[?,28,28,1]``; ``?``/-1 unknown)."""
    if spec is None:
        return {}
    items = re.split(r"[;\s]+", spec) if isinstance(spec, str) else list(spec)
    out: dict[str, list[int | None] | None] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, shape = item, None
        head, sep, tail = item.rpartition(":")
        if sep and _SHAPE_RE.match(tail) and ("," in tail or "[" in tail or "x" in tail):
            name = head
            dims = [d for d in re.split(r"[,x\s]+", tail.strip("[]")) if d]
            shape = [None if d in ("?", "-1") else int(d) for d in dims]
        out[tensor_key(name)] = shape
    return out


def parse_outputs(spec: str | Sequence[str] | None) -> list[str]:
    if spec is None:
        return []
    items = re.split(r"[;,\s]+", spec) if isinstance(spec, str) else list(spec)
    return [tensor_key(i.strip()) for i in items if i.strip()]


def _producer(name: str) -> tuple[str, int]:
    node, _, k = name.partition(":")
    return node, int(k) if k.isdigit() else 0


class _Plan:
    """The part of the graph to translate: nodes reachable from the outputs, stopping at the inputs."""

    def __init__(self, gd: Any, path: str, inputs: dict[str, Any], outputs: list[str]) -> None:
        self.path = path
        self.nodes: dict[str, Any] = {}
        for n in gd.node:
            if n.name in self.nodes:
                raise InvalidModelError(f"{path}: node {n.name!r} is defined twice")
            self.nodes[n.name] = n
        self.inputs = inputs
        for name in inputs:
            if _producer(name)[0] not in self.nodes:
                raise InvalidModelError(f"{path}: input {name!r} names no node; nodes include {self._some()}")
        if not outputs:
            used = {_producer(i)[0] for n in gd.node for i in n.input if not i.startswith("^")}
            outputs = [n.name for n in gd.node if n.name not in used and n.op not in _NOT_OUTPUTS]
        for name in outputs:
            if _producer(name)[0] not in self.nodes:
                raise InvalidModelError(f"{path}: output {name!r} names no node; nodes include {self._some()}")
        if not outputs:
            raise InvalidModelError(f"{path}: the graph has no output node; name one with outputs=NAME")
        self.outputs = outputs
        self.order = self._order()

    def _some(self) -> str:
        return ", ".join(repr(k) for k in list(self.nodes)[-3:])

    def data_inputs(self, n: Any) -> list[str]:
        return [i for i in n.input if not i.startswith("^")]

    def _order(self) -> list[Any]:
        """Depth-first post-order from the outputs (GraphDefs need not be sorted); cycles are errors."""
        cut = {_producer(k)[0] for k, _ in self.inputs.items() if _producer(k)[1] == 0}
        done: set[str] = set()
        active: set[str] = set()
        order: list[Any] = []
        for out in self.outputs:
            stack: list[tuple[str, bool]] = [(_producer(out)[0], False)]
            while stack:
                name, expanded = stack.pop()
                if name in done:
                    continue
                n = self.nodes.get(name)
                if n is None:
                    raise InvalidModelError(
                        f"{self.path}: an input of the graph names node {name!r}, which does not exist"
                    )
                if expanded or name in cut:
                    active.discard(name)
                    done.add(name)
                    order.append(n)
                    continue
                if name in active:
                    if n.op in CONTROL_FLOW:  # a TF1 loop (Merge <- NextIteration): the scan reports it
                        continue
                    raise InvalidModelError(f"{self.path}: node {name!r} ({n.op}) is part of a cycle")
                active.add(name)
                stack.append((name, True))
                for i in reversed(self.data_inputs(n)):
                    if tensor_key(i) in self.inputs:
                        continue
                    p = _producer(i)[0]
                    if p not in done:
                        stack.append((p, False))
        return order


def _scan(plan: _Plan, tr: Translator) -> None:
    """One error for every control-flow op, then one listing every unsupported op, before translating."""
    cut = set(plan.inputs)
    todo = [n for n in plan.order if n.name not in cut and n.op != "Placeholder"]
    flow: dict[str, list[str]] = {}
    for n in todo:
        if n.op in CONTROL_FLOW:
            flow.setdefault(n.op, []).append(n.name)
    if flow:
        raise UnsupportedOpError(plan.path, flow, what="control-flow op")
    bad: dict[str, list[str]] = {}
    for n in todo:
        h = HANDLERS.get(TFOpKey("tf", n.op))
        if h is None:
            bad.setdefault(n.op, []).append(n.name)
        elif h.check is not None:
            reason = h.check(Node(tr, n.op, n.name, list(n.input), _attrs(n, plan.path, check_only=True)))
            if reason:
                bad.setdefault(f"{n.op} ({reason})", []).append(n.name)
    if bad:
        raise UnsupportedOpError(plan.path, bad, supported("tf"))


def _attrs(n: Any, path: str, check_only: bool = False, limit: int = 1 << 62) -> dict[str, Any]:
    where = f"{path}: node {n.name!r} ({n.op})"
    if check_only:  # the scan needs the small attributes only, not constant tensors
        return {k: v for k, v in node_attrs(_without_tensors(n), where, limit).items()}
    return node_attrs(n, where, limit)


def _without_tensors(n: Any) -> Any:
    m = type(n)()
    m.name, m.op = n.name, n.op
    for k, v in n.attr.items():
        if v.WhichOneof("value") != "tensor":
            m.attr[k].CopyFrom(v)
    return m


def _add_input(tr: Translator, plan: _Plan, name: str, n: Any, attrs: dict[str, Any]) -> None:
    shape = plan.inputs.get(name)
    if shape is None:
        shape = attrs.get("shape") if n.op.startswith("Placeholder") else None
        if shape is None and attrs.get("_output_shapes"):
            shape = attrs["_output_shapes"][_producer(name)[1]]
    dt = attrs.get("dtype") or attrs.get("T") or "float32"
    tr.define(name, Val(tr.add_input(name, dtype_name_safe(dt, plan.path, name), shape)))


def dtype_name_safe(dt: Any, path: str, name: str) -> str:
    return dt if isinstance(dt, str) and dt != "?" else dtype_name(1, f"{path}: input {name!r}")


def convert_graphdef(
    gd: Any,
    path: str,
    *,
    inputs: str | Sequence[str] | None = None,
    outputs: str | Sequence[str] | None = None,
    source_format: str = "tensorflow",
    metadata: dict[str, str] | None = None,
    limit: int = 1 << 62,
    rename: dict[str, str] | None = None,
) -> Graph:
    """Translate a GraphDef (a message of tf_graph.proto) into the IR."""
    ins = parse_inputs(inputs)
    plan = _Plan(gd, path, ins, parse_outputs(outputs))
    meta = {"source_format": source_format, "source_file": os.path.basename(path.rstrip("/"))}
    if gd.HasField("versions"):
        meta["tf_graph_producer"] = str(gd.versions.producer)
    meta.update(metadata or {})
    tr = Translator(path, os.path.splitext(os.path.basename(path.rstrip("/")))[0] or "graph", meta)
    _scan(plan, tr)
    explicit = set(ins)
    for n in plan.order:
        where = f"node {n.name!r} ({n.op})"
        if n.name in explicit or (n.op == "Placeholder" and not explicit):
            _add_input(tr, plan, n.name, n, _attrs(n, path, limit=limit))
            continue
        if n.op == "Placeholder":
            raise InvalidModelError(f"{path}: {where}: the graph needs this placeholder; add it to inputs=")
        for i in plan.data_inputs(n):
            key = tensor_key(i)
            if key in explicit and key not in tr.vals:
                _add_input(
                    tr, plan, key, plan.nodes[_producer(key)[0]], _attrs(plan.nodes[_producer(key)[0]], path, True)
                )
        node = Node(tr, n.op, n.name, [tensor_key(i) for i in plan.data_inputs(n)], _attrs(n, path, limit=limit))
        node.extra["graph"] = plan.nodes  # for handlers that recognise a TensorFlow idiom (Reshape)
        handler = HANDLERS.get(TFOpKey("tf", n.op))
        if handler is None:  # the scan reported it already
            raise UnsupportedOpError(path, {n.op: [n.name]}, supported("tf"))
        try:
            handler.fn(node)
        except ConvertModelError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as e:
            raise InvalidModelError(f"{path}: {where}: cannot convert: {type(e).__name__}: {e}") from e
    return finish(tr, plan.outputs, rename or {})


def finish(tr: Translator, outputs: Sequence[str], public: dict[str, str] | None = None) -> Graph:
    """Mark the outputs (in TF layout, under their TF names or ``public[name]``) and build the graph."""
    b = tr.builder
    marked: set[str] = set()
    for tf_name in outputs:
        ir = tr.as_tf(tr.val(tf_name, f"output {tf_name!r}"))
        name = (public or {}).get(tf_name, tf_name)
        if ir != name:
            if b.has_value(name):  # an NCHW-held value carries the TF name: free it for the output
                _rename(tr, name, b.unique(f"{name}/nchw"))
                ir = tr.as_tf(tr.vals[tf_name])
            if ir in marked or ir in b.constants or any(i.name == ir for i in b.inputs):
                tr.emit("Identity", [ir], f"{name}/output", outputs=[name])
            else:
                _rename(tr, ir, name)
        marked.add(name)
        t = tr.type_of(name)
        b.mark_output(name, t.dtype if t else "float32", t.shape if t else None)
    return b.build()


def _rename(tr: Translator, old: str, new: str) -> None:
    """Rename IR value ``old`` to ``new`` everywhere (a graph output takes its TF name)."""
    tr.builder.rename_value(old, new)

    def m(v: str) -> str:
        return new if v == old else v

    for v in tr.vals.values():
        v.ir = m(v.ir)
        v.other = None if v.other is None else m(v.other)
