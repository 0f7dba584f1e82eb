"""ONNX ModelProto -> IR Graph: the up-front scan, graph inputs/outputs, initializers, node loop."""

from __future__ import annotations

import os
from typing import Any

from convertmodel.errors import ConvertModelError, FormatError, InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import Dim, Graph, GraphBuilder
from convertmodel.ir.schema import find_schema, supported_ops
from convertmodel.readers.onnx.attributes import node_attributes, onnx_dtype, tensor_to_numpy
from convertmodel.readers.onnx.context import HANDLERS, NodeContext, find_handler
from convertmodel.readers.onnx.loader import DEFAULT_DOMAINS


def _domain(d: str) -> str:
    return "" if d in DEFAULT_DOMAINS else d


def _node_name(node: Any, index: int) -> str:
    if node.name:
        return str(node.name)
    first = next((o for o in node.output if o), "")
    return f"{node.op_type}_{index}" + (f"({first})" if first else "")


def _dims(vi: Any) -> tuple[Dim, ...] | None:
    """Shape of a ValueInfoProto: dim_value -> int, dim_param -> str, missing -> None; a negative dim_value
    (some Paddle exports write -1 for a symbolic dimension) is symbolic: N for the batch axis."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    out: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value < 0:
            out.append("N" if not out else f"{vi.name}_{len(out)}")
        elif d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(str(d.dim_param))
        else:
            out.append(None)
    return tuple(out)


def _opsets(model: Any) -> dict[str, int]:
    return {_domain(o.domain): int(o.version) for o in model.opset_import}


def _sorted_nodes(graph: Any, known: set[str], path: str) -> list[tuple[int, Any]]:
    """Nodes in a topological order (ONNX requires it, some exporters break it); stable otherwise."""
    avail = set(known) | {""}
    pending = list(enumerate(graph.node))
    out: list[tuple[int, Any]] = []
    while pending:
        rest = []
        for idx, n in pending:
            if all(i in avail for i in n.input):
                out.append((idx, n))
                avail.update(n.output)
            else:
                rest.append((idx, n))
        if len(rest) == len(pending):
            idx, n = rest[0]
            missing = [i for i in n.input if i not in avail]
            raise InvalidModelError(
                f"{path}: node {_node_name(n, idx)!r} ({n.op_type}) uses {missing[:3]} which no graph input, "
                f"initializer or node defines (or the graph has a cycle)"
            )
        pending = rest
    return out


def _not_text(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray))


def _check_value_infos(vis: Any, path: str, what: str) -> None:
    for k, vi in enumerate(vis):
        if _not_text(vi.name):
            raise FormatError(path, f"{what} #{k}: name {vi.name!r} is not valid UTF-8")
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_param") and _not_text(d.dim_param):
                    raise FormatError(path, f"{what} {vi.name!r}: dim_param {d.dim_param!r} is not valid UTF-8")


def check_text_fields(model: Any, path: str) -> None:
    """Every name the reader uses must be text: ONNX strings are UTF-8, and protobuf hands out ``bytes``
    for a string field that is not, which would surface as a TypeError deep in the conversion."""
    for k, o in enumerate(model.opset_import):
        if _not_text(o.domain):
            raise FormatError(path, f"opset_import #{k}: domain {o.domain!r} is not valid UTF-8")
    g = model.graph
    if _not_text(g.name):
        raise FormatError(path, f"graph name {g.name!r} is not valid UTF-8")
    for what, vis in (("graph input", g.input), ("graph output", g.output), ("value_info", g.value_info)):
        _check_value_infos(vis, path, what)
    for k, t in enumerate(g.initializer):
        if _not_text(t.name):
            raise FormatError(path, f"initializer #{k}: name {t.name!r} is not valid UTF-8")
    for idx, n in enumerate(g.node):
        for field in ("name", "op_type", "domain"):
            if _not_text(getattr(n, field)):
                raise FormatError(path, f"node #{idx}: {field} {getattr(n, field)!r} is not valid UTF-8")
        where = f"node #{idx} {n.name!r} ({n.op_type})"
        for field in ("input", "output"):
            for v in getattr(n, field):
                if _not_text(v):
                    raise FormatError(path, f"{where}: {field} name {v!r} is not valid UTF-8")
        for a in n.attribute:
            if _not_text(a.name) or _not_text(a.ref_attr_name):
                raise FormatError(path, f"{where}: attribute name {a.name!r} is not valid UTF-8")


def scan_unsupported(model: Any, path: str, opset: int) -> None:
    """Raise one UnsupportedOpError listing every node the reader cannot convert, before converting."""
    check_text_fields(model, path)
    opsets = _opsets(model)
    ir_ops = set(supported_ops())
    unsupported: dict[str, list[str]] = {}
    dummy = GraphBuilder("scan")
    used = {i for n in model.graph.node for i in n.input if i} | {o.name for o in model.graph.output}
    for idx, n in enumerate(model.graph.node):
        name = _node_name(n, idx)
        dom = _domain(n.domain)
        key = n.op_type if not dom else f"{dom}.{n.op_type}"
        handler = find_handler(n.op_type, dom, opsets.get(dom, 1) if dom else opset)
        if handler is None:
            unsupported.setdefault(key, []).append(name)
            continue
        missing_ir = [op for op in handler.emits if op not in ir_ops]
        if missing_ir:
            unsupported.setdefault(f"{key} (IR op {', '.join(missing_ir)} not available)", []).append(name)
            continue
        try:
            attrs = node_attributes(n, f"{path}: node {name!r} ({n.op_type})", decode_tensors=False)
        except UnsupportedOpError as e:
            for k in e.unsupported:
                unsupported.setdefault(f"{key} ({k})", []).append(name)
            continue
        if handler.copy_attrs:
            schema = find_schema(handler.emits[0])
            extra = sorted(set(attrs) - set(schema.attr_map)) if schema is not None else []
            if extra:
                unsupported.setdefault(f"{key} (attribute {', '.join(extra)})", []).append(name)
                continue
        if handler.check is not None:
            ctx = NodeContext(
                dummy,
                n.op_type,
                name,
                list(n.input),
                list(n.output),
                attrs,
                opset,
                path,
                used_outputs={o for o in n.output if o in used},
            )
            reason = handler.check(ctx)
            if reason:
                unsupported.setdefault(f"{key} ({reason})", []).append(name)
    if unsupported:
        # What *is* supported: op types with a handler whose IR ops all exist.
        handled = sorted(
            {(k.domain + "." if k.domain else "") + k.op_type for k, h in HANDLERS.items() if set(h.emits) <= ir_ops}
        )
        raise UnsupportedOpError(path, unsupported, handled)


def _ranks(model: Any) -> dict[str, int]:
    """Ranks of values from declared value_info and ONNX shape inference (used for opset < 13 Softmax)."""
    import onnx

    # Infer on a copy without weight data: shapes need only the initializers' dims, and copying a
    # 500 MB VGG16 through shape inference cost 8 s and two extra copies of the weights.
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    lg = light.graph
    lg.node.extend(model.graph.node)
    lg.input.extend(model.graph.input)
    lg.output.extend(model.graph.output)
    lg.value_info.extend(model.graph.value_info)
    declared = {vi.name for vi in model.graph.input}
    for t in model.graph.initializer:
        if t.name not in declared:
            lg.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False)
    except Exception:  # inference is a hint only; a model it cannot handle still converts
        inferred = model
    out: dict[str, int] = {}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        dims = _dims(vi)
        if dims is not None:
            out[vi.name] = len(dims)
    for t in g.initializer:
        out[t.name] = len(t.dims)
    return out


def convert(model: Any, path: str, opset: int) -> Graph:
    """Convert a loaded, scanned ModelProto into an (unoptimised) IR graph."""
    g = model.graph
    b = GraphBuilder(
        g.name or os.path.splitext(os.path.basename(path))[0],
        metadata={
            "source_format": "onnx",
            "source_file": os.path.basename(path),
            "opset": str(opset),
            "producer_name": str(model.producer_name),
            "producer_version": str(model.producer_version),
            "ir_version": str(model.ir_version),
        },
    )
    init_names = set()
    for t in g.initializer:
        if t.name in init_names:
            raise InvalidModelError(f"{path}: initializer {t.name!r} is defined twice")
        init_names.add(t.name)
        b.add_const(t.name, tensor_to_numpy(t, f"{path}: initializer {t.name!r}"))
    for vi in g.input:
        # Old exporters (onnx-caffe2, ir_version 3) list every initializer as a graph input too;
        # those are weights, not inputs the user feeds.
        if vi.name in init_names:
            continue
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedOpError(path, {"non-tensor graph input": [vi.name]}, what="input")
        b.add_input(vi.name, onnx_dtype(vi.type.tensor_type.elem_type, f"{path}: graph input {vi.name!r}"), _dims(vi))
    ranks = _ranks(model)
    opsets = _opsets(model)
    used = {i for n in g.node for i in n.input if i} | {o.name for o in g.output}
    known = set(init_names) | {vi.name for vi in g.input}
    for idx, n in _sorted_nodes(g, known, path):
        name = _node_name(n, idx)
        where = f"{path}: node {name!r} ({n.op_type})"
        dom = _domain(n.domain)
        handler = find_handler(n.op_type, dom, opsets.get(dom, 1) if dom else opset)
        if handler is None:  # the scan already reported it; keep mypy and odd callers honest
            raise UnsupportedOpError(path, {n.op_type: [name]})
        ctx = NodeContext(
            b,
            n.op_type,
            name,
            list(n.input),
            list(n.output),
            node_attributes(n, where),
            opset,
            path,
            ranks,
            {o for o in n.output if o in used},
        )
        try:
            handler.fn(ctx)
        except ConvertModelError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as e:  # malformed attributes/inputs of this node
            raise InvalidModelError(f"{where}: cannot convert: {type(e).__name__}: {e}") from e
    defined = set(b.constants) | {vi.name for vi in b.inputs} | {o for nd in b.nodes for o in nd.outputs}
    for vi in g.output:
        if vi.name not in defined:
            raise InvalidModelError(f"{path}: graph output {vi.name!r} is not produced by any node")
        elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        dtype = onnx_dtype(elem, f"{path}: graph output {vi.name!r}") if elem else "float32"
        b.mark_output(vi.name, dtype, _dims(vi))
    if not b.outputs:
        raise InvalidModelError(f"{path}: graph has no outputs")
    return b.build()
