"""Graphs and comparisons shared by the .q8 format tests."""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from convertmodel.ir import GraphBuilder, find_schema
from convertmodel.ir.graph import Graph, TensorType
from convertmodel.ir.schema import SCHEMAS, Attr, AttrType, InferContext, OpKey, Port, op_schema
from convertmodel.serialize import write_q8
from convertmodel.serialize.format import DTYPES

GOLDEN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "q8", "tiny_conv_v1.q8"
)

#: An op that exists only while a test runs: it takes one attribute of every IR attribute type
#: and any number of extra inputs (constants of every dtype), and passes X through.
PROBE_DOMAIN = "convertmodel.test"
PROBE_OP = "AttrProbe"
PROBE_ATTRS = {
    "i": AttrType.INT,
    "f": AttrType.FLOAT,
    "s": AttrType.STRING,
    "ints": AttrType.INTS,
    "floats": AttrType.FLOATS,
    "strings": AttrType.STRINGS,
    "t": AttrType.TENSOR,
    "t2": AttrType.TENSOR,
}


def _probe_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input_type(0)
    return [TensorType(t.dtype, t.shape)]


@contextlib.contextmanager
def probe_op() -> Iterator[None]:
    """Register the AttrProbe schema for the duration of a test, then remove it again."""
    find_schema("Relu")  # load the real schemas first
    key = OpKey(PROBE_DOMAIN, PROBE_OP, 1)
    op_schema(
        PROBE_OP,
        domain=PROBE_DOMAIN,
        inputs=[Port("X"), Port("extra", optional=True, variadic=True)],
        outputs=["Y"],
        attrs=[Attr(k, t, None) for k, t in PROBE_ATTRS.items()],
    )(_probe_infer)
    try:
        yield
    finally:
        SCHEMAS._entries.pop(key, None)  # the registry has no public removal: tests only


def tiny_conv_graph() -> Graph:
    """The golden graph: Conv (2x1x3x3 weight, bias, pads 1) + Relu on a (N, 1, 5, 5) input.

    Every value is a closed formula, so the golden file can be regenerated without randomness.
    """
    b = GraphBuilder("tiny_conv", {"producer": "convertmodel tests", "source.format": "handmade"})
    x = b.add_input("data", "float32", ("N", 1, 5, 5))
    w = b.add_const("conv1_w", (np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3) - 9.0) / 8.0)
    bias = b.add_const("conv1_b", np.array([0.5, -0.25], dtype=np.float32))
    (y,) = b.add_node("Conv", [x, w, bias], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    (z,) = b.add_node("Relu", [y], name="relu1")
    b.mark_output(z, "float32", ("N", 2, 5, 5))
    return b.build()


def mixed_graph() -> Graph:
    """Constants of every dtype and awkward sizes (1..7 bytes, empty, scalar), fed to the probe op."""
    rng = np.random.default_rng(7)
    b = GraphBuilder("mixed", {"b": "2", "a": "1", "unicodé": 'ünï "quoted"\n'})
    x = b.add_input("x", "float32", ("N", 3, None))
    extras = []
    for i, name in enumerate(sorted(DTYPES)):
        shape = [(), (0, 3), (7,), (3, 5), (1, 2, 3)][i % 5]
        arr = (rng.standard_normal(shape) * 50).astype(name)
        extras.append(b.add_const(f"c_{name}", arr))
    (y,) = b.add_node(
        PROBE_OP, [x, *extras], name="probe", domain=PROBE_DOMAIN, t=np.arange(5, dtype=np.int8), i=3, f=0.1, s="é"
    )
    b.mark_output(y)
    return b.build()


def write_bytes(g: Graph, path: str) -> bytes:
    """Write ``g`` to ``path`` and return the file's bytes."""
    write_q8(g, path)
    with open(path, "rb") as f:
        return f.read()


def float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_attr_equal(a: Any, b: Any, where: str) -> None:
    """Exact IR-type equality: same Python type, floats bit for bit (NaN == NaN), arrays byte for byte."""
    assert type(a) is type(b) or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)), (
        f"{where}: type {type(a).__name__} became {type(b).__name__}"
    )
    if isinstance(a, np.ndarray):
        assert_array_identical(a, b, where)
    elif isinstance(a, tuple):
        assert len(a) == len(b), f"{where}: {a!r} became {b!r}"
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_attr_equal(x, y, f"{where}[{k}]")
    elif isinstance(a, float):
        if math.isnan(a):
            assert math.isnan(b), f"{where}: nan became {b!r}"
        else:
            assert float_bits(a) == float_bits(b), f"{where}: {a!r} became {b!r}"
    else:
        assert a == b, f"{where}: {a!r} became {b!r}"


def assert_array_identical(a: np.ndarray, b: np.ndarray, where: str) -> None:
    assert a.dtype.name == b.dtype.name, f"{where}: dtype {a.dtype} became {b.dtype}"
    assert a.shape == b.shape, f"{where}: shape {a.shape} became {b.shape}"
    le = a.dtype.newbyteorder("<")
    assert np.ascontiguousarray(a, le).tobytes() == np.ascontiguousarray(b, le).tobytes(), f"{where}: values differ"


def assert_graph_equal(g: Graph, h: Graph) -> None:
    """Everything the IR holds survives, with exact types and bits."""
    assert h.name == g.name
    assert h.inputs == g.inputs
    assert h.outputs == g.outputs
    assert dict(h.metadata) == dict(g.metadata)
    assert dict(h.value_types) == dict(g.value_types)
    assert sorted(h.constants) == sorted(g.constants)
    for k in g.constants:
        assert_array_identical(g.constants[k], h.constants[k], f"constant {k!r}")
    assert len(h.nodes) == len(g.nodes)
    for n, m in zip(g.nodes, h.nodes, strict=True):
        assert (m.op_type, m.name, m.domain, m.inputs, m.outputs) == (n.op_type, n.name, n.domain, n.inputs, n.outputs)
        assert sorted(m.attrs) == sorted(n.attrs), f"node {n.name!r}: attrs {sorted(n.attrs)} -> {sorted(m.attrs)}"
        for k in n.attrs:
            assert_attr_equal(n.attrs[k], m.attrs[k], f"node {n.name!r} attr {k!r}")


# -- building files by hand, independently of convertmodel.serialize (docs/format.md section 1) ------------------
def split_file(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header JSON object, data section) of a well-formed file."""
    (header_len,) = struct.unpack_from("<Q", data, 16)
    header = json.loads(data[24 : 24 + header_len])
    data_start = (24 + header_len + 63) // 64 * 64
    return header, data[data_start:]


def pack_file(
    header: dict[str, Any] | bytes,
    data: bytes,
    *,
    major: int = 1,
    minor: int = 0,
    byte_order: int = 1,
    reserved: bytes = b"\0\0\0",
    header_len: int | None = None,
) -> bytes:
    """A file with a valid header CRC around ``header`` (a dict is JSON-encoded) and the data section."""
    hb = header if isinstance(header, bytes) else json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    n = len(hb) if header_len is None else header_len
    head = struct.pack("<4sHHB3s", b"CMQ8", major, minor, byte_order, reserved)
    len_field = struct.pack("<Q", n)
    crc = zlib.crc32(head + len_field + hb)
    pad = b"\0" * (-(24 + len(hb)) % 64)
    return head + struct.pack("<I", crc) + len_field + hb + pad + data
