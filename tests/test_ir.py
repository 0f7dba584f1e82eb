"""The IR itself: GraphBuilder, toposort, prune, rename_values, the checker, the Registry, dump,
and symbolic batch dims flowing through shape inference."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir import Graph, GraphBuilder, Node, TensorType, ValueInfo, check_graph, dump, prune, toposort
from convertmodel.ir.graph import rename_values
from convertmodel.ir.schema import OpKey, get_schema
from convertmodel.registry import Registry
from convertmodel.runtime import run_graph


def chain() -> GraphBuilder:
    """x -> Relu -> Sigmoid -> y, plus a dead branch (Tanh) and an unused constant."""
    b = GraphBuilder("chain")
    x = b.add_input("x", "float32", ("N", 3))
    (r,) = b.add_node("Relu", [x], name="relu")
    b.add_node("Tanh", [x], name="dead")
    b.add_const("unused", np.ones(3, np.float32))
    (y,) = b.add_node("Sigmoid", [r], ["y"], name="sig")
    b.mark_output(y)
    return b


def raw_graph(nodes: list[Node], outputs: tuple[str, ...] = ("y",), consts: dict | None = None) -> Graph:
    """A Graph made without the builder (no sorting, no checks) to feed the checker defects."""
    return Graph(
        "raw",
        (ValueInfo("x", TensorType("float32", (2, 3))),),
        tuple(ValueInfo(o, TensorType("float32")) for o in outputs),
        tuple(nodes),
        consts or {},
    )


# -- GraphBuilder -------------------------------------------------------------------------------------------


def test_builder_gives_unique_value_and_node_names() -> None:
    b = GraphBuilder()
    x = b.add_input("x", "float32", (1, 3))
    c1 = b.add_const("w", np.zeros(3, np.float32))
    c2 = b.add_const("w", np.ones(3, np.float32))
    assert c1 == "w" and c2 != c1
    (a,) = b.add_node("Add", [x, c1], name="add")
    (m,) = b.add_node("Add", [a, c2], name="add")
    assert a != m
    assert len({n.name for n in b.nodes}) == 2
    b.mark_output(m)
    g = b.build()
    check_graph(g)
    out = run_graph(g, {"x": np.full((1, 3), 2, np.float32)})[m]
    np.testing.assert_array_equal(out, np.full((1, 3), 3, np.float32))


def test_builder_rejects_duplicate_definitions() -> None:
    b = GraphBuilder()
    b.add_input("x", "float32", (1,))
    with pytest.raises(InvalidModelError, match="graph input 'x' is defined twice"):
        b.add_input("x", "float32", (1,))
    b.add_node("Relu", ["x"], ["y"], name="r1")
    with pytest.raises(InvalidModelError, match=r"value 'y' is defined twice \(second time by Relu 'r2'\)"):
        b.add_node("Relu", ["x"], ["y"], name="r2")


def test_builder_multi_output_names_and_none_attrs_are_dropped() -> None:
    b = GraphBuilder()
    x = b.add_input("x", "float32", (4, 6))
    outs = b.add_node("Split", [x], 3, name="sp", axis=1, num_outputs=None)
    assert len(set(outs)) == 3
    assert "num_outputs" not in b.nodes[-1].attrs
    for o in outs:
        b.mark_output(o)
    g = b.build()
    assert [g.value_types[o].shape for o in outs] == [(4, 2)] * 3


def test_unknown_dtype_is_rejected() -> None:
    with pytest.raises(InvalidModelError, match="unknown dtype 'complex64'"):
        TensorType("complex64", (1,))


# -- toposort / prune / rename_values -----------------------------------------------------------------------


def test_toposort_keeps_a_valid_order_and_fixes_a_wrong_one() -> None:
    a = Node("Relu", "a", ("x",), ("ya",))
    b = Node("Tanh", "b", ("x",), ("yb",))
    c = Node("Add", "c", ("ya", "yb"), ("y",))
    g = raw_graph([a, b, c])
    assert [n.name for n in toposort(g).nodes] == ["a", "b", "c"]
    # Out of order: c first. Independent a and b keep their relative order.
    g2 = raw_graph([c, b, a])
    assert [n.name for n in toposort(g2).nodes] == ["b", "a", "c"]


def test_toposort_names_the_nodes_of_a_cycle() -> None:
    p = Node("Relu", "p", ("q_out",), ("p_out",))
    q = Node("Relu", "q", ("p_out",), ("q_out",))
    with pytest.raises(InvalidModelError, match=r"nodes 'p', 'q' use values nobody defines or form a cycle"):
        toposort(raw_graph([p, q], outputs=("q_out",)))


def test_toposort_names_undefined_values() -> None:
    n = Node("Add", "adder", ("x", "ghost"), ("y",))
    with pytest.raises(InvalidModelError, match=r"'adder'.*ghost"):
        toposort(raw_graph([n]))


def test_prune_drops_dead_nodes_and_constants() -> None:
    b = chain()
    g = Graph(b.name, tuple(b.inputs), tuple(b.outputs), tuple(b.nodes), b.constants)
    assert [n.name for n in g.nodes] == ["relu", "dead", "sig"]
    p = prune(g)
    assert [n.name for n in p.nodes] == ["relu", "sig"]
    assert "unused" not in p.constants
    # build() prunes too.
    assert [n.name for n in chain().build().nodes] == ["relu", "sig"]


def test_rename_values_rewires_uses_and_keeps_output_names() -> None:
    g = chain().build()
    relu_out = g.node("relu").outputs[0]
    # Drop the Sigmoid: its output 'y' now comes from the Relu; the public name must survive.
    g2 = g.replace(infer=False, nodes=tuple(n for n in g.nodes if n.name != "sig"))
    g2 = rename_values(g2, {"y": relu_out}).replace()
    check_graph(g2)
    assert [o.name for o in g2.outputs] == ["y"]
    assert g2.producers()["y"].op_type == "Identity"
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    np.testing.assert_array_equal(run_graph(g2, {"x": x})["y"], np.maximum(x, 0))


def test_rename_values_follows_chains() -> None:
    n = Node("Relu", "r", ("a",), ("y",))
    g = raw_graph([n]).replace(infer=False)
    g2 = rename_values(g, {"a": "b", "b": "x"})
    assert g2.nodes[0].inputs == ("x",)


# -- check_graph --------------------------------------------------------------------------------------------


def test_check_graph_accepts_a_good_graph() -> None:
    check_graph(chain().build())


@pytest.mark.parametrize(
    ("nodes", "outputs", "message"),
    [
        (
            [Node("Relu", "a", ("x",), ("y",)), Node("Tanh", "b", ("x",), ("y",))],
            ("y",),
            r"value 'y' is defined twice \(again by Tanh 'b'\)",
        ),
        (
            [Node("Relu", "a", ("t",), ("y",)), Node("Tanh", "b", ("x",), ("t",))],
            ("y",),
            r"Relu 'a': input 't' is not defined before use",
        ),
        ([Node("Relu", "a", ("x",), ("y",), {"alpha": 0.1})], ("y",), r"Relu 'a': unknown attribute 'alpha'"),
        (
            [Node("LeakyRelu", "a", ("x",), ("y",), {"alpha": "big"})],
            ("y",),
            r"LeakyRelu 'a': attribute 'alpha' must be float",
        ),
        ([Node("Flatten", "a", ("x",), ("y",), {"axis": 1.5})], ("y",), r"attribute 'axis' must be int"),
        ([Node("Cast", "a", ("x",), ("y",))], ("y",), r"Cast 'a': required attribute 'to' is missing"),
        ([Node("Relu", "a", ("x",), ("y",))], ("z",), r"output 'z' is not defined"),
        (
            [Node("Relu", "a", ("x",), ("t",)), Node("Relu", "a", ("t",), ("y",))],
            ("y",),
            r"node name 'a' is used twice",
        ),
    ],
    ids=[
        "duplicate-value",
        "use-before-definition",
        "unknown-attribute",
        "wrong-attr-type-float",
        "wrong-attr-type-int",
        "missing-required",
        "undefined-output",
        "duplicate-node-name",
    ],
)
def test_check_graph_catches(nodes: list[Node], outputs: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidModelError, match=message):
        check_graph(raw_graph(nodes, outputs))


def test_check_graph_catches_a_constant_shadowing_an_input() -> None:
    with pytest.raises(InvalidModelError, match="value 'x' is defined twice \\(again by constant\\)"):
        check_graph(raw_graph([Node("Relu", "a", ("x",), ("y",))], consts={"x": np.zeros(1, np.float32)}))


def test_check_graph_catches_recorded_dtype_that_disagrees() -> None:
    g = chain().build()
    types = dict(g.value_types)
    types["y"] = TensorType("int64", ("N", 3))
    with pytest.raises(InvalidModelError, match="value 'y' recorded as int64"):
        check_graph(g.replace(infer=False, value_types=types))


def test_unknown_op_is_unsupported() -> None:
    with pytest.raises(UnsupportedOpError, match="NoSuchOp"):
        check_graph(raw_graph([Node("NoSuchOp", "a", ("x",), ("y",))]))


def test_wrong_input_count_is_rejected() -> None:
    with pytest.raises(InvalidModelError, match=r"Relu 'a': has 2 inputs, schema takes 1\.\.1"):
        check_graph(raw_graph([Node("Relu", "a", ("x", "x"), ("y",))]))


# -- Registry ----------------------------------------------------------------------------------------------


class _Key(NamedTuple):
    name: str
    version: int


class _Plain(NamedTuple):
    name: str


def test_registry_rejects_a_duplicate_key() -> None:
    r: Registry[_Key, str] = Registry("thing")
    r.add(_Key("a", 1), "first")
    with pytest.raises(KeyError, match=r"thing .* is registered twice"):
        r.register(_Key("a", 1))("second")
    assert r.get(_Key("a", 1)) == "first"


def test_registry_versioned_lookup_takes_newest_not_above() -> None:
    r: Registry[_Key, str] = Registry("thing")
    for v in (1, 7, 13):
        r.add(_Key("op", v), f"v{v}")
    r.add(_Key("other", 20), "other")
    assert r.lookup(_Key("op", 1)) == "v1"
    assert r.lookup(_Key("op", 6)) == "v1"
    assert r.lookup(_Key("op", 7)) == "v7"
    assert r.lookup(_Key("op", 12)) == "v7"
    assert r.lookup(_Key("op", 100)) == "v13"
    assert r.lookup(_Key("op", 0)) is None
    assert r.lookup(_Key("missing", 5)) is None
    assert r.get(_Key("op", 12)) is None  # exact only


def test_registry_unversioned_keys() -> None:
    r: Registry[_Plain, int] = Registry("plain")
    r.add(_Plain("a"), 1)
    assert r.lookup(_Plain("a")) == 1
    assert r.lookup(_Plain("b")) is None
    assert _Plain("a") in r and len(r) == 1 and list(r) == [_Plain("a")]


def test_op_schema_registry_keys_and_defaults() -> None:
    s = get_schema("LeakyRelu")
    assert (s.domain, s.op_type) == ("", "LeakyRelu")
    assert s.attr_map["alpha"].default == pytest.approx(0.01)
    assert get_schema("Concat").max_inputs() is None
    assert OpKey("", "Relu").version == 1


# -- dump and symbolic shapes ------------------------------------------------------------------------------


def _net() -> Graph:
    b = GraphBuilder("net")
    x = b.add_input("image", "float32", ("N", 3, 8, 8))
    w = b.add_const("w", np.zeros((4, 3, 3, 3), np.float32))
    (c,) = b.add_node("Conv", [x, w], name="conv", pads=[1, 1, 1, 1])
    (r,) = b.add_node("Relu", [c], name="relu")
    (f,) = b.add_node("Reshape", [r, b.add_const("shape", np.array([0, -1], np.int64))], name="flat")
    (s,) = b.add_node(
        "Slice",
        [
            f,
            b.add_const("st", np.array([0], np.int64)),
            b.add_const("en", np.array([10], np.int64)),
            b.add_const("ax", np.array([1], np.int64)),
        ],
        name="head",
    )
    (y,) = b.add_node("LeakyRelu", [s], ["logits"], name="act", alpha=0.2)
    b.mark_output(y)
    return b.build()


def test_symbolic_batch_propagates_through_inference() -> None:
    g = _net()
    check_graph(g)
    assert g.value_types[g.node("conv").outputs[0]].shape == ("N", 4, 8, 8)
    assert g.value_types[g.node("flat").outputs[0]].shape == ("N", 256)
    assert g.outputs[0].type == TensorType("float32", ("N", 10))
    # Any batch size runs and matches the symbolic shape.
    for n in (1, 3):
        out = run_graph(g, {"image": np.zeros((n, 3, 8, 8), np.float32)})["logits"]
        assert out.shape == (n, 10)


def test_dump_lists_inputs_nodes_constants_and_outputs() -> None:
    text = dump(_net())
    lines = text.splitlines()
    # params: w 4*3*3*3 = 108, shape 2, starts/ends/axes 1 each.
    assert lines[0] == "graph net (5 nodes, 5 constants, 113 params)"
    assert "  input  %image: float32[N,3,8,8]" in lines
    assert "  %relu: float32[N,4,8,8] = Relu(%conv)  # relu" in lines
    assert "  %logits: float32[N,10] = LeakyRelu(%head) alpha=0.2  # act" in lines
    assert any(
        line.startswith("  %conv: float32[N,4,8,8] = Conv(%image, $w:float32[4,3,3,3]) pads=[1,1,1,1]")
        for line in lines
    )
    assert lines[-1] == "  output %logits: float32[N,10]"
    assert str(_net()) == text
    short = dump(_net(), max_nodes=2).splitlines()
    assert "  ... 3 more nodes" in short


def test_executor_returns_requested_intermediates() -> None:
    """An intermediate asked for by name is kept although the executor frees values after their last use."""
    import numpy as np

    from convertmodel.errors import InvalidModelError
    from convertmodel.ir import GraphBuilder
    from convertmodel.runtime import Executor

    b = GraphBuilder("chain")
    x = b.add_input("x", "float32", (2, 3))
    (r,) = b.add_node("Relu", [x], name="r")
    (n,) = b.add_node("Neg", [r], name="n")
    b.mark_output(n)
    ex = Executor(b.build(), ("ref",))
    xv = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    out = ex.run({"x": xv}, outputs=["r", "n"])
    np.testing.assert_array_equal(out["r"], np.maximum(xv, 0))
    np.testing.assert_array_equal(out["n"], -np.maximum(xv, 0))
    import pytest

    with pytest.raises(InvalidModelError, match="no values named 'nope'"):
        ex.run({"x": xv}, outputs=["nope"])
