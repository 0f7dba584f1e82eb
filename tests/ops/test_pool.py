"""MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool against onnxruntime."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from tests.helpers import assert_close, run_ir_node, run_onnx_node
from tests.ops import infer_node, run_and_infer

# (x shape, attrs) — each runs for MaxPool and AveragePool (x2 for count_include_pad in AveragePool).
POOL_CASES: list[tuple[tuple[int, ...], dict[str, Any]]] = [
    ((2, 3, 8, 8), dict(kernel_shape=[2, 2], strides=[2, 2])),
    ((1, 2, 7, 9), dict(kernel_shape=[3, 3], strides=[2, 2])),
    ((1, 2, 7, 9), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ((1, 2, 7, 8), dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 0, 1])),
    ((1, 2, 6, 6), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    # ceil mode whose last window would start in the end pad: onnxruntime drops it
    ((1, 1, 5, 5), dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1)),
    ((1, 1, 6, 7), dict(kernel_shape=[3, 3], strides=[3, 3], pads=[1, 2, 2, 1], ceil_mode=1)),
    # Caffe's usual "ceil, no pad" GoogLeNet/SqueezeNet pools
    ((1, 3, 13, 13), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ((1, 2, 9, 9), dict(kernel_shape=[3, 3], strides=[1, 1], auto_pad="SAME_UPPER")),
    ((1, 2, 8, 7), dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 2, 8, 7), dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
    ((1, 2, 8, 7), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID")),
    ((2, 3, 11), dict(kernel_shape=[3], strides=[2], pads=[1, 2])),
    ((2, 3, 11), dict(kernel_shape=[4], strides=[3], ceil_mode=1)),
    ((1, 2, 4, 5, 6), dict(kernel_shape=[2, 2, 3], strides=[2, 1, 2], pads=[0, 1, 1, 1, 0, 1])),
]

DILATED_CASES: list[tuple[tuple[int, ...], dict[str, Any]]] = [
    ((1, 2, 9, 10), dict(kernel_shape=[3, 3], dilations=[2, 2])),
    ((1, 2, 9, 10), dict(kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 3], pads=[1, 1, 0, 2])),
    ((1, 2, 10, 10), dict(kernel_shape=[2, 2], strides=[3, 3], dilations=[2, 2], ceil_mode=1)),
]


def _case_id(case: tuple[tuple[int, ...], dict[str, Any]]) -> str:
    shape, attrs = case
    return "x".join(map(str, shape)) + "-" + "-".join(f"{k}{v}" for k, v in attrs.items()).replace(" ", "")


@pytest.mark.parametrize("case", POOL_CASES + DILATED_CASES, ids=_case_id)
def test_max_pool_matches_onnxruntime(case: tuple[tuple[int, ...], dict[str, Any]], rng: np.random.Generator) -> None:
    shape, attrs = case
    x = rng.standard_normal(shape, dtype=np.float32)
    (expected,) = run_onnx_node("MaxPool", {"x": x}, **attrs)
    (got,), (t,) = run_and_infer("MaxPool", {"x": x}, **attrs)
    assert t.shape == got.shape, f"shape inference {t.shape} != kernel output {got.shape}"
    assert_close(got, expected)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_average_pool_matches_onnxruntime(
    case: tuple[tuple[int, ...], dict[str, Any]], count_include_pad: int, rng: np.random.Generator
) -> None:
    shape, attrs = case
    x = rng.standard_normal(shape, dtype=np.float32)
    (expected,) = run_onnx_node("AveragePool", {"x": x}, count_include_pad=count_include_pad, **attrs)
    (got,), (t,) = run_and_infer("AveragePool", {"x": x}, count_include_pad=count_include_pad, **attrs)
    assert t.shape == got.shape, f"shape inference {t.shape} != kernel output {got.shape}"
    assert_close(got, expected)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("case", DILATED_CASES, ids=_case_id)
def test_dilated_average_pool_matches_onnxruntime(
    case: tuple[tuple[int, ...], dict[str, Any]], count_include_pad: int, rng: np.random.Generator
) -> None:
    # AveragePool gained dilations in opset 19.
    shape, attrs = case
    x = rng.standard_normal(shape, dtype=np.float32)
    (expected,) = run_onnx_node("AveragePool", {"x": x}, opset=19, count_include_pad=count_include_pad, **attrs)
    (got,) = run_ir_node("AveragePool", {"x": x}, count_include_pad=count_include_pad, **attrs)
    assert_close(got, expected)


def test_caffe_average_divisor_formula(rng: np.random.Generator) -> None:
    """ceil_mode + count_include_pad divides by the window clipped to the padded extent (Caffe's AVE rule)."""
    x = rng.standard_normal((1, 1, 6, 6), dtype=np.float32)
    k, s, p = 3, 2, 1
    (got,) = run_ir_node(
        "AveragePool", {"x": x}, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=1, count_include_pad=1
    )
    # Caffe pooling_layer.cpp, written out: out = ceil((6 + 2 - 3) / 2) + 1 = 4, last window clipped.
    out = int(np.ceil((6 + 2 * p - k) / s)) + 1
    if (out - 1) * s >= 6 + p:
        out -= 1
    expected = np.zeros((out, out), np.float32)
    for i in range(out):
        for j in range(out):
            h0, w0 = i * s - p, j * s - p
            h1, w1 = min(h0 + k, 6 + p), min(w0 + k, 6 + p)
            size = (h1 - h0) * (w1 - w0)
            expected[i, j] = x[0, 0, max(h0, 0) : min(h1, 6), max(w0, 0) : min(w1, 6)].sum() / size
    assert_close(got[0, 0], expected)


@pytest.mark.parametrize("op", ["GlobalMaxPool", "GlobalAveragePool"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 9), (1, 2, 3, 4, 5)])
def test_global_pools_match_onnxruntime(op: str, shape: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape, dtype=np.float32)
    (expected,) = run_onnx_node(op, {"x": x})
    (got,), (t,) = run_and_infer(op, {"x": x})
    assert t.shape == got.shape
    assert_close(got, expected)


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER"), ("N", 3, "H", "W")),
        (dict(kernel_shape=[3, 3], strides=[2, 1], auto_pad="SAME_LOWER"), ("N", 3, None, "W")),
        (dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), ("N", 3, "H", "W")),
        (dict(kernel_shape=[2, 2], strides=[2, 2]), ("N", 3, None, None)),
    ],
)
def test_symbolic_spatial_shape_inference(attrs: dict[str, Any], expected: tuple[Any, ...]) -> None:
    (t,) = infer_node("MaxPool", {"x": ("N", 3, "H", "W")}, **attrs)
    assert t.shape == expected


