"""Parse and validate the JSON header of a ``.q8`` file (docs/format.md, sections 3-4).

:func:`parse_header` turns header bytes into a JSON object (strict: UTF-8, no NaN literals, no
duplicate keys); :func:`decode_header` checks the type of every field it uses and every
cross-reference, and returns typed records. Both raise :class:`FormatError` and nothing else.
Unknown keys are ignored at every level (forward compatibility within a major version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from convertmodel.errors import FormatError
from convertmodel.ir.graph import DTYPES as IR_DTYPES
from convertmodel.ir.graph import AttrValue, Dim, TensorType, ValueInfo
from convertmodel.serialize.format import (
    ALIGNMENT,
    ATTR_TYPES,
    DTYPES,
    INT64_MAX,
    INT64_MIN,
    MAX_RANK,
    PREAMBLE_SIZE,
    SPECIAL_FLOATS,
)


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table; ``offset`` is relative to ``data_start``."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    crc32: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor attribute before its array is mapped: the name of a table entry."""

    name: str


@dataclass(frozen=True)
class NodeSpec:
    op_type: str
    name: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, AttrValue | TensorRef]


@dataclass
class DecodedHeader:
    """The validated content of a header."""

    data_size: int
    name: str
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    constants: list[str]
    nodes: list[NodeSpec]
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry] = field(default_factory=dict)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r} in a JSON object")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON literal {name}")


def parse_header(data: bytes, path: str) -> dict[str, Any]:
    """Strict JSON parse of the header bytes into a dict."""
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise FormatError(
            path, f"header is not valid UTF-8 ({e.reason} at header byte {e.start})", PREAMBLE_SIZE + e.start
        ) from None
    except json.JSONDecodeError as e:
        raise FormatError(
            path, f"header is not valid JSON: {e.msg} (line {e.lineno} column {e.colno})", PREAMBLE_SIZE
        ) from None
    except (ValueError, RecursionError) as e:  # duplicate keys, NaN literals, too deep, too many digits
        raise FormatError(path, f"header is not valid JSON: {e}", PREAMBLE_SIZE) from None
    if not isinstance(obj, dict):
        raise FormatError(path, f"header must be a JSON object, found {type(obj).__name__}", PREAMBLE_SIZE)
    return obj


