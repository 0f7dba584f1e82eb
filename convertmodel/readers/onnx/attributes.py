"""ONNX attribute and tensor decoding: AttributeProto -> typed Python values, TensorProto -> numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import DTYPES
from convertmodel.ir.ops.activation import ONNX_DTYPE_CODES

# The IR's Cast op owns the ONNX TensorProto.DataType code table; the reader uses the same one.
_ONNX_TO_NP = ONNX_DTYPE_CODES


def onnx_dtype(elem_type: int, where: str) -> str:
    """IR dtype name of an ONNX element type; UnsupportedOpError-free: raises InvalidModelError naming ``where``."""
    name = _ONNX_TO_NP.get(int(elem_type))
    if name is None or name not in DTYPES:
        raise InvalidModelError(
            f"{where}: element type {elem_type} is not supported; supported: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(_ONNX_TO_NP.items()))
        )
    return name


def tensor_to_numpy(tensor: Any, where: str) -> np.ndarray:
    """Decode a TensorProto (raw_data or typed fields; external data must already be loaded)."""
    from onnx import numpy_helper

    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as e:  # onnx raises ValueError/TypeError/RuntimeError for malformed tensors
        raise InvalidModelError(f"{where}: tensor {tensor.name!r} cannot be decoded: {e}") from e
    if arr.dtype == object or arr.dtype.kind in ("U", "S"):
        raise UnsupportedOpError(where, {"string tensor": [tensor.name]}, what="tensor")
    expected = int(np.prod(tuple(tensor.dims), dtype=np.int64)) if len(tensor.dims) else 1
    if arr.size != expected:
        raise InvalidModelError(
            f"{where}: tensor {tensor.name!r} has {arr.size} values, dims {list(tensor.dims)} need {expected}"
        )
    # For raw_data, numpy_helper returns a read-only view of a bytes object it copied out of the protobuf
    # (upb hands out copies): the memory is already ours, and IR constants are never written in place. A
    # second copy here cost VGG16's 400 MB fc6 weight another 400 MB of peak memory.
    return arr


def attribute_value(attr: Any, where: str) -> Any:
    """Python value of an AttributeProto: int, float, str, tuples, or a numpy array for tensors."""
    from onnx import AttributeProto

    t = attr.type
    if t == AttributeProto.INT:
        return int(attr.i)
    if t == AttributeProto.FLOAT:
        return float(attr.f)
    if t == AttributeProto.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if t == AttributeProto.INTS:
        return tuple(int(v) for v in attr.ints)
    if t == AttributeProto.FLOATS:
        return tuple(float(v) for v in attr.floats)
    if t == AttributeProto.STRINGS:
        return tuple(s.decode("utf-8", errors="replace") for s in attr.strings)
    if t == AttributeProto.TENSOR:
        return tensor_to_numpy(attr.t, f"{where} attribute {attr.name!r}")
    if t in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        raise UnsupportedOpError(where, {f"subgraph attribute {attr.name!r}": [where]}, what="attribute")
    raise InvalidModelError(f"{where}: attribute {attr.name!r} has unsupported type {t}")


def node_attributes(node: Any, where: str, decode_tensors: bool = True) -> dict[str, Any]:
    """All attributes of a NodeProto by name (``decode_tensors=False`` keeps TensorProtos undecoded,
    for the scan, which only looks at attribute names and small values)."""
    from onnx import AttributeProto

    out: dict[str, Any] = {}
    for a in node.attribute:
        if not decode_tensors and a.type == AttributeProto.TENSOR:
            out[a.name] = a.t
            continue
        if a.ref_attr_name:
            raise InvalidModelError(
                f"{where}: attribute {a.name!r} refers to a function attribute; "
                "only graphs outside functions are supported"
            )
        out[a.name] = attribute_value(a, where)
    return out
