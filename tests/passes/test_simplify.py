"""simplify and fold_constants: op counts before/after, numerics unchanged (pure rewrites)."""

from __future__ import annotations

import numpy as np

from convertmodel.ir import Graph, GraphBuilder, check_graph
from convertmodel.passes.fold_constants import fold_constants
from convertmodel.passes.simplify import simplify
from convertmodel.runtime import run_graph
from tests.helpers import assert_close


def _same_outputs(before: Graph, after: Graph, feeds: dict[str, np.ndarray], exact: bool = True) -> None:
    check_graph(after)
    assert [o.name for o in after.outputs] == [o.name for o in before.outputs]
    assert [i.name for i in after.inputs] == [i.name for i in before.inputs]
    a = run_graph(before, feeds, ("ref",))
    b = run_graph(after, feeds, ("ref",))
    for k in a:
        # Rewrites that reorder float32 sums (folded constants, permuted weight rows) may differ by
        # rounding: a few ulps of the output's magnitude.
        scale = float(np.abs(a[k]).max()) if a[k].size else 0.0
        assert_close(b[k], a[k], rtol=0 if exact else 1e-5, atol=0 if exact else 1e-5 * scale, what=k)


def _nchw_nhwc() -> tuple[list[int], list[int]]:
    return [0, 3, 1, 2], [0, 2, 3, 1]


# -- simplify ---------------------------------------------------------------------------------------
def test_identity_chain_removed_and_output_name_kept(rng):
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", ("N", 3))
    r = b.add_node("Relu", [x], ["r"], name="relu")[0]
    i1 = b.add_node("Identity", [r], ["i1"], name="id1")[0]
    b.add_node("Identity", [i1], ["y"], name="id2")
    b.add_node("Identity", [x], ["z"], name="id_in")  # graph input -> graph output: must stay
    b.mark_output("y")
    b.mark_output("z")
    g = b.build()
    s = simplify(g)
    assert g.op_counts() == {"Relu": 1, "Identity": 3}
    assert s.op_counts() == {"Relu": 1, "Identity": 1}
    assert s.producers()["y"].op_type == "Relu"  # the producer took the public name
    _same_outputs(g, s, {"x": rng.standard_normal((2, 3)).astype(np.float32)})


def test_dropout_cast_and_noop_reshape_removed(rng):
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (2, 3, 4))
    d = b.add_node("Dropout", [x], ["d"], name="drop")[0]
    c = b.add_node("Cast", [d], ["c"], name="cast", to=1)[0]  # float32 -> float32
    shp = b.add_const("shp", np.array([2, 3, 4], np.int64))
    r = b.add_node("Reshape", [c, shp], ["r"], name="reshape")[0]
    b.add_node("Sigmoid", [r], ["y"], name="sig")
    b.mark_output("y")
    g = b.build()
    s = simplify(g)
    assert s.op_counts() == {"Sigmoid": 1}
    assert s.nodes[0].inputs == ("x",)
    _same_outputs(g, s, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})


def test_inverse_transpose_pair_cancels(rng):
    to_nchw, to_nhwc = _nchw_nhwc()
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", ("N", 3, 5, 6))
    t1 = b.add_node("Transpose", [x], ["t1"], name="t1", perm=to_nhwc)[0]
    t2 = b.add_node("Transpose", [t1], ["t2"], name="t2", perm=to_nchw)[0]
    b.add_node("Relu", [t2], ["y"], name="relu")
    b.mark_output("y")
    g = b.build()
    s = simplify(g)
    assert g.op_counts() == {"Transpose": 2, "Relu": 1}
    assert s.op_counts() == {"Relu": 1}
    _same_outputs(g, s, {"x": rng.standard_normal((2, 3, 5, 6)).astype(np.float32)})


def test_transpose_pair_composes(rng):
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (2, 3, 4, 5))
    t1 = b.add_node("Transpose", [x], ["t1"], name="t1", perm=[1, 0, 3, 2])[0]
    b.add_node("Transpose", [t1], ["y"], name="t2", perm=[0, 2, 3, 1])
    b.mark_output("y")
    g = b.build()
    s = simplify(g)
    assert s.op_counts() == {"Transpose": 1}
    xv = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    expected = np.transpose(np.transpose(xv, [1, 0, 3, 2]), [0, 2, 3, 1])
    np.testing.assert_array_equal(run_graph(s, {"x": xv}, ("ref",))["y"], expected)
    _same_outputs(g, s, {"x": xv})