class _Checker:
    """Typed accessors that raise FormatError naming the JSON path of the bad field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> FormatError:
        return FormatError(self.path, f"header field {where}: {message}", PREAMBLE_SIZE)

    def obj(self, v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(where, f"expected an object, found {_kind(v)}")
        return v

    def get(self, d: dict[str, Any], key: str, where: str) -> Any:
        if key not in d:
            raise self.fail(where, f"required key {key!r} is missing")
        return d[key]

    def str_(self, v: Any, where: str) -> str:
        if not isinstance(v, str):
            raise self.fail(where, f"expected a string, found {_kind(v)}")
        return v

    def int_(self, v: Any, where: str, lo: int = 0, hi: int = INT64_MAX) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail(where, f"expected an integer, found {_kind(v)}")
        if not lo <= v <= hi:
            raise self.fail(where, f"expected an integer in [{lo}, {hi}], found {v}")
        return v

    def float_(self, v: Any, where: str) -> float:
        if isinstance(v, float):
            return v
        if isinstance(v, str) and v in SPECIAL_FLOATS:
            return SPECIAL_FLOATS[v]
        raise self.fail(where, f"expected a float (a JSON number with a fraction, or nan/inf/-inf), found {_kind(v)}")

    def list_(self, v: Any, where: str) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(where, f"expected an array, found {_kind(v)}")
        return v

    def strs(self, v: Any, where: str) -> tuple[str, ...]:
        return tuple(self.str_(x, f"{where}[{i}]") for i, x in enumerate(self.list_(v, where)))

    def shape(self, v: Any, where: str) -> tuple[int, ...]:
        items = self.list_(v, where)
        if len(items) > MAX_RANK:
            raise self.fail(where, f"rank {len(items)} exceeds the limit {MAX_RANK}")
        return tuple(self.int_(x, f"{where}[{i}]") for i, x in enumerate(items))


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    return type(v).__name__


def _value_info(c: _Checker, v: Any, where: str) -> ValueInfo:
    d = c.obj(v, where)
    name = c.str_(c.get(d, "name", where), f"{where}.name")
    dtype = c.str_(c.get(d, "dtype", where), f"{where}.dtype")
    if dtype not in IR_DTYPES:
        raise c.fail(f"{where}.dtype", f"unknown dtype {dtype!r}; known: {', '.join(IR_DTYPES)}")
    raw_shape = c.get(d, "shape", where)
    shape: tuple[Dim, ...] | None = None
    if raw_shape is not None:
        dims = c.list_(raw_shape, f"{where}.shape")
        if len(dims) > MAX_RANK:
            raise c.fail(f"{where}.shape", f"rank {len(dims)} exceeds the limit {MAX_RANK}")
        out: list[Dim] = []
        for i, x in enumerate(dims):
            out.append(x if x is None or isinstance(x, str) else c.int_(x, f"{where}.shape[{i}]"))
        shape = tuple(out)
    return ValueInfo(name, TensorType(dtype, shape))


def _attr(c: _Checker, v: Any, where: str) -> AttrValue | TensorRef:
    d = c.obj(v, where)
    t = c.str_(c.get(d, "type", where), f"{where}.type")
    if t not in ATTR_TYPES:
        raise c.fail(f"{where}.type", f"unknown attribute type {t!r}; known: {', '.join(ATTR_TYPES)}")
    if t == "tensor":
        return TensorRef(c.str_(c.get(d, "tensor", where), f"{where}.tensor"))
    value = c.get(d, "value", where)
    w = f"{where}.value"
    if t == "int":
        return c.int_(value, w, INT64_MIN, INT64_MAX)
    if t == "float":
        return c.float_(value, w)
    if t == "string":
        return c.str_(value, w)
    items = c.list_(value, w)
    if t == "ints":
        return tuple(c.int_(x, f"{w}[{i}]", INT64_MIN, INT64_MAX) for i, x in enumerate(items))
    if t == "floats":
        return tuple(c.float_(x, f"{w}[{i}]") for i, x in enumerate(items))
    return tuple(c.str_(x, f"{w}[{i}]") for i, x in enumerate(items))


def _node(c: _Checker, v: Any, where: str) -> NodeSpec:
    d = c.obj(v, where)
    attrs_raw = c.obj(c.get(d, "attrs", where), f"{where}.attrs")
    attrs = {k: _attr(c, a, f"{where}.attrs[{k!r}]") for k, a in attrs_raw.items()}
    return NodeSpec(
        op_type=c.str_(c.get(d, "op_type", where), f"{where}.op_type"),
        name=c.str_(c.get(d, "name", where), f"{where}.name"),
        domain=c.str_(c.get(d, "domain", where), f"{where}.domain"),
        inputs=c.strs(c.get(d, "inputs", where), f"{where}.inputs"),
        outputs=c.strs(c.get(d, "outputs", where), f"{where}.outputs"),
        attrs=attrs,
    )


def _tensor_entry(c: _Checker, v: Any, where: str, data_size: int) -> TensorEntry:
    d = c.obj(v, where)
    name = c.str_(c.get(d, "name", where), f"{where}.name")
    dtype = c.str_(c.get(d, "dtype", where), f"{where}.dtype")
    if dtype not in DTYPES:
        raise c.fail(f"{where}.dtype", f"tensor {name!r}: unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    shape = c.shape(c.get(d, "shape", where), f"{where}.shape")
    offset = c.int_(c.get(d, "offset", where), f"{where}.offset")
    nbytes = c.int_(c.get(d, "nbytes", where), f"{where}.nbytes")
    crc_hex = c.str_(c.get(d, "crc32", where), f"{where}.crc32")
    if len(crc_hex) != 8 or any(ch not in "0123456789abcdef" for ch in crc_hex):
        raise c.fail(f"{where}.crc32", f"tensor {name!r}: expected 8 lowercase hex digits, found {crc_hex[:20]!r}")
    # prod(shape) * itemsize, failing as soon as an intermediate leaves int64 (docs/format.md section 4).
    # Zero dims are skipped in the overflow check: numpy refuses shapes whose non-zero dims overflow
    # even when the array is empty, so (0, 2**62) must be rejected here, not crash np.reshape later.
    span = DTYPES[dtype].itemsize
    for dim in shape:
        span *= max(dim, 1)
        if span > INT64_MAX:
            raise c.fail(f"{where}.shape", f"tensor {name!r}: shape {list(shape)} of {dtype} overflows int64 bytes")
    expected = 0 if 0 in shape else span
    if nbytes != expected:
        raise c.fail(
            f"{where}.nbytes",
            f"tensor {name!r}: shape {list(shape)} of {dtype} needs {expected} bytes, table says {nbytes}",
        )
    if offset % ALIGNMENT:
        raise c.fail(f"{where}.offset", f"tensor {name!r}: offset {offset} is not a multiple of {ALIGNMENT}")
    if offset + nbytes > data_size:
        raise c.fail(
            f"{where}.offset",
            f"tensor {name!r}: bytes [{offset}, {offset + nbytes}) of the data section exceed its size {data_size}",
        )
    return TensorEntry(name, dtype, shape, offset, nbytes, int(crc_hex, 16))


def decode_header(raw: dict[str, Any], path: str) -> DecodedHeader:
    """Validate a parsed header and return typed records (offsets still relative to data_start)."""
    c = _Checker(path)
    data_size = c.int_(c.get(raw, "data_size", "<top>"), "data_size")
    metadata_raw = c.obj(c.get(raw, "metadata", "<top>"), "metadata")
    metadata = {k: c.str_(v, f"metadata[{k!r}]") for k, v in metadata_raw.items()}

    tensors: dict[str, TensorEntry] = {}
    for i, v in enumerate(c.list_(c.get(raw, "tensors", "<top>"), "tensors")):
        e = _tensor_entry(c, v, f"tensors[{i}]", data_size)
        if e.name in tensors:
            raise c.fail(f"tensors[{i}].name", f"tensor name {e.name!r} appears twice in the table")
        tensors[e.name] = e
    last_end, last_name = 0, ""
    for e in sorted((e for e in tensors.values() if e.nbytes), key=lambda e: e.offset):
        if e.offset < last_end:
            raise FormatError(
                path,
                f"tensor {e.name!r} at data offset {e.offset} overlaps tensor {last_name!r} which ends at {last_end}",
                e.offset,
            )
        last_end, last_name = e.offset + e.nbytes, e.name

    g = c.obj(c.get(raw, "graph", "<top>"), "graph")
    name = c.str_(c.get(g, "name", "graph"), "graph.name")
    inputs = [
        _value_info(c, v, f"graph.inputs[{i}]")
        for i, v in enumerate(c.list_(c.get(g, "inputs", "graph"), "graph.inputs"))
    ]
    outputs = [
        _value_info(c, v, f"graph.outputs[{i}]")
        for i, v in enumerate(c.list_(c.get(g, "outputs", "graph"), "graph.outputs"))
    ]
    constants = list(c.strs(c.get(g, "constants", "graph"), "graph.constants"))
    nodes = [_node(c, v, f"graph.nodes[{i}]") for i, v in enumerate(c.list_(c.get(g, "nodes", "graph"), "graph.nodes"))]
    _check_structure(c, inputs, outputs, constants, nodes, tensors)
    return DecodedHeader(data_size, name, inputs, outputs, constants, nodes, metadata, tensors)


def _check_structure(
    c: _Checker,
    inputs: list[ValueInfo],
    outputs: list[ValueInfo],
    constants: list[str],
    nodes: list[NodeSpec],
    tensors: dict[str, TensorEntry],
) -> None:
    """Each value defined once, defined before use, node names unique, references resolve (section 3.1)."""
    defined: dict[str, str] = {}

    def define(value: str, by: str, where: str) -> None:
        if value in defined:
            raise c.fail(where, f"value {value!r} is defined twice: by {defined[value]} and by {by}")
        defined[value] = by

    for i, vi in enumerate(inputs):
        define(vi.name, "a graph input", f"graph.inputs[{i}].name")
    for i, name in enumerate(constants):
        if name not in tensors:
            raise c.fail(f"graph.constants[{i}]", f"constant {name!r} is not in the tensor table")
        define(name, "a constant", f"graph.constants[{i}]")
    node_names: set[str] = set()
    for i, n in enumerate(nodes):
        where = f"graph.nodes[{i}]"
        if n.name in node_names:
            raise c.fail(f"{where}.name", f"node name {n.name!r} is used twice")
        node_names.add(n.name)
        for j, v in enumerate(n.inputs):
            if v and v not in defined:
                raise c.fail(
                    f"{where}.inputs[{j}]",
                    f"{n.op_type} {n.name!r} uses {v!r} before it is defined (nodes must be in topological order)",
                )
        for k, a in n.attrs.items():
            if isinstance(a, TensorRef) and a.name not in tensors:
                raise c.fail(f"{where}.attrs[{k!r}].tensor", f"tensor {a.name!r} is not in the tensor table")
        for j, v in enumerate(n.outputs):
            if v:
                define(v, f"{n.op_type} {n.name!r}", f"{where}.outputs[{j}]")
    for i, vi in enumerate(outputs):
        if vi.name not in defined:
            raise c.fail(f"graph.outputs[{i}].name", f"graph output {vi.name!r} is not defined")
