"""Gemm and MatMul against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from tests.helpers import assert_close, run_onnx_node
from tests.ops import infer_node, run_and_infer

# (A shape, B shape, C shape or None, attrs)
GEMM_CASES: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...] | None, dict[str, Any]]] = [
    ((3, 4), (4, 5), (5,), {}),
    ((3, 4), (5, 4), (5,), dict(transB=1)),
    ((4, 3), (4, 5), (3, 5), dict(transA=1)),
    ((4, 3), (5, 4), (1, 5), dict(transA=1, transB=1, alpha=0.5, beta=2.0)),
    ((3, 4), (4, 5), (3, 1), dict(alpha=-1.5)),
    ((3, 4), (4, 5), (1,), dict(beta=0.25)),
    ((3, 4), (4, 5), (), {}),
    ((3, 4), (4, 5), (1, 1), {}),
    ((3, 4), (4, 5), None, dict(alpha=2.0)),
    ((2, 64), (10, 64), (10,), dict(transB=1, beta=0.0)),
]


@pytest.mark.parametrize("c_const", [True, False])
@pytest.mark.parametrize("case", GEMM_CASES, ids=lambda c: f"{c[0]}x{c[1]}+{c[2]}-{c[3]}".replace(" ", ""))
def test_gemm_matches_onnxruntime(case: tuple[Any, ...], c_const: bool, rng: np.random.Generator) -> None:
    a_shape, b_shape, c_shape, attrs = case
    inputs = {
        "a": rng.standard_normal(a_shape, dtype=np.float32),
        "b": rng.standard_normal(b_shape, dtype=np.float32),
        "c": None if c_shape is None else rng.standard_normal(c_shape, dtype=np.float32),
    }
    consts = ["b", "c"] if c_const else []
    (expected,) = run_onnx_node("Gemm", inputs, consts, opset=13, **attrs)
    (got,), (t,) = run_and_infer("Gemm", inputs, consts, **attrs)
    assert t.shape == got.shape
    assert got.dtype == np.float32
    assert_close(got, expected)


MATMUL_CASES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 5)),
]


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_CASES)
def test_matmul_matches_onnxruntime(
    a_shape: tuple[int, ...], b_shape: tuple[int, ...], rng: np.random.Generator
) -> None:
    inputs = {"a": rng.standard_normal(a_shape, dtype=np.float32), "b": rng.standard_normal(b_shape, dtype=np.float32)}
    (expected,) = run_onnx_node("MatMul", inputs)
    (got,), (t,) = run_and_infer("MatMul", inputs)
    assert t.shape == got.shape == expected.shape
    assert_close(got, expected)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("N", 3, 4), (4, 5), ("N", 3, 5)),
        (("N", 4), (4,), ("N",)),
        ((4,), ("N", 4, 5), ("N", 5)),
        (("N", 1, 3, 4), ("B", 4, 2), ("N", "B", 3, 2)),
        ((None, 7), (7, 2), (None, 2)),
    ],
)
def test_matmul_symbolic_shape_inference(a: tuple[Any, ...], b: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    (t,) = infer_node("MatMul", {"a": a, "b": b})
    assert t.shape == expected


def test_gemm_symbolic_batch_shape_inference(rng: np.random.Generator) -> None:
    w = rng.standard_normal((10, 64), dtype=np.float32)
    bias = np.zeros(10, np.float32)
    (t,) = infer_node("Gemm", {"x": ("N", 64), "w": w, "b": bias}, transB=1)
    assert t.shape == ("N", 10)


@pytest.mark.parametrize(
    ("op", "inputs", "attrs", "fragment"),
    [
        ("Gemm", {"a": (3, 4), "b": (5, 6)}, {}, "inner dimensions"),
        ("Gemm", {"a": (3, 4), "b": (5, 4)}, {}, "inner dimensions"),
        ("Gemm", {"a": (3, 4, 1), "b": (4, 5)}, {}, "2-D"),
        ("Gemm", {"a": (3, 4), "b": (4, 5), "c": (2, 5)}, {}, "does not broadcast"),
        ("Gemm", {"a": (3, 4), "b": (4, 5), "c": (5, 1)}, {}, "does not broadcast"),
        ("Gemm", {"a": (3, 4), "b": (4, 5)}, {"transA": 1.5}, "transA"),
        ("MatMul", {"a": (3, 4), "b": (5, 6)}, {}, "inner dimensions"),
        ("MatMul", {"a": (2, 3, 4), "b": (3, 4, 5)}, {}, "batch dimensions"),
        ("MatMul", {"a": (3, 4), "b": (4, 5)}, {"alpha": 1.0}, "unknown attribute"),
    ],
)
def test_bad_inputs_raise_naming_the_node(
    op: str, inputs: dict[str, Any], attrs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidModelError, match=fragment) as info:
        infer_node(op, inputs, **attrs)
    assert "'node'" in str(info.value)
