"""Activations and other unary ops (plus PRelu, Clip, Dropout, Cast) against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from convertmodel.ir.ops.activation import IR_DTYPE_TO_ONNX, ONNX_DTYPE_CODES, onnx_dtype_name
from tests.helpers import assert_close
from tests.ops import check_against_ort, infer_node, run_and_infer

# (op, attrs, low, high): inputs are drawn uniformly from [low, high).
UNARY_CASES: list[tuple[str, dict[str, Any], float, float]] = [
    ("Relu", {}, -3, 3),
    ("LeakyRelu", {}, -3, 3),
    ("LeakyRelu", {"alpha": 0.3}, -3, 3),
    ("Sigmoid", {}, -30, 30),
    ("Tanh", {}, -5, 5),
    ("HardSigmoid", {}, -6, 6),
    ("HardSigmoid", {"alpha": 0.1, "beta": 0.3}, -6, 6),
    ("HardSwish", {}, -6, 6),
    ("Elu", {}, -4, 4),
    ("Elu", {"alpha": 0.5}, -4, 4),
    ("Selu", {}, -4, 4),
    ("Selu", {"alpha": 1.5, "gamma": 2.0}, -4, 4),
    ("Softplus", {}, -40, 40),
    ("Softsign", {}, -5, 5),
    ("Abs", {}, -5, 5),
    ("Neg", {}, -5, 5),
    ("Exp", {}, -5, 5),
    ("Log", {}, 0.01, 10),
    ("Sqrt", {}, 0, 10),
    ("Reciprocal", {}, 0.5, 4),
    ("Erf", {}, -3, 3),
    ("Floor", {}, -5, 5),
    ("Ceil", {}, -5, 5),
    ("Sign", {}, -5, 5),
    ("Identity", {}, -5, 5),
]


@pytest.mark.parametrize(
    ("op", "attrs", "low", "high"), UNARY_CASES, ids=lambda v: str(v) if isinstance(v, str) else ""
)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7,)])
def test_unary_matches_onnxruntime(
    op: str, attrs: dict[str, Any], low: float, high: float, shape: tuple[int, ...], rng: np.random.Generator
) -> None:
    x = rng.uniform(low, high, shape).astype(np.float32)
    # Exercise the exact branch points too (x == 0 for Relu/Elu/Sign, +-3 for HardSwish).
    flat = x.reshape(-1)
    flat[:3] = np.clip(np.array([0.0, 3.0, -3.0], np.float32), low, high)
    check_against_ort(op, {"x": x}, rtol=2e-5, atol=2e-6, **attrs)


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Sqrt", "Floor"])
def test_unary_keeps_float64(op: str, rng: np.random.Generator) -> None:
    x = rng.uniform(-3, 3, (3, 4))
    if op == "Sqrt":
        x = np.abs(x)
    check_against_ort(op, {"x": x}, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("x_shape", "slope_shape"),
    [
        ((2, 3, 4, 5), (3, 1, 1)),  # per channel, ONNX layout
        ((2, 3, 4, 5), (1,)),  # one shared slope
        ((2, 3, 4, 5), (5,)),  # numpy broadcasting on the last axis
        ((2, 3, 4, 5), (4, 5)),
        ((2, 3, 4, 5), (2, 3, 4, 5)),
        ((4, 6), (6,)),  # per channel for 2-D input
    ],
)
def test_prelu_slope_broadcasting(
    x_shape: tuple[int, ...], slope_shape: tuple[int, ...], rng: np.random.Generator
) -> None:
    inputs = {
        "x": rng.standard_normal(x_shape, dtype=np.float32),
        "slope": rng.uniform(0.05, 0.5, slope_shape).astype(np.float32),
    }
    check_against_ort("PRelu", inputs, ["slope"])


def test_prelu_one_dim_slope_is_per_channel(rng: np.random.Generator) -> None:
    # Caffe's PReLU stores a (C,) slope; ONNX would broadcast it on the last axis and fail.
    x = rng.standard_normal((2, 3, 4, 5), dtype=np.float32)
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    (got,), (t,) = run_and_infer("PRelu", {"x": x, "slope": slope}, ["slope"])
    expected = np.where(x >= 0, x, x * slope[None, :, None, None])
    assert t.shape == got.shape == x.shape
    assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("slope_shape", [(7,), (2, 1, 3, 4, 5), (2, 3, 4, 5)])
def test_prelu_rejects_a_slope_that_fits_nowhere(slope_shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidModelError, match=r"PRelu 'node'.*slope shape"):
        infer_node("PRelu", {"x": (2, 3, 1, 5), "slope": np.ones(slope_shape, np.float32)})


def test_prelu_keeps_symbolic_input_shape() -> None:
    (t,) = infer_node("PRelu", {"x": ("N", 3, None, None), "slope": np.ones((3, 1, 1), np.float32)})
    assert t.shape == ("N", 3, None, None)


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(-0.5, 0.5), (None, 0.5), (-0.5, None), (None, None), (0.7, 0.2)],  # min > max: everything becomes max
)
@pytest.mark.parametrize("const", [True, False])
def test_clip_optional_min_max_inputs(
    lo: float | None, hi: float | None, const: bool, rng: np.random.Generator
) -> None:
    inputs = {
        "x": rng.standard_normal((2, 3, 4), dtype=np.float32),
        "lo": None if lo is None else np.array(lo, np.float32),
        "hi": None if hi is None else np.array(hi, np.float32),
    }
    check_against_ort("Clip", inputs, ["lo", "hi"] if const else [], opset=13)


def test_clip_on_integers(rng: np.random.Generator) -> None:
    inputs = {
        "x": rng.integers(-100, 100, (5, 6)).astype(np.int32),
        "lo": np.array(-7, np.int32),
        "hi": np.array(9, np.int32),
    }
    check_against_ort("Clip", inputs, ["lo", "hi"], opset=13)


def test_clip_rejects_non_scalar_bounds() -> None:
    with pytest.raises(InvalidModelError, match="min must be a scalar"):
        infer_node("Clip", {"x": (2, 3), "lo": np.zeros(3, np.float32)})


def test_dropout_is_identity_with_true_mask(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    inputs = {"x": x, "ratio": np.array(0.3, np.float32)}
    y, mask = check_against_ort("Dropout", inputs, ["ratio"], n_outputs=2, opset=13)
    assert_close(y, x, rtol=0, atol=0)
    assert mask.dtype == np.bool_ and mask.all()


def test_dropout_without_mask_output(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4), dtype=np.float32)
    check_against_ort("Dropout", {"x": x}, opset=13)


@pytest.mark.parametrize(
    ("src", "to"),
    [
        ("float32", 7),
        ("float32", 6),
        ("float32", 3),
        ("float32", 2),
        ("float32", 11),
        ("float32", 10),
        ("float32", 9),
        ("int64", 1),
        ("int32", 7),
        ("bool", 1),
        ("uint8", 1),
        ("float64", 1),
    ],
)
def test_cast_matches_onnxruntime(src: str, to: int, rng: np.random.Generator) -> None:
    if src.startswith("float"):
        x = rng.uniform(-100, 100, (3, 5)).astype(src)
        if to in (2, 9):  # uint8 and bool: keep to a range every implementation agrees on
            x = np.abs(x)
        x.reshape(-1)[:2] = (0.0, 2.5)
    elif src == "bool":
        x = rng.integers(0, 2, (3, 5)).astype(bool)
    else:
        x = rng.integers(0, 120, (3, 5)).astype(src)
    (got,) = check_against_ort("Cast", {"x": x}, to=to, rtol=1e-3, atol=0)
    assert got.dtype == np.dtype(ONNX_DTYPE_CODES[to])


def test_onnx_dtype_codes_round_trip_and_reject_unknown() -> None:
    import onnx

    for code, name in ONNX_DTYPE_CODES.items():
        assert onnx.helper.tensor_dtype_to_np_dtype(code) == np.dtype(name)
        assert IR_DTYPE_TO_ONNX[name] == code
    with pytest.raises(InvalidModelError, match="ONNX data type 8"):
        onnx_dtype_name(8)  # STRING
    with pytest.raises(InvalidModelError, match=r"Cast 'node'.*ONNX data type 8"):
        infer_node("Cast", {"x": (2,)}, to=8)


def test_cast_requires_to() -> None:
    with pytest.raises(InvalidModelError, match="required attribute 'to'"):
        infer_node("Cast", {"x": (2,)})


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "HardSwish", "Clip", "Identity", "Erf"])
def test_symbolic_batch_passes_through(op: str) -> None:
    (t,) = infer_node(op, {"x": ("N", 3, None, 7)})
    assert t.shape == ("N", 3, None, 7)
    assert t.dtype == "float32"


def test_dropout_and_cast_infer_symbolic_shapes() -> None:
    y, mask = infer_node("Dropout", {"x": ("N", 5)}, n_outputs=2)
    assert (y.shape, y.dtype, mask.shape, mask.dtype) == (("N", 5), "float32", ("N", 5), "bool")
    (c,) = infer_node("Cast", {"x": ("N", 5)}, to=7)
    assert (c.shape, c.dtype) == (("N", 5), "int64")


def test_float32_is_not_upcast_by_attributes(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 4), dtype=np.float32)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("LeakyRelu", {"alpha": 0.1}),
        ("HardSigmoid", {"alpha": 0.3}),
        ("Elu", {"alpha": 0.2}),
        ("Selu", {}),
        ("HardSwish", {}),
        ("Softsign", {}),
        ("Reciprocal", {}),
    ]
    for op, attrs in cases:
        (got,), _ = run_and_infer(op, {"x": x}, **attrs)
        assert got.dtype == np.float32, op


def test_erf_float32_accuracy_against_math_erf() -> None:
    import math

    # Near 0 the series branch keeps relative accuracy; elsewhere A&S 7.1.26 stays within 1.5e-7.
    x = np.concatenate(
        [np.array([1e-7, -1e-4, 1e-2, 0.4999, 0.5, 0.5001], np.float32), np.linspace(-5, 5, 2001, dtype=np.float32)]
    )
    (got,), _ = run_and_infer("Erf", {"x": x})
    exact = np.array([math.erf(float(v)) for v in x])
    assert got.dtype == np.float32
    assert_close(got, exact, rtol=4e-7, atol=2e-7)