@pytest.mark.parametrize(
    ("op", "attrs", "expected"),
    [
        ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2]), ("N", 3, 112, 112)),
        ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), ("N", 3, 112, 112)),
        ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2]), ("N", 3, 111, 111)),
        ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), ("N", 3, 112, 112)),
        ("GlobalAveragePool", {}, ("N", 3, 1, 1)),
        ("MaxPool", dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER"), ("N", 3, 224, 224)),
        ("GlobalMaxPool", {}, ("N", 3, 1, 1)),
    ],
)
def test_symbolic_batch_shape_inference(op: str, attrs: dict[str, Any], expected: tuple[Any, ...]) -> None:
    (t,) = infer_node(op, {"x": ("N", 3, 224, 224)}, **attrs)
    assert t.shape == expected
    assert t.dtype == "float32"


@pytest.mark.parametrize(
    ("op", "attrs", "fragment"),
    [
        ("MaxPool", dict(kernel_shape=[2]), "one entry per spatial axis"),
        ("MaxPool", dict(kernel_shape=[2, 2], strides=[0, 1]), ">= 1"),
        ("AveragePool", dict(kernel_shape=[2, 2], pads=[1, 1]), "4 entries"),
        ("AveragePool", dict(kernel_shape=[2, 2], pads=[2, 0, 0, 0]), "smaller than"),
        ("MaxPool", dict(kernel_shape=[2, 2], auto_pad="SAME"), "auto_pad"),
        ("MaxPool", dict(kernel_shape=[9, 9]), "larger than"),
        ("MaxPool", {}, "kernel_shape"),
        ("MaxPool", dict(kernel_shape=[2, 2], bogus=1), "bogus"),
    ],
)
def test_bad_attributes_raise_naming_the_node(op: str, attrs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidModelError, match=fragment) as info:
        infer_node(op, {"x": (1, 2, 8, 8)}, **attrs)
    assert "'node'" in str(info.value)


def test_maxpool_indices_output_is_rejected() -> None:
    with pytest.raises(UnsupportedOpError, match="Indices"):
        infer_node("MaxPool", {"x": (1, 2, 8, 8)}, n_outputs=2, kernel_shape=[2, 2])


@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("dilation", [1, 2])
def test_pool_out_dim_matches_onnxruntime_sweep(ceil_mode: int, dilation: int) -> None:
    """pool_out_dim against onnxruntime's MaxPool for every small size/kernel/stride/pad combination."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from convertmodel.ir.ops._util import pool_out_dim

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # ONNX shape inference disagrees in ceil mode (see pool_out_dim); silence it
    mismatches = []
    for k, s, pb, pe in itertools.product(range(1, 4), range(1, 4), range(3), range(3)):
        if max(pb, pe) >= k:
            continue
        node = helper.make_node(
            "MaxPool",
            ["x"],
            ["y"],
            kernel_shape=[k],
            strides=[s],
            pads=[pb, pe],
            ceil_mode=ceil_mode,
            dilations=[dilation],
        )
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "L"])],
            [onnx.ValueInfoProto(name="y")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        for size in range(1, 10):
            if size + pb + pe < dilation * (k - 1) + 1:
                continue
            (y,) = sess.run(None, {"x": np.zeros((1, 1, size), np.float32)})
            ours = pool_out_dim(size, k, s, pb, pe, dilation, bool(ceil_mode))
            if y.shape[2] != ours:
                mismatches.append((size, k, s, pb, pe, y.shape[2], ours))
    assert not mismatches, f"(size, k, stride, pad_b, pad_e, onnxruntime, ours): {mismatches[:10]}"
