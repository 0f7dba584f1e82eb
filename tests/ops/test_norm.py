"""BatchNormalization, LRN, Softmax, LogSoftmax, InstanceNormalization, LpNormalization against
onnxruntime; ChannelAffine against a numpy formula."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from tests.helpers import assert_close, run_ir_node, run_onnx_node
from tests.ops import CM_DOMAIN, infer_node, run_and_infer


def _bn_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    c = shape[1]
    return {
        "x": rng.standard_normal(shape, dtype=np.float32),
        "scale": rng.standard_normal(c, dtype=np.float32),
        "b": rng.standard_normal(c, dtype=np.float32),
        "mean": rng.standard_normal(c, dtype=np.float32),
        "var": rng.uniform(0.1, 2.0, c).astype(np.float32),
    }


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (4, 6), (1, 3, 7), (1, 2, 3, 4, 2)])
@pytest.mark.parametrize("epsilon", [1e-5, 1e-3])
def test_batch_norm_matches_onnxruntime(shape: tuple[int, ...], epsilon: float, rng: np.random.Generator) -> None:
    inputs = _bn_inputs(rng, shape)
    consts = ["scale", "b", "mean", "var"]
    (expected,) = run_onnx_node("BatchNormalization", inputs, consts, opset=15, epsilon=epsilon)
    (got,), (t,) = run_and_infer("BatchNormalization", inputs, consts, epsilon=epsilon)
    assert t.shape == got.shape
    assert got.dtype == np.float32
    assert_close(got, expected)


def test_batch_norm_extra_outputs_are_typed_and_carry_the_statistics(rng: np.random.Generator) -> None:
    inputs = _bn_inputs(rng, (1, 3, 4, 4))
    consts = ["scale", "b", "mean", "var"]
    (_y, *stats), types = run_and_infer("BatchNormalization", inputs, consts, n_outputs=5)
    assert [t.shape for t in types] == [(1, 3, 4, 4)] + [(3,)] * 4
    for got, want in zip(stats, [inputs["mean"], inputs["var"]] * 2, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("attrs", "fragment"), [(dict(training_mode=1), "training_mode"), (dict(spatial=0), "spatial")]
)
def test_batch_norm_training_forms_are_rejected(attrs: dict[str, Any], fragment: str) -> None:
    c = np.ones(3, np.float32)
    with pytest.raises(UnsupportedOpError, match=fragment):
        infer_node("BatchNormalization", {"x": (1, 3, 4, 4), "s": c, "b": c, "m": c, "v": c}, **attrs)


def test_batch_norm_symbolic_batch_and_bad_channels() -> None:
    c = np.ones(3, np.float32)
    (t,) = infer_node("BatchNormalization", {"x": ("N", 3, 8, 8), "s": c, "b": c, "m": c, "v": c})
    assert t.shape == ("N", 3, 8, 8)
    with pytest.raises(InvalidModelError, match=r"input_var must have shape \(3,\)") as info:
        infer_node("BatchNormalization", {"x": ("N", 3, 8, 8), "s": c, "b": c, "m": c, "v": np.ones(4, np.float32)})
    assert "'node'" in str(info.value)


@pytest.mark.parametrize(
    ("shape", "axis", "use_scale", "use_b"),
    [
        ((2, 3, 4, 5), 1, True, True),
        ((2, 3, 4, 5), 1, True, False),
        ((2, 3, 4, 5), 1, False, True),
        ((4, 6), 1, True, True),
        ((2, 3, 4), -1, True, True),
        ((2, 3, 4, 5), 2, True, True),
        ((5, 2), 0, True, True),
    ],
)
def test_channel_affine_matches_formula(
    shape: tuple[int, ...], axis: int, use_scale: bool, use_b: bool, rng: np.random.Generator
) -> None:
    x = rng.standard_normal(shape, dtype=np.float32)
    c = shape[axis]
    scale = rng.standard_normal(c, dtype=np.float32) if use_scale else None
    b = rng.standard_normal(c, dtype=np.float32) if use_b else None
    (got,), (t,) = run_and_infer(
        "ChannelAffine", {"x": x, "scale": scale, "b": b}, ["scale", "b"], domain=CM_DOMAIN, axis=axis
    )
    # y[..., i, ...] = x[..., i, ...] * scale[i] + B[i] along the axis, written with an explicit moveaxis.
    xm = np.moveaxis(x, axis, -1).astype(np.float64)
    ym = xm * (1.0 if scale is None else scale) + (0.0 if b is None else b)
    expected = np.moveaxis(ym, -1, axis)
    assert t.shape == got.shape
    assert got.dtype == np.float32
    assert_close(got, expected)


@pytest.mark.parametrize(
    ("inputs", "attrs", "fragment"),
    [
        ({"x": (1, 3, 4, 4), "s": None, "b": None}, {}, "both are omitted"),
        ({"x": (1, 3, 4, 4), "s": np.ones(4, np.float32)}, {}, "scale must have shape"),
        ({"x": (1, 3, 4, 4), "s": np.ones(3, np.float32)}, {"axis": 4}, "axis 4 is out of range"),
        ({"x": (1, 3, 4, 4), "s": np.ones((3, 1), np.float32)}, {}, "scale must have shape"),
    ],
)
def test_channel_affine_bad_inputs(inputs: dict[str, Any], attrs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidModelError, match=fragment) as info:
        infer_node("ChannelAffine", inputs, domain=CM_DOMAIN, **attrs)
    assert "'node'" in str(info.value)


def test_channel_affine_symbolic_batch() -> None:
    (t,) = infer_node("ChannelAffine", {"x": ("N", 3, 5, 5), "s": np.ones(3, np.float32)}, domain=CM_DOMAIN)
    assert t.shape == ("N", 3, 5, 5)


def _lrn_formula(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0) -> np.ndarray:
    """ONNX LRN: square_sum[n, c] = sum of x[n, i]^2 for i in [c - floor((size-1)/2), c + ceil((size-1)/2)]."""
    x64 = x.astype(np.float64)
    sq = np.zeros_like(x64)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1], c + -(-(size - 1) // 2) + 1)
        sq[:, c] = (x64[:, lo:hi] ** 2).sum(axis=1)
    return x64 / (bias + alpha / size * sq) ** beta


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        ((2, 7, 5, 5), dict(size=5)),
        ((1, 8, 4, 3), dict(size=3, alpha=1e-2, beta=0.5, bias=2.0)),
        ((1, 6, 4, 4), dict(size=2, alpha=0.1)),
        ((1, 5, 3, 3), dict(size=4, alpha=0.3, beta=1.0)),
        ((1, 4, 6), dict(size=1, alpha=0.5)),
        ((1, 3, 2, 2), dict(size=7, alpha=0.2)),
    ],
)
def test_lrn_matches_onnxruntime(shape: tuple[int, ...], attrs: dict[str, Any], rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape, dtype=np.float32) * 3
    if attrs["size"] % 2 and len(shape) == 4:
        (expected,) = run_onnx_node("LRN", {"x": x}, **attrs)
    else:
        # onnxruntime's LRN takes only odd sizes and 4-D inputs (and onnx.reference's LRN loops over the
        # batch axis instead of channels), so the ONNX spec formula is written out here, channel by channel.
        expected = _lrn_formula(x, **attrs)
    (got,), (t,) = run_and_infer("LRN", {"x": x}, **attrs)
    assert t.shape == got.shape
    assert_close(got, expected)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((3, 10), -1), ((3, 10), 0), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), -1), ((2, 3, 4, 5), 2), ((7,), 0)],
)
def test_softmax_family_matches_onnxruntime_opset13(
    op: str, shape: tuple[int, ...], axis: int, rng: np.random.Generator
) -> None:
    x = rng.standard_normal(shape, dtype=np.float32) * 5
    (expected,) = run_onnx_node(op, {"x": x}, opset=13, axis=axis)
    (got,), (t,) = run_and_infer(op, {"x": x}, axis=axis)
    assert t.shape == got.shape
    assert_close(got, expected)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_default_axis_is_last(op: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    (expected,) = run_onnx_node(op, {"x": x}, opset=13)
    (got,) = run_ir_node(op, {"x": x})
    assert_close(got, expected)


def test_softmax_large_logits_stay_finite() -> None:
    x = np.array([[1000.0, 999.0, -1000.0]], np.float32)
    (got,) = run_ir_node("Softmax", {"x": x})
    e = np.exp(np.array([0.0, -1.0, -2000.0]))
    assert_close(got, (e / e.sum())[None, :])


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("Softmax", dict(axis=2)),
        ("LogSoftmax", dict(axis=-3)),
        ("LRN", dict(size=0)),
        ("LRN", {}),
        ("LpNormalization", dict(p=3)),
    ],
)
def test_bad_attributes_raise_naming_the_node(op: str, attrs: dict[str, Any]) -> None:
    with pytest.raises(InvalidModelError) as info:
        infer_node(op, {"x": (2, 5)} if op != "LRN" else {"x": (1, 3, 4, 4)}, **attrs)
    assert "'node'" in str(info.value)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 4, 9)])
def test_instance_norm_matches_onnxruntime(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    c = shape[1]
    inputs = {
        "x": rng.standard_normal(shape, dtype=np.float32) * 2 + 1,
        "scale": rng.standard_normal(c, dtype=np.float32),
        "b": rng.standard_normal(c, dtype=np.float32),
    }
    (expected,) = run_onnx_node("InstanceNormalization", inputs, ["scale", "b"], epsilon=1e-4)
    (got,), (t,) = run_and_infer("InstanceNormalization", inputs, ["scale", "b"], epsilon=1e-4)
    assert t.shape == got.shape
    assert_close(got, expected)


@pytest.mark.parametrize(("axis", "p"), [(-1, 2), (1, 1), (0, 2)])
def test_lp_norm_matches_onnxruntime(axis: int, p: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4, 5), dtype=np.float32)
    (expected,) = run_onnx_node("LpNormalization", {"x": x}, axis=axis, p=p)
    (got,) = run_ir_node("LpNormalization", {"x": x}, axis=axis, p=p)
    assert_close(got, expected)
