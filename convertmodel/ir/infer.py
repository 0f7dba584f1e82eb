"""Shape and type inference over a whole graph, driven by the op schemas."""

from __future__ import annotations

import dataclasses

import numpy as np

from convertmodel.errors import ConvertModelError, InvalidModelError
from convertmodel.ir.graph import Graph, TensorType, ValueInfo
from convertmodel.ir.schema import InferContext, get_schema, resolve_attrs
from convertmodel.limits import check_alloc

#: Compute ops whose kernels (and the quantizer) need a non-empty feature map: an output of one of them
#: with a zero-size dimension after the batch axis is refused at load (the batch itself may be empty).
_NEEDS_DATA = frozenset(
    "Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool LRN BatchNormalization "
    "InstanceNormalization LpNormalization Softmax LogSoftmax Hardmax Gemm MatMul Resize Upsample "
    "Normalize PriorBox DetectionOutput ChannelAffine QConv QGemm QMatMul".split()
)


def check_output_size(node_desc: str, name: str, t: TensorType) -> None:
    """Refuse a declared output larger than the memory cap (convertmodel.limits) before anything
    allocates it (unknown dims count as 1, so the check is a lower bound of the real size), and a
    float output with a zero-size dimension after the batch axis."""
    if t.shape is None:
        return
    dims = [d if isinstance(d, int) else 1 for d in t.shape]
    try:
        dt = np.dtype(t.dtype)
    except TypeError:
        dt = np.dtype(np.uint8)
    if dt.kind == "f" and 0 in t.shape[1:] and node_desc.split(" ", 1)[0] in _NEEDS_DATA:
        # An empty feature map has no meaning for any CNN op (kernels and the quantizer divide by
        # channel and spatial sizes); an empty *batch* (axis 0) is allowed and runs as empty.
        raise InvalidModelError(f"{node_desc}: output {name!r} has the zero-size shape {list(t.shape)}")
    itemsize = dt.itemsize
    check_alloc(dims, itemsize, f"{node_desc}: output {name!r}")


def infer_types(g: Graph) -> Graph:
    """Return ``g`` with ``value_types`` filled for every value and outputs typed.

    Nodes must be in topological order. Declared output shapes are kept where inference
    cannot do better (unknown dims), and checked for agreement where both are known.
    """
    types: dict[str, TensorType] = {vi.name: vi.type for vi in g.inputs}
    for name, arr in g.constants.items():
        types[name] = TensorType(str(arr.dtype), tuple(int(d) for d in arr.shape))
    for node in g.nodes:
        schema = get_schema(node.op_type, node.domain)
        attrs = resolve_attrs(node, schema)
        n_in = len(node.inputs)
        lo, hi = schema.min_inputs(), schema.max_inputs()
        if n_in < lo or (hi is not None and n_in > hi):
            raise InvalidModelError(
                f"{node.op_type} {node.name!r}: has {n_in} inputs, schema takes {lo}..{hi if hi is not None else 'many'}"
            )
        in_types = [types.get(i) if i else None for i in node.inputs]
        in_vals = [g.constants.get(i) if i else None for i in node.inputs]
        ctx = InferContext(node, attrs, in_types, in_vals)
        try:
            outs = schema.infer(ctx)
        except ConvertModelError:
            raise
        except Exception as e:  # a bug or an inconsistent model; name the node either way
            raise InvalidModelError(f"{node.op_type} {node.name!r}: shape inference failed: {e}") from e
        for name, t in zip(node.outputs, outs, strict=False):
            if name:
                check_output_size(f"{node.op_type} {node.name!r}", name, t)
                types[name] = t
    outputs = []
    for vi in g.outputs:
        found = types.get(vi.name)
        if found is None:
            raise InvalidModelError(f"graph output {vi.name!r} is not produced by any node")
        outputs.append(ValueInfo(vi.name, _merge(vi.type, found)))
    return dataclasses.replace(g, value_types=types, outputs=tuple(outputs))


def _merge(declared: TensorType, inferred: TensorType) -> TensorType:
    if inferred.shape is None:
        return TensorType(inferred.dtype, declared.shape)
    if declared.shape is None or len(declared.shape) != len(inferred.shape):
        return inferred
    dims = tuple(
        i if isinstance(i, int) or d is None else d for d, i in zip(declared.shape, inferred.shape, strict=True)
    )
    return TensorType(inferred.dtype, dims)
