"""Decoding of TensorFlow's protobuf messages (own schema, tf_graph.proto): files, attributes, tensors."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from convertmodel.errors import FormatError, InvalidModelError, UnsupportedOpError
from convertmodel.fsutil import read_regular

#: TF DataType code -> IR dtype name (the IR has no unsigned types beyond uint8).
TF_DTYPES = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    9: "int64",
    10: "bool",
    19: "float16",
}
TF_DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 17: "uint16", 18: "complex128", 20: "resource"}
TF_DTYPE_NAMES |= {21: "variant", 22: "uint32", 23: "uint64"}


def pb2() -> Any:
    from convertmodel.readers.tensorflow import tf_graph_pb2

    return tf_graph_pb2


def is_text(data: bytes) -> bool:
    head = data[:4096].lstrip()
    return head[:1] == b"#" or head.startswith((b"node", b"versions", b"library"))


def parse(data: bytes, message: Any, path: str, what: str) -> Any:
    """Parse ``data`` (binary, or protobuf text format) into ``message``; FormatError when it is not one."""
    from google.protobuf import message as _message
    from google.protobuf import text_format

    if is_text(data):
        try:
            text_format.Parse(data.decode("utf-8"), message, allow_unknown_field=True)
        except (text_format.ParseError, UnicodeDecodeError) as e:
            raise FormatError(path, f"not a valid text-format {what}: {e}") from e
        return message
    try:
        message.ParseFromString(data)
    except (_message.DecodeError, RuntimeError, ValueError) as e:  # RuntimeError: nesting too deep
        raise FormatError(path, f"not a valid {what} (truncated or corrupt protobuf): {e}") from e
    return message


def load_graphdef(path: str) -> Any:
    data = read_regular(path)
    gd = parse(data, pb2().GraphDef(), path, "TensorFlow GraphDef")
    if not len(gd.node):
        raise FormatError(path, "is not a TensorFlow GraphDef: it holds no nodes")
    return gd


def dtype_name(code: int, where: str) -> str:
    name = TF_DTYPES.get(int(code) % 100)  # *_REF types (TF1 variables) are code + 100
    if name is None:
        found = TF_DTYPE_NAMES.get(int(code) % 100, f"code {code}")
        raise UnsupportedOpError(where, {f"dtype {found}": []}, sorted(TF_DTYPES.values()), what="tensor element")
    return name


def shape_dims(shape: Any) -> list[int | None] | None:
    if shape.unknown_rank:
        return None
    return [None if d.size < 0 else int(d.size) for d in shape.dim]


def tensor_to_numpy(t: Any, where: str, limit: int) -> np.ndarray:
    """Decode a TensorProto; ``limit`` caps the bytes a short value list may be broadcast to."""
    dtype = np.dtype(dtype_name(t.dtype, where))
    maybe = shape_dims(t.tensor_shape) or []
    if any(d is None for d in maybe):
        raise InvalidModelError(f"{where}: constant has an unknown dimension {maybe}")
    dims = [int(d) for d in maybe if d is not None]
    n = 1
    for d in dims:
        n *= d
    if t.tensor_content:
        raw = t.tensor_content
        if len(raw) != n * dtype.itemsize:
            raise InvalidModelError(
                f"{where}: tensor_content has {len(raw)} bytes, shape {dims} needs {n * dtype.itemsize}"
            )
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(dims)
    if n * dtype.itemsize > limit:
        raise InvalidModelError(
            f"{where}: constant of shape {dims} ({n * dtype.itemsize} bytes) is larger than the file allows"
        )
    kind = dtype.name
    if kind == "float16":
        vals = np.asarray(t.half_val, dtype=np.int32).astype(np.uint16).view(np.float16)
    else:
        field = {"float32": "float_val", "float64": "double_val", "int64": "int64_val", "bool": "bool_val"}.get(
            kind, "int_val"
        )
        vals = np.asarray(getattr(t, field), dtype=dtype)
    if vals.size > n:
        raise InvalidModelError(f"{where}: {vals.size} values for shape {dims}")
    if vals.size == n:
        return vals.reshape(dims)
    # TF repeats the last value to fill the shape (a splat constant stores one value).
    out = np.full(n, vals[-1] if vals.size else 0, dtype=dtype)
    out[: vals.size] = vals
    return out.reshape(dims)


def attr_value(a: Any, where: str, limit: int) -> Any:
    kind = a.WhichOneof("value")
    if kind is None:
        return None
    if kind == "s":
        return a.s.decode("utf-8", "replace")
    if kind in ("i", "f", "b"):
        return getattr(a, kind)
    if kind == "type":
        return dtype_name(a.type, where) if int(a.type) % 100 in TF_DTYPES else TF_DTYPE_NAMES.get(int(a.type), "?")
    if kind == "shape":
        return shape_dims(a.shape)
    if kind == "tensor":
        return tensor_to_numpy(a.tensor, where, limit)
    if kind == "func":
        return a.func.name
    if kind == "placeholder":
        return a.placeholder
    lst = a.list
    if len(lst.s):
        return [s.decode("utf-8", "replace") for s in lst.s]
    if len(lst.i):
        return list(lst.i)
    if len(lst.f):
        return list(lst.f)
    if len(lst.b):
        return list(lst.b)
    if len(lst.type):
        return [TF_DTYPES.get(int(x) % 100, "?") for x in lst.type]
    if len(lst.shape):
        return [shape_dims(s) for s in lst.shape]
    return []


def node_attrs(node: Any, where: str, limit: int) -> dict[str, Any]:
    return {k: attr_value(v, where, limit) for k, v in node.attr.items()}


def size_limit(path: str) -> int:
    """Bytes a constant may expand to from a short value list: generous, but not a memory bomb."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    return max(64 << 20, 16 * size)