def test_transpose_moves_through_relu_and_cancels(rng):
    to_nchw, to_nhwc = _nchw_nhwc()
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (1, 2, 3, 4))
    t1 = b.add_node("Transpose", [x], ["t1"], name="t1", perm=to_nhwc)[0]
    r = b.add_node("LeakyRelu", [t1], ["r"], name="lrelu", alpha=0.2)[0]
    b.add_node("Transpose", [r], ["y"], name="t2", perm=to_nchw)
    b.mark_output("y")
    g = b.build()
    s = simplify(g)
    assert s.op_counts() == {"LeakyRelu": 1}
    assert s.nodes[0].inputs == ("x",) and s.nodes[0].outputs == ("y",)
    _same_outputs(g, s, {"x": rng.standard_normal((1, 2, 3, 4)).astype(np.float32)})


def test_transpose_pushed_through_bias_add_chain_and_cancelled(rng):
    """tf2onnx's NHWC BiasAdd between Transposes: the bias [C] is re-laid out to [1, C, 1, 1]."""
    to_nchw, to_nhwc = _nchw_nhwc()
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", ("N", 3, 4, 5))
    t1 = b.add_node("Transpose", [x], ["t1"], name="t1", perm=to_nhwc)[0]
    a = b.add_node("Add", [t1, b.add_const("bias", rng.standard_normal(3).astype(np.float32))], ["a"], name="add")[0]
    r = b.add_node("Relu", [a], ["r"], name="relu")[0]
    s = b.add_node("Sub", [b.add_const("k", np.float32(0.5)), r], ["s"], name="sub")[0]
    m = b.add_node("Mul", [s, b.add_const("scale", rng.standard_normal((5, 3)).astype(np.float32))], ["m"], name="mul")[
        0
    ]
    b.add_node("Transpose", [m], ["y"], name="t2", perm=to_nchw)
    b.mark_output("y")
    g = b.build()
    out = simplify(g)
    assert out.op_counts() == {"Add": 1, "Relu": 1, "Sub": 1, "Mul": 1}
    add = next(n for n in out.nodes if n.op_type == "Add")
    assert add.inputs[0] == "x" and out.constants[add.inputs[1]].shape == (1, 3, 1, 1)
    _same_outputs(g, out, {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)})


def test_transpose_not_pushed_when_nothing_cancels(rng):
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (1, 3, 4, 5))
    t1 = b.add_node("Transpose", [x], ["t1"], name="t1", perm=[0, 2, 3, 1])[0]
    b.add_node("Add", [t1, b.add_const("bias", rng.standard_normal(3).astype(np.float32))], ["y"], name="add")
    b.mark_output("y")
    g = b.build()
    assert simplify(g).op_counts() == {"Transpose": 1, "Add": 1}
    assert simplify(g).producers()["y"].op_type == "Add"


def test_transpose_before_flatten_matmul_folds_into_weight_rows(rng):
    """tf2onnx's Keras Flatten of an NCHW map: Transpose to NHWC, Reshape [0, -1], MatMul with a constant."""
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", ("N", 4, 3, 2))
    t = b.add_node("Transpose", [x], ["t"], name="t", perm=[0, 2, 3, 1])[0]
    r = b.add_node("Reshape", [t, b.add_const("shape", np.array([0, -1], np.int64))], ["r"], name="flatten")[0]
    w = rng.standard_normal((24, 5)).astype(np.float32)
    b.add_node("MatMul", [r, b.add_const("w", w)], ["y"], name="dense")
    b.mark_output("y")
    g = b.build()
    out = simplify(g)
    assert out.op_counts() == {"Reshape": 1, "MatMul": 1}
    w_new = out.constants[out.producers()["y"].inputs[1]]
    assert sorted(map(tuple, w_new)) == sorted(map(tuple, w))  # the same rows, reordered
    for n in (1, 3):
        _same_outputs(g, out, {"x": rng.standard_normal((n, 4, 3, 2)).astype(np.float32)}, exact=False)


def test_transpose_with_two_consumers_keeps_other_branch(rng):
    to_nchw, to_nhwc = _nchw_nhwc()
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (1, 2, 3, 4))
    t1 = b.add_node("Transpose", [x], ["t1"], name="t1", perm=to_nhwc)[0]
    b.add_node("Transpose", [t1], ["y"], name="back", perm=to_nchw)
    b.add_node("Relu", [t1], ["z"], name="relu")
    b.mark_output("y")
    b.mark_output("z")
    g = b.build()
    s = simplify(g)
    assert s.op_counts() == {"Transpose": 1, "Identity": 1, "Relu": 1}  # y = Identity(x) keeps its name
    _same_outputs(g, s, {"x": rng.standard_normal((1, 2, 3, 4)).astype(np.float32)})


