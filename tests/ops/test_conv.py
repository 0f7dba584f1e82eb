"""Conv and ConvTranspose against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from tests.helpers import assert_close, run_onnx_node
from tests.ops import infer_node, run_and_infer, run_onnx_reference

# (x shape, w shape, bias, attrs); W is (M, C/group, *k)
CONV_CASES: list[tuple[tuple[int, ...], tuple[int, ...], bool, dict[str, Any]]] = [
    ((2, 3, 8, 8), (4, 3, 3, 3), True, dict(pads=[1, 1, 1, 1])),
    ((1, 3, 9, 10), (5, 3, 3, 3), True, dict(strides=[2, 2])),
    ((1, 3, 9, 10), (5, 3, 3, 2), False, dict(strides=[2, 3], pads=[0, 1, 2, 0])),
    ((1, 2, 11, 11), (3, 2, 3, 3), True, dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
    ((1, 3, 12, 12), (4, 3, 3, 3), True, dict(dilations=[2, 3], strides=[2, 1], pads=[1, 0, 0, 2])),
    ((1, 4, 7, 7), (6, 2, 3, 3), True, dict(group=2, pads=[1, 1, 1, 1])),
    ((2, 6, 8, 8), (6, 1, 3, 3), True, dict(group=6, pads=[1, 1, 1, 1])),  # depthwise
    ((1, 4, 9, 9), (8, 1, 3, 3), True, dict(group=4, strides=[2, 2], pads=[0, 0, 1, 1])),  # depth multiplier 2
    ((1, 3, 10, 10), (2, 3, 1, 1), True, {}),
    ((1, 3, 9, 8), (4, 3, 3, 3), True, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 3, 9, 8), (4, 3, 4, 4), True, dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ((1, 3, 9, 8), (4, 3, 4, 2), True, dict(strides=[1, 1], auto_pad="SAME_UPPER")),
    ((1, 3, 9, 8), (4, 3, 3, 3), True, dict(strides=[2, 2], auto_pad="VALID")),
    ((2, 4, 20), (6, 4, 5), True, dict(strides=[2], pads=[2, 1])),  # 1-D
    ((1, 4, 17), (4, 2, 3), True, dict(group=2, dilations=[3])),
    ((1, 4, 16), (4, 1, 3), False, dict(group=4, auto_pad="SAME_LOWER", strides=[3])),
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 3), True, dict(strides=[1, 2, 2], pads=[0, 1, 1, 1, 0, 1])),  # 3-D
]


def _ids(case: tuple[Any, ...]) -> str:
    return f"x{case[0]}-w{case[1]}-{case[3]}".replace(" ", "")


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_conv_matches_onnxruntime(case: tuple[Any, ...], rng: np.random.Generator) -> None:
    x_shape, w_shape, bias, attrs = case
    inputs = {
        "x": rng.standard_normal(x_shape, dtype=np.float32),
        "w": rng.standard_normal(w_shape, dtype=np.float32),
        "b": rng.standard_normal(w_shape[0], dtype=np.float32) if bias else None,
    }
    (expected,) = run_onnx_node("Conv", inputs, ["w", "b"], **attrs)
    (got,), (t,) = run_and_infer("Conv", inputs, ["w", "b"], **attrs)
    assert t.shape == got.shape, f"shape inference {t.shape} != kernel output {got.shape}"
    assert got.dtype == np.float32
    assert_close(got, expected)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize(("strides", "dilations"), [([1, 1], [2, 2]), ([2, 2], [2, 3]), ([3, 1], [2, 1])])
def test_dilated_same_conv_matches_onnx_reference(
    auto_pad: str, strides: list[int], dilations: list[int], rng: np.random.Generator
) -> None:
    # onnxruntime refuses dilations with auto_pad SAME_*; onnx.reference implements the spec's rule
    # total_pad = (ceil(in / stride) - 1) * stride + dilation * (k - 1) + 1 - in.
    inputs = {
        "x": rng.standard_normal((1, 3, 10, 11), dtype=np.float32),
        "w": rng.standard_normal((4, 3, 3, 3), dtype=np.float32),
    }
    attrs: dict[str, Any] = dict(auto_pad=auto_pad, strides=strides, dilations=dilations)
    (expected,) = run_onnx_reference("Conv", inputs, **attrs)
    (got,), (t,) = run_and_infer("Conv", inputs, ["w"], **attrs)
    assert t.shape == got.shape
    assert_close(got, expected)


# (x shape, w shape, bias, attrs); W is (C, M/group, *k)
CONV_T_CASES: list[tuple[tuple[int, ...], tuple[int, ...], bool, dict[str, Any]]] = [
    ((1, 3, 5, 5), (3, 4, 3, 3), True, {}),
    ((2, 3, 5, 4), (3, 2, 3, 3), True, dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    ((1, 3, 5, 5), (3, 2, 3, 3), True, dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    ((1, 2, 4, 5), (2, 3, 4, 4), False, dict(strides=[2, 3], pads=[1, 0, 2, 1])),
    ((1, 4, 4, 4), (4, 3, 3, 3), True, dict(group=2, strides=[2, 2])),
    ((1, 4, 4, 4), (4, 1, 3, 3), True, dict(group=4, strides=[2, 2], pads=[1, 1, 0, 0])),
    ((1, 2, 5, 5), (2, 2, 3, 3), True, dict(dilations=[2, 2], pads=[1, 1, 1, 1])),
    ((1, 2, 5, 5), (2, 2, 3, 3), True, dict(strides=[3, 2], dilations=[2, 1], output_padding=[1, 0])),
    ((1, 3, 4, 4), (3, 2, 3, 3), True, dict(strides=[2, 2], output_shape=[9, 8])),
    ((1, 3, 4, 4), (3, 2, 3, 3), True, dict(strides=[2, 2], output_shape=[8, 7])),
    ((1, 3, 4, 5), (3, 2, 3, 3), True, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 3, 4, 5), (3, 2, 4, 4), True, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 3, 4, 5), (3, 2, 3, 3), True, dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ((2, 3, 7), (3, 2, 4), True, dict(strides=[2], pads=[1, 2])),  # 1-D
    ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), True, dict(strides=[2, 2, 2])),  # 3-D
]


@pytest.mark.parametrize("case", CONV_T_CASES, ids=_ids)
def test_conv_transpose_matches_onnxruntime(case: tuple[Any, ...], rng: np.random.Generator) -> None:
    x_shape, w_shape, bias, attrs = case
    group = attrs.get("group", 1)
    inputs = {
        "x": rng.standard_normal(x_shape, dtype=np.float32),
        "w": rng.standard_normal(w_shape, dtype=np.float32),
        "b": rng.standard_normal(w_shape[1] * group, dtype=np.float32) if bias else None,
    }
    (expected,) = run_onnx_node("ConvTranspose", inputs, ["w", "b"], **attrs)
    (got,), (t,) = run_and_infer("ConvTranspose", inputs, ["w", "b"], **attrs)
    assert t.shape == got.shape, f"shape inference {t.shape} != kernel output {got.shape}"
    assert_close(got, expected)


@pytest.mark.parametrize(
    ("op", "x", "w_shape", "attrs", "expected"),
    [
        ("Conv", ("N", 3, 224, 224), (64, 3, 3, 3), dict(pads=[1, 1, 1, 1]), ("N", 64, 224, 224)),
        ("Conv", ("N", 3, 224, 224), (64, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), ("N", 64, 112, 112)),
        ("Conv", ("N", 3, 225, 224), (8, 3, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER"), ("N", 8, 113, 112)),
        # a symbolic spatial size survives a size-preserving window, else becomes unknown
        ("Conv", ("N", 3, "H", "W"), (8, 3, 3, 3), dict(pads=[1, 1, 1, 1]), ("N", 8, "H", "W")),
        ("Conv", ("N", 3, "H", "W"), (8, 3, 3, 3), dict(pads=[1, 0, 1, 0]), ("N", 8, "H", None)),
        ("Conv", ("N", 3, "H", "W"), (8, 3, 3, 3), dict(strides=[2, 1], pads=[1, 1, 1, 1]), ("N", 8, None, "W")),
        ("ConvTranspose", ("N", 3, "H", 5), (3, 2, 3, 3), {}, ("N", 2, None, 7)),
        ("Conv", ("N", 3, "H", 9), (8, 3, 3, 3), dict(auto_pad="SAME_LOWER"), ("N", 8, "H", 9)),
        (
            "ConvTranspose",
            ("N", 3, "H", 5),
            (3, 2, 3, 3),
            dict(auto_pad="SAME_UPPER", strides=[1, 2]),
            ("N", 2, "H", 10),
        ),
        ("Conv", ("N", 3, "H", 9), (8, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2]), ("N", 8, None, 5)),
        ("Conv", ("N", 4, 30), (8, 2, 5), dict(group=2), ("N", 8, 26)),
        ("ConvTranspose", ("N", 3, 7, 7), (3, 5, 4, 4), dict(strides=[2, 2], pads=[1, 1, 1, 1]), ("N", 5, 14, 14)),
        ("ConvTranspose", ("N", 4, 7, 7), (4, 5, 3, 3), dict(group=2, strides=[2, 2]), ("N", 10, 15, 15)),
        ("ConvTranspose", ("N", 3, 7, 7), (3, 5, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER"), ("N", 5, 14, 14)),
    ],
)
def test_symbolic_batch_shape_inference(
    op: str, x: tuple[Any, ...], w_shape: tuple[int, ...], attrs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    (t,) = infer_node(op, {"x": x, "w": np.zeros(w_shape, np.float32)}, **attrs)
    assert t.shape == expected


@pytest.mark.parametrize(
    ("op", "x", "w_shape", "attrs", "fragment"),
    [
        ("Conv", (1, 4, 8, 8), (8, 3, 3, 3), {}, "channels"),
        ("Conv", (1, 4, 8, 8), (6, 1, 3, 3), dict(group=4), "not divisible by group"),
        ("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dict(pads=[1, 1]), "pads"),
        ("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dict(strides=[0, 1]), ">= 1"),
        ("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dict(kernel_shape=[3]), "entries"),
        ("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dict(kernel_shape=[5, 5]), "disagrees"),
        ("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dict(auto_pad="SAME"), "auto_pad"),
        ("Conv", (1, 3, 2, 2), (8, 3, 3, 3), {}, "larger than"),
        ("Conv", (1, 3, 8), (8, 3, 3, 3), {}, "same rank"),
        ("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dict(group=0), "group"),
        ("ConvTranspose", (1, 4, 8, 8), (3, 2, 3, 3), {}, "channels"),
        ("ConvTranspose", (1, 3, 8, 8), (3, 2, 3, 3), dict(group=2), "not divisible by group"),
        ("ConvTranspose", (1, 3, 8, 8), (3, 2, 3, 3), dict(output_padding=[1, 1]), "output_padding"),
        ("ConvTranspose", (1, 3, 2, 2), (3, 2, 3, 3), dict(pads=[2, 2, 2, 2]), "empty output"),
        ("ConvTranspose", (1, 3, 4, 4), (3, 2, 3, 3), dict(output_shape=[20, 20]), "larger than"),
    ],
)
def test_bad_attributes_raise_naming_the_node(
    op: str, x: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidModelError, match=fragment) as info:
        infer_node(op, {"x": x, "w": np.zeros(w_shape, np.float32)}, **attrs)
    assert "'node'" in str(info.value)


def test_conv_bias_shape_is_checked() -> None:
    with pytest.raises(InvalidModelError, match=r"B must have shape \(8,\)"):
        infer_node("Conv", {"x": (1, 3, 8, 8), "w": np.zeros((8, 3, 3, 3), np.float32), "b": np.zeros(7, np.float32)})


def test_conv_with_symbolic_batch_runs_any_batch(rng: np.random.Generator) -> None:
    """One planned graph with input (N, 3, 9, 9) runs batch 1 and 3; the cached geometry is reused."""
    from convertmodel.ir import GraphBuilder
    from convertmodel.runtime import Executor

    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    b = GraphBuilder("sym")
    x = b.add_input("x", "float32", ("N", 3, 9, 9))
    (y,) = b.add_node("Conv", [x, b.add_const("w", w)], name="node", strides=[2, 2], pads=[1, 1, 1, 1])
    b.mark_output(y)
    g = b.build()
    assert g.outputs[0].type.shape == ("N", 4, 5, 5)
    ex = Executor(g, ("ref",))
    for batch in (1, 3):
        xv = rng.standard_normal((batch, 3, 9, 9), dtype=np.float32)
        (expected,) = run_onnx_node("Conv", {"x": xv, "w": w}, ["w"], strides=[2, 2], pads=[1, 1, 1, 1])
        assert_close(ex.run({"x": xv})[y], expected)


def test_conv_batch_split_path_matches_onnxruntime(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large batches are convolved one sample at a time; force that path on a small input."""
    import convertmodel.runtime.kernels.ref.conv as conv_kernels

    monkeypatch.setattr(conv_kernels, "_MAX_COLS_BYTES", 0)
    inputs = {
        "x": rng.standard_normal((3, 4, 9, 8), dtype=np.float32),
        "w": rng.standard_normal((6, 2, 3, 3), dtype=np.float32),
        "b": rng.standard_normal(6, dtype=np.float32),
    }
    attrs: dict[str, Any] = dict(group=2, strides=[2, 1], pads=[1, 0, 0, 1])
    (expected,) = run_onnx_node("Conv", inputs, ["w", "b"], **attrs)
    (got,) = run_and_infer("Conv", inputs, ["w", "b"], **attrs)[0]
    assert_close(got, expected)
