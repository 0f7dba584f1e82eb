"""Round trips through .q8: every dtype, every attribute type bit-exact, symbolic dims, int8 QConv, hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convertmodel.ir import Graph, GraphBuilder, check_graph, find_schema
from convertmodel.ir.graph import DTYPES as IR_DTYPES
from convertmodel.serialize import read_header, read_q8, write_q8
from convertmodel.serialize.format import DTYPES
from tests.serialize.graphs import PROBE_DOMAIN, PROBE_OP, assert_graph_equal, mixed_graph, probe_op, write_bytes


@pytest.fixture(scope="module", autouse=True)
def _probe():
    with probe_op():
        yield


def _path(tmp_path, g: Graph, name: str = "g.q8") -> str:
    p = str(tmp_path / name)
    write_q8(g, p)
    return p


def test_every_dtype_round_trips(tmp_path):
    assert set(DTYPES) == set(IR_DTYPES)
    g = mixed_graph()
    h = read_q8(_path(tmp_path, g), verify_crc=True)
    check_graph(h)
    assert_graph_equal(g, h)


EXACT_FLOATS = [
    0.1,
    -0.0,
    3.0,
    1e-310,
    5e-324,
    1.7976931348623157e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    2.0**-149,
    float(np.float32(0.1)),
    1 / 3,
]


def test_every_attr_type_round_trips_exactly(tmp_path):
    b = GraphBuilder("attrs")
    x = b.add_input("x", "float32", (2, 3))
    outs = []
    for k, f in enumerate(EXACT_FLOATS):
        (y,) = b.add_node(PROBE_OP, [x], name=f"p{k}", domain=PROBE_DOMAIN, f=f, floats=(f, -f, 1.0))
        outs.append(y)
    (y,) = b.add_node(
        PROBE_OP,
        [x],
        name="ints",
        domain=PROBE_DOMAIN,
        i=-(2**63),
        ints=(2**63 - 1, 0, -5),
        s='quote " backslash \\ \u2603 \x00',
        strings=("a", "", "\u00e9"),
        f=7,
        t=np.array([[-128, 127]], np.int8),
        t2=np.float32(2.5) * np.ones((2, 2), np.float32),
    )
    outs.append(y)
    (y,) = b.add_node(PROBE_OP, [x], name="empty", domain=PROBE_DOMAIN, ints=(), strings=("x",), s="")
    outs.append(y)
    for o in outs:
        b.mark_output(o)
    g = b.build()
    assert isinstance(g.node("ints").attrs["f"], int)  # an int given to a FLOAT attr stays an int in the IR
    h = read_q8(_path(tmp_path, g), verify_crc=True)
    check_graph(h)
    assert_graph_equal(g, h)
    assert h.node("ints").attrs["t"].dtype == np.int8


def test_symbolic_and_unknown_dims(tmp_path):
    b = GraphBuilder("dims")
    x = b.add_input("x", "float32", ("batch", 3, None, "W"))
    u = b.add_input("u", "float16", None)
    (y,) = b.add_node("Relu", [x], name="r")
    (z,) = b.add_node("Relu", [u], name="r2")
    b.mark_output(y, "float32", ("batch", 3, None, "W"))
    b.mark_output(z, "float16", None)
    g = b.build()
    h = read_q8(_path(tmp_path, g))
    assert h.inputs[0].type.shape == ("batch", 3, None, "W")
    assert h.inputs[1].type.shape is None
    assert_graph_equal(g, h)


def test_qconv_int8_node_round_trips(tmp_path):
    if find_schema("QConv", "convertmodel") is None:
        pytest.skip("QConv schema (convertmodel/ir/ops/quantized.py) is not registered yet")
    rng = np.random.default_rng(3)
    b = GraphBuilder("q", {"quant.scheme": "bigdl-local-window", "quant.input_levels": "255"})
    x = b.add_input("x", "float32", ("N", 3, 8, 8))
    wq = b.add_const("wq", rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8))
    scale = b.add_const("w_scale", (rng.random(4) / 127).astype(np.float32))
    wsum = b.add_const("w_sum", rng.standard_normal(4).astype(np.float32))
    bias = b.add_const("B", rng.standard_normal(4).astype(np.float32))
    (y,) = b.add_node(
        "QConv",
        [x, wq, scale, wsum, bias],
        name="qconv1",
        domain="convertmodel",
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
        strides=[1, 1],
        dilations=[1, 1],
        group=1,
        input_levels=255,
        activation="Relu",
    )
    b.mark_output(y)
    g = b.build()
    check_graph(g)
    p = _path(tmp_path, g)
    h = read_q8(p, verify_crc=True)
    check_graph(h)
    assert_graph_equal(g, h)
    assert h.constants["wq"].dtype == np.int8 and h.constants["w_scale"].dtype == np.float32
    assert {t["dtype"] for t in read_header(p)["tensors"]} == {"int8", "float32"}
    # The loaded int8 model computes exactly what the in-memory one does (same kernels, same bytes).
    from convertmodel.runtime import run_graph

    xs = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(h, {"x": xs})[y], run_graph(g, {"x": xs})[y])


def test_custom_domain_channel_affine_round_trips(tmp_path):
    if find_schema("ChannelAffine", "convertmodel") is None:
        pytest.skip("ChannelAffine schema is not registered yet")
    b = GraphBuilder("ca")
    x = b.add_input("x", "float32", ("N", 2, 4, 4))
    s = b.add_const("s", np.array([2.0, -1.0], np.float32))
    (y,) = b.add_node("ChannelAffine", [x, s, ""], name="aff", domain="convertmodel", axis=1)
    b.mark_output(y)
    g = b.build()
    h = read_q8(_path(tmp_path, g), verify_crc=True)
    check_graph(h)
    assert_graph_equal(g, h)
    assert h.nodes[0].inputs == ("x", "s", "")


_names = st.text(alphabet="abcxyz_/:é", min_size=1, max_size=6)
_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_attr_values = {
    "i": st.integers(-(2**63), 2**63 - 1),
    "f": _floats,
    "s": st.text(max_size=8),
    "ints": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4).map(tuple),
    "floats": st.lists(_floats, min_size=1, max_size=4).map(tuple),
    "strings": st.lists(st.text(max_size=4), max_size=3).map(tuple),
}


@st.composite
def _arrays(draw):
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = draw(st.binary(min_size=n, max_size=n))
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
    if dtype == "bool":
        arr = np.asarray(arr.view(np.uint8) % 2 == 1)
    return arr


@st.composite
def _graphs(draw):
    meta = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
    b = GraphBuilder(draw(st.text(max_size=5)), meta)
    dims = draw(st.lists(st.one_of(st.integers(0, 9), st.sampled_from(["N", "H", ""]), st.none()), max_size=3))
    x = b.add_input("x", draw(st.sampled_from(sorted(DTYPES))), tuple(dims))
    for _ in range(draw(st.integers(1, 3))):
        attrs = {name: draw(s) for name, s in _attr_values.items() if draw(st.booleans())}
        for tname in ("t", "t2"):
            if draw(st.booleans()):
                attrs[tname] = draw(_arrays())
        consts = [b.add_const(draw(_names), draw(_arrays())) for _ in range(draw(st.integers(0, 2)))]
        (x,) = b.add_node(PROBE_OP, [x, *consts], name=draw(_names), domain=PROBE_DOMAIN, **attrs)
    b.mark_output(x)
    return b.build()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(g=_graphs())
def test_hypothesis_round_trip(tmp_path, g):
    p = str(tmp_path / "h.q8")
    a = write_bytes(g, p)
    h = read_q8(p, verify_crc=True)
    check_graph(h)
    assert_graph_equal(g, h)
    assert write_bytes(h, str(tmp_path / "h2.q8")) == a  # re-saving a loaded graph gives the same bytes
