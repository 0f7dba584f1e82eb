"""Broadcasting elementwise ops, logic, reductions and ArgMax/ArgMin against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from tests.ops import check_against_ort, infer_node, run_and_infer

# Pairs of shapes covering broadcasting in both directions, scalars and size-1 axes on either side.
BROADCAST_SHAPES = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((2, 1, 4), (3, 1)),
    ((1, 3, 1), (2, 1, 5)),
    ((2, 3, 4), ()),
    ((), (3,)),
    ((3, 1, 1), (1, 5)),
]


def _operand(rng: np.random.Generator, shape: tuple[int, ...], op: str, dtype: str, second: bool) -> np.ndarray:
    if dtype == "float32":
        if op == "Pow":
            x = rng.uniform(0.5, 2.0, shape) if not second else rng.uniform(-2, 2, shape)
        elif op == "Div" and second:
            x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)
        else:
            x = rng.standard_normal(shape)
        return np.asarray(x, np.float32)
    if op in ("Div", "Mod") and second:
        return np.asarray(rng.integers(1, 7, shape) * rng.choice([-1, 1], shape), dtype)
    return np.asarray(rng.integers(-20, 20, shape), dtype)


@pytest.mark.parametrize(("a_shape", "b_shape"), BROADCAST_SHAPES)
@pytest.mark.parametrize(
    "op", ["Add", "Sub", "Mul", "Div", "Pow", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]
)
def test_binary_broadcasting_float32(
    op: str, a_shape: tuple[int, ...], b_shape: tuple[int, ...], rng: np.random.Generator
) -> None:
    a = _operand(rng, a_shape, op, "float32", False)
    b = _operand(rng, b_shape, op, "float32", True)
    if op in ("Equal", "GreaterOrEqual", "LessOrEqual"):
        # Make some entries equal so equality is exercised.
        b = np.where(rng.random(b.shape) < 0.5, b, np.float32(0.25)).astype(np.float32)
        a = np.where(rng.random(a.shape) < 0.5, a, np.float32(0.25)).astype(np.float32)
    check_against_ort(op, {"a": a, "b": b}, opset=17, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Mod", "Equal", "Greater", "Less"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_binary_integers(op: str, dtype: str, rng: np.random.Generator) -> None:
    # Integer Div truncates towards zero in ONNX; negative operands make that visible.
    a = _operand(rng, (3, 4), op, dtype, False)
    b = _operand(rng, (4,), op, dtype, True)
    check_against_ort(op, {"a": a, "b": b}, rtol=0, atol=0)


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_sign_conventions(fmod: int, rng: np.random.Generator) -> None:
    a = rng.uniform(-10, 10, (5, 4)).astype(np.float32) if fmod else rng.integers(-10, 10, (5, 4)).astype(np.int64)
    b = (
        (rng.uniform(1, 3, (4,)) * rng.choice([-1, 1], 4)).astype(a.dtype)
        if fmod
        else np.array([3, -3, 4, -7], np.int64)
    )
    check_against_ort("Mod", {"a": a, "b": b}, fmod=fmod, rtol=1e-5, atol=1e-5)


def test_pow_with_integer_exponent_keeps_float32(rng: np.random.Generator) -> None:
    a = rng.uniform(0.5, 2, (3, 4)).astype(np.float32)
    b = np.array([2, 3, -1, 0], np.int64)
    (got,) = check_against_ort("Pow", {"a": a, "b": b}, ["b"])
    assert got.dtype == np.float32


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", [[(2, 3, 4)], [(2, 3, 4), (4,)], [(3, 1), (1, 4), (2, 1, 1)], [(5,), (), (5,)]])
def test_variadic_broadcasting(op: str, shapes: list[tuple[int, ...]], rng: np.random.Generator) -> None:
    inputs = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    check_against_ort(op, inputs)


@pytest.mark.parametrize(
    ("c_shape", "x_shape", "y_shape"), [((2, 3), (2, 3), (2, 3)), ((3,), (2, 1), ()), ((2, 1, 4), (3, 1), (4,))]
)
def test_where_broadcasts_three_ways(
    c_shape: tuple[int, ...], x_shape: tuple[int, ...], y_shape: tuple[int, ...], rng: np.random.Generator
) -> None:
    inputs = {
        "c": rng.random(c_shape) < 0.5,
        "x": rng.standard_normal(x_shape).astype(np.float32),
        "y": rng.standard_normal(y_shape).astype(np.float32),
    }
    check_against_ort("Where", inputs)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic_ops(op: str, rng: np.random.Generator) -> None:
    check_against_ort(op, {"a": rng.random((3, 4)) < 0.5, "b": rng.random((4,)) < 0.5})


def test_not(rng: np.random.Generator) -> None:
    check_against_ort("Not", {"a": rng.random((3, 4)) < 0.5})


def test_binary_shapes_that_do_not_broadcast_are_rejected() -> None:
    with pytest.raises(InvalidModelError, match=r"Add 'node'.*do not broadcast"):
        infer_node("Add", {"a": (2, 3), "b": (4,)})


def test_binary_mixed_dtypes_are_rejected() -> None:
    with pytest.raises(InvalidModelError, match="one element type"):
        infer_node("Add", {"a": (2, 3), "b": np.zeros(3, np.int64)})


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("N", 3, 4, 4), (3, 1, 1), ("N", 3, 4, 4)),
        ((1, 3), ("N", 1), ("N", 3)),
        (("N", 3), (None, 3), ("N", 3)),
        ((None, 3), (1, 3), (None, 3)),
    ],
)
def test_binary_symbolic_shapes(a: tuple, b: tuple, expected: tuple) -> None:
    (t,) = infer_node("Mul", {"a": a, "b": b})
    assert t.shape == expected
    (c,) = infer_node("Less", {"a": a, "b": b})
    assert (c.shape, c.dtype) == (expected, "bool")


# -- reductions ------------------------------------------------------------------------------------------

REDUCE_CASES: list[tuple[list[int] | None, int, int]] = [
    # (axes or None for "input omitted", keepdims, noop_with_empty_axes)
    ([1], 1, 0),
    ([1], 0, 0),
    ([-1], 1, 0),
    ([0, 2], 0, 0),
    ([-3, -1], 1, 0),
    (None, 1, 0),
    (None, 0, 0),
    (None, 1, 1),
    ([], 0, 0),
    ([], 1, 1),
]


@pytest.mark.parametrize(
    "op", ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL2", "ReduceProd", "ReduceSumSquare"]
)
@pytest.mark.parametrize(("axes", "keepdims", "noop"), REDUCE_CASES)
@pytest.mark.parametrize("const_axes", [True, False])
def test_reductions_opset18(
    op: str, axes: list[int] | None, keepdims: int, noop: int, const_axes: bool, rng: np.random.Generator
) -> None:
    # Magnitudes near 1 keep ReduceProd tame; signs make ReduceL2's noop (|x|) visible.
    x = (rng.uniform(0.5, 1.5, (2, 3, 4)) * rng.choice([-1, 1], (2, 3, 4))).astype(np.float32)
    inputs = {"x": x, "axes": None if axes is None else np.array(axes, np.int64)}
    expected_kw: dict[str, Any] = {"keepdims": keepdims, "noop_with_empty_axes": noop}
    if const_axes or axes is None:
        check_against_ort(op, inputs, ["axes"], opset=18, rtol=1e-5, atol=1e-6, **expected_kw)
        return
    # Axes as a graph input: inference must not guess, the kernel must still be right.
    (got,), (t,) = run_and_infer(op, inputs, [], **expected_kw)
    (want,) = check_against_ort(op, inputs, ["axes"], opset=18, rtol=1e-5, atol=1e-6, **expected_kw)
    assert np.array_equal(got, want)
    if keepdims:
        assert t.shape is not None and len(t.shape) == x.ndim
        assert all(d is None or d == g for d, g in zip(t.shape, got.shape, strict=True))
    else:
        assert t.shape is None


def test_reduce_infers_symbolic_batch() -> None:
    (t,) = infer_node("ReduceMean", {"x": ("N", 3, 7, 7), "axes": np.array([2, 3], np.int64)}, keepdims=1)
    assert t.shape == ("N", 3, 1, 1)
    (t,) = infer_node("ReduceSum", {"x": ("N", 3, 7, 7), "axes": np.array([-1], np.int64)}, keepdims=0)
    assert t.shape == ("N", 3, 7)


def test_reduce_rejects_out_of_range_axes() -> None:
    with pytest.raises(InvalidModelError, match=r"ReduceMax 'node'.*axis 3 is out of range"):
        infer_node("ReduceMax", {"x": (2, 3, 4), "axes": np.array([3], np.int64)})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(("axis", "keepdims", "last"), [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (-2, 0, 1), (2, 1, 0)])
def test_arg_reductions(op: str, axis: int, keepdims: int, last: int, rng: np.random.Generator) -> None:
    # Few distinct values, so ties are common and select_last_index matters.
    x = rng.integers(0, 3, (3, 4, 5)).astype(np.float32)
    (got,) = check_against_ort(
        op, {"x": x}, opset=13, axis=axis, keepdims=keepdims, select_last_index=last, rtol=0, atol=0
    )
    assert got.dtype == np.int64


def test_arg_infers_symbolic_batch() -> None:
    (t,) = infer_node("ArgMax", {"x": ("N", 10)}, axis=1, keepdims=0)
    assert (t.shape, t.dtype) == (("N",), "int64")