def test_transpose_of_constant_is_folded(rng):
    c = rng.standard_normal((3, 4)).astype(np.float32)
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (2, 4, 3))
    cn = b.add_const("c", c)
    ct = b.add_node("Transpose", [cn], ["ct"], name="tc", perm=[1, 0])[0]
    b.add_node("Add", [x, ct], ["y"], name="add")
    b.mark_output("y")
    g = b.build()
    s = simplify(g)
    assert s.op_counts() == {"Add": 1}
    np.testing.assert_array_equal(s.constants[s.nodes[0].inputs[1]], c.T)
    _same_outputs(g, s, {"x": rng.standard_normal((2, 4, 3)).astype(np.float32)})


# -- fold_constants ---------------------------------------------------------------------------------
def test_constant_subgraph_is_evaluated(rng):
    a = rng.standard_normal((3,)).astype(np.float32)
    b_ = rng.standard_normal((3,)).astype(np.float32)
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", ("N", 3))
    s = b.add_node("Add", [b.add_const("a", a), b.add_const("b", b_)], ["s"], name="add_c")[0]
    e = b.add_node("Exp", [s], ["e"], name="exp_c")[0]
    b.add_node("Mul", [x, e], ["y"], name="mul")
    b.mark_output("y")
    g = b.build()
    f = fold_constants(g)
    assert g.op_counts() == {"Add": 1, "Exp": 1, "Mul": 1}
    assert f.op_counts() == {"Mul": 1}
    np.testing.assert_allclose(f.constants["e"], np.exp(a + b_), rtol=1e-6)
    _same_outputs(g, f, {"x": rng.standard_normal((2, 3)).astype(np.float32)}, exact=False)


def _tf2onnx_flatten(batch: object) -> Graph:
    """tf2onnx's Keras Flatten: Reshape(x, Cast(Concat(Slice(Cast(Gather(Shape(x), [0]), int32)), [-1])))."""
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", (batch, 2, 3, 4))
    shp = b.add_node("Shape", [x], ["shp"], name="shape")[0]
    g0 = b.add_node("Gather", [shp, b.add_const("idx", np.array([0], np.int64))], ["g0"], name="gather")[0]
    c32 = b.add_node("Cast", [g0], ["c32"], name="cast32", to=6)[0]
    sl = b.add_node(
        "Slice",
        [c32, b.add_const("st", np.array([0], np.int64)), b.add_const("en", np.array([1], np.int64))],
        ["sl"],
        name="slice",
    )[0]
    cat = b.add_node("Concat", [sl, b.add_const("m1", np.array([-1], np.int32))], ["cat"], name="concat", axis=0)[0]
    c64 = b.add_node("Cast", [cat], ["c64"], name="cast64", to=7)[0]
    b.add_node("Reshape", [x, c64], ["y"], name="reshape")
    b.mark_output("y")
    return b.build()


def test_symbolic_batch_shape_chain_folds_to_copy_dim(rng):
    g = _tf2onnx_flatten("N")
    f = fold_constants(g)
    assert len(g.nodes) == 7
    assert f.op_counts() == {"Reshape": 1}
    np.testing.assert_array_equal(f.constants[f.nodes[0].inputs[1]], [0, -1])
    assert f.outputs[0].type.shape == ("N", 24)
    for n in (1, 3):
        _same_outputs(g, f, {"x": rng.standard_normal((n, 2, 3, 4)).astype(np.float32)})


def test_static_shape_chain_folds_to_constant(rng):
    g = _tf2onnx_flatten(2)
    f = fold_constants(g)
    assert f.op_counts() == {"Reshape": 1}
    np.testing.assert_array_equal(f.constants[f.nodes[0].inputs[1]], [2, -1])
    _same_outputs(g, f, {"x": rng.standard_normal((2, 2, 3, 4)).astype(np.float32)})


def test_symbol_at_other_position_is_not_folded(rng):
    # Reshape (N, 6) -> (6, N): N is not the input's dim at position 1, so "copy dim" cannot express it.
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", ("N", 6))
    shp = b.add_node("Shape", [x], ["shp"], name="shape")[0]
    n = b.add_node("Gather", [shp, b.add_const("i0", np.array([0], np.int64))], ["n"], name="gather")[0]
    cat = b.add_node("Concat", [b.add_const("six", np.array([6], np.int64)), n], ["cat"], name="concat", axis=0)[0]
    b.add_node("Reshape", [x, cat], ["y"], name="reshape")
    b.mark_output("y")
    g = b.build()
    f = fold_constants(g)
    assert f.op_counts() == g.op_counts()
    _same_outputs(g, f, {"x": rng.standard_normal((3, 6)).astype(np.float32)})
