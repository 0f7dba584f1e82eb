"""Native fp32 kernels against the numpy reference and onnxruntime, on every fp32 ISA unit this machine has.

Tolerance: float32 sums of up to a few thousand products in a different order (FMA, k blocks,
fused epilogues), so |native - ref| <= 1e-4 * |ref| + 1e-4 * sqrt(K) on unit-normal data; pooling
maxima are exact. Hostile geometry must raise a typed error before any memory is touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from convertmodel.ir import GraphBuilder, check_graph
from convertmodel.ir.graph import TensorType, ValueInfo
from convertmodel.runtime import Executor, KernelContext
from convertmodel.runtime.native import fp32
from tests.helpers import assert_close, run_ir_node, run_onnx_node, single_node_graph

pytestmark = pytest.mark.native
NATIVE = ("native", "ref")


def fp32_isa_params() -> list[Any]:
    out = []
    for name in fp32.ALL_ISAS:
        marks = []
        if not fp32.available():
            marks.append(pytest.mark.skip(reason="native extension not built"))
        elif name not in fp32.compiled_isas():
            marks.append(pytest.mark.skip(reason=f"fp32 {name} kernels not compiled into this build"))
        elif name not in fp32.available_isas():
            marks.append(pytest.mark.skip(reason=f"this CPU does not support {name} ({fp32.available_isas()})"))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.fixture(params=fp32_isa_params())
def isa(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CONVERTMODEL_ISA", request.param)
    assert fp32.isa() == request.param
    return str(request.param)


@pytest.fixture(params=["auto", "direct", "packed", "cvec"])
def conv_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The convolution's path: ``direct`` reads the (padded or phase-split) input in place (auto: up to 128
    channels per group), ``packed`` copies im2col panels (auto: wider layers, strided 1x1, K < 32), ``cvec``
    vectorizes over channels (auto: narrow maps, on units that have it; elsewhere it runs ``direct``)."""
    monkeypatch.setenv("CONVERTMODEL_FP32_CONV", request.param)
    return str(request.param)


def run_both(op: str, inputs: dict[str, Any], consts: tuple[str, ...], **attrs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(native, ref) outputs of one node; asserts the native kernel really ran."""
    g, feeds, outs = single_node_graph(op, inputs, consts, **attrs)
    ex = Executor(g, NATIVE)
    assert ex.backend_counts() == {"native": 1}
    return ex.run(feeds)[outs[0]], run_ir_node(op, inputs, consts, **attrs)[0]


CONVS = [
    # (N, C, H, W, M, k, strides, pads, dilations, group)
    (2, 3, 9, 11, 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (3, 16, 28, 28, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 8, 10, 13, 12, (3, 2), (2, 1), (0, 1, 2, 0), (2, 1), 2),  # grouped, asymmetric pads, dilation
    (2, 64, 7, 7, 128, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # 1x1: the input is the B matrix
    (2, 16, 14, 14, 24, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # strided 1x1 (ResNet downsample)
    (1, 3, 23, 23, 9, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),  # ResNet stem
    (4, 16, 28, 28, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),  # depthwise
    (2, 32, 15, 16, 32, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), 32),  # depthwise, stride 2, TF SAME pads
    (2, 8, 15, 15, 16, (3, 3), (2, 3), (2, 0, 1, 1), (2, 1), 8),  # depthwise channel multiplier 2
    (1, 4, 6, 6, 8, (5, 5), (1, 1), (4, 4, 4, 4), (2, 2), 1),  # pads larger than the kernel
    (3, 300, 5, 5, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # K = 2700: several k blocks
    (2, 16, 11, 37, 24, (3, 3), (1, 1), (1, 0, 2, 1), (1, 1), 2),  # grouped, stride 1: panels cross rows
    (1, 20, 9, 9, 136, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # 136 channels: packed on auto, partial tiles
    (2, 40, 3, 70, 9, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1), 1),  # one-row panels, a wide row, partial panel
    (2, 6, 17, 19, 10, (3, 3), (3, 4), (1, 2, 0, 1), (1, 2), 1),  # strides 3 x 4: 12 phase planes
    (1, 4, 16, 16, 8, (2, 2), (5, 5), (0, 0, 0, 0), (1, 1), 1),  # stride 5: packed on every path
    (1, 12, 120, 6, 40, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # narrow and tall: cvec row blocks, 40 channels
    (2, 512, 7, 7, 72, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # 1x1 on 49 pixels, K = 512: cvec on auto
    (1, 40, 29, 29, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # rows of 29: three cvec segments
    (2, 24, 15, 15, 48, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 3),  # grouped, strided, 16 channels a group
    (2, 8, 6, 81, 20, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # strided 1x1, rows of 41: vector stride-2 packing
    (2, 8, 7, 75, 12, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),  # strided 3x3 on a wide odd row
    (1, 4, 9, 70, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4),  # depthwise stride 2, rows of 35: vectors + tail
    (2, 3, 20, 37, 6, (5, 5), (1, 1), (2, 2, 2, 2), (1, 2), 3),  # depthwise multiplier 2, dilated, flat rows
    (3, 33, 7, 7, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 33),  # depthwise 7x7, odd channel count
    (2, 17, 15, 13, 17, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 17),  # depthwise stride 2, begin pads: masked loads
    (1, 6, 14, 14, 6, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), 6),  # depthwise 14 -> 7 (MobileNet dw3's shape)
    (2, 5, 11, 19, 5, (3, 3), (1, 2), (1, 0, 1, 2), (1, 1), 5),  # depthwise strides 1 x 2: two phase planes
    (1, 5, 12, 9, 10, (3, 3), (2, 1), (0, 1, 2, 1), (1, 1), 5),  # strides 2 x 1, multiplier 2
    (1, 4, 21, 40, 4, (3, 3), (2, 2), (2, 2, 2, 2), (2, 2), 4),  # depthwise stride 2, dilation 2, wide rows
    (2, 3, 3, 3, 3, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 3),  # depthwise stride 2 on a 3x3 map
    (1, 2, 8, 8, 2, (3, 3), (2, 2), (9, 9, 9, 9), (1, 1), 2),  # depthwise stride 2, pads wider than the map
    (0, 4, 8, 8, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # empty batch
    (0, 6, 8, 8, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 6),  # empty batch, depthwise
]


@pytest.mark.parametrize("geo", CONVS, ids=lambda g: "n{}c{}h{}w{}m{}k{}s{}p{}d{}g{}".format(*g))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_conv_matches_ref_and_onnxruntime(
    isa: str, conv_path: str, geo: tuple, bias: bool, rng: np.random.Generator
) -> None:
    n, c, h, w, m, k, s, p, d, g = geo
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((m, c // g, *k), dtype=np.float32)
    b = rng.standard_normal(m, dtype=np.float32) if bias else None
    attrs = {"strides": s, "pads": p, "dilations": d, "group": g, "kernel_shape": k}
    inputs = {"X": x, "W": wt, "B": b}
    got, ref = run_both("Conv", inputs, ("W", "B"), **attrs)
    tol = 1e-4 * np.sqrt(c // g * k[0] * k[1])
    assert_close(got, ref, rtol=1e-4, atol=tol, what=f"{isa} vs ref")
    if n > 0:
        pytest.importorskip("onnxruntime")
        (want,) = run_onnx_node("Conv", {k_: v for k_, v in inputs.items() if v is not None}, ("W", "B"), **attrs)
        assert_close(got, want, rtol=1e-4, atol=tol, what=f"{isa} vs onnxruntime")


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("m", [40, 136])
def test_conv_threads_agree(isa: str, conv_path: str, threads: int, m: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 16, 12, 12), dtype=np.float32)
    w = rng.standard_normal((m, 16, 3, 3), dtype=np.float32)
    g, feeds, outs = single_node_graph("Conv", {"X": x, "W": w}, ("W",), pads=(1, 1, 1, 1))
    one = Executor(g, NATIVE, threads=1).run(feeds)[outs[0]]
    many = Executor(g, NATIVE, threads=threads).run(feeds)[outs[0]]
    np.testing.assert_array_equal(one, many)  # the same sums in the same order on every thread count


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("s", [1, 2])
def test_depthwise_threads_and_nan(isa: str, threads: int, s: int, rng: np.random.Generator) -> None:
    """Depthwise strides 1 and 2 (phase planes, flat outputs): the same bits on 1 and 2 threads, and a NaN
    input gives NaN exactly where the numpy reference has one (the rest stays close)."""
    x = rng.standard_normal((5, 48, 14, 14), dtype=np.float32)
    x[1, 3, 0, 0] = x[4, 47, 13, 6] = x[2, 10, 7, 7] = np.nan
    w = rng.standard_normal((48, 1, 3, 3), dtype=np.float32)
    attrs = {"group": 48, "strides": (s, s), "pads": (1, 1, 1, 1), "kernel_shape": (3, 3)}
    g, feeds, outs = single_node_graph("Conv", {"X": x, "W": w}, ("W",), **attrs)
    one = Executor(g, NATIVE, threads=1).run(feeds)[outs[0]]
    many = Executor(g, NATIVE, threads=threads).run(feeds)[outs[0]]
    np.testing.assert_array_equal(one, many)
    ref = run_ir_node("Conv", {"X": x, "W": w}, ("W",), **attrs)[0]
    np.testing.assert_array_equal(np.isnan(many), np.isnan(ref))
    assert np.isnan(many).any()
    ok = ~np.isnan(ref)
    assert_close(many[ok], ref[ok], rtol=1e-4, atol=3e-4, what=f"{isa} depthwise vs ref")


def fused_graph(m: int, clip: bool) -> tuple[Any, list[str]]:
    """Conv -> Mul (per channel) -> Add (per channel) -> Relu or Clip, as tf2onnx writes BatchNorm."""
    rng = np.random.default_rng(7)
    b = GraphBuilder("fused")
    x = b.add_input("X", "float32", ("N", 8, 10, 10))
    w = b.add_const("W", rng.standard_normal((m, 8, 3, 3), dtype=np.float32))
    (y,) = b.add_node("Conv", [x, w], 1, name="conv", pads=(1, 1, 1, 1))
    (y2,) = b.add_node("Mul", [y, b.add_const("s", rng.random((1, m, 1, 1), dtype=np.float32))], 1, name="mul")
    (y3,) = b.add_node("Add", [b.add_const("t", rng.standard_normal((m, 1, 1), dtype=np.float32)), y2], 1, name="add")
    if clip:
        lo, hi = b.add_const("lo", np.array(-0.5, np.float32)), b.add_const("hi", np.array(6.0, np.float32))
        (y4,) = b.add_node("Clip", [y3, lo, hi], 1, name="act")
    else:
        (y4,) = b.add_node("Relu", [y3], 1, name="act")
    b.mark_output(y4)
    g = b.build()
    check_graph(g)
    return g, [y, y2, y3, y4]


@pytest.mark.parametrize("clip", [False, True], ids=["relu", "clip"])
def test_fused_epilogue_matches_unfused_ref(isa: str, clip: bool, rng: np.random.Generator) -> None:
    g, names = fused_graph(12, clip)
    x = rng.standard_normal((3, 8, 10, 10), dtype=np.float32)
    ex = Executor(g, NATIVE)
    assert [s.node.op_type for s in ex._fast] == ["Conv"]  # all four nodes in one kernel
    ref = Executor(g, ("ref",)).run({"X": x}, outputs=names)
    got = ex.run({"X": x})
    assert_close(got[names[-1]], ref[names[-1]], rtol=1e-4, atol=1e-3, what="fused")
    # Asking for an intermediate runs the unfused plan, so every value exists and agrees.
    inter = ex.run({"X": x}, outputs=names)
    for n in names:
        assert_close(inter[n], ref[n], rtol=1e-4, atol=1e-3, what=n)


def test_no_fusion_across_a_shared_value(rng: np.random.Generator) -> None:
    b = GraphBuilder("shared")
    x = b.add_input("X", "float32", (1, 4, 6, 6))
    (y,) = b.add_node("Conv", [x, b.add_const("W", rng.standard_normal((4, 4, 1, 1), dtype=np.float32))], 1)
    (r,) = b.add_node("Relu", [y], 1)
    (s,) = b.add_node("Add", [y, r], 1)  # y is used twice: the Relu must not absorb it
    b.mark_output(s)
    g = b.build()
    ex = Executor(g, NATIVE)
    assert len(ex._fast) == 3
    xv = rng.standard_normal((1, 4, 6, 6), dtype=np.float32)
    assert_close(ex.run({"X": xv})[s], Executor(g, ("ref",)).run({"X": xv})[s], atol=1e-5)


@pytest.mark.parametrize(
    ("r", "k", "n", "trans_a", "trans_b", "alpha", "beta", "c_shape"),
    [
        (1, 25088, 64, 0, 0, 1.0, 1.0, (64,)),  # VGG fc6 at batch 1, 98 k blocks
        (100, 1568, 64, 0, 1, 1.0, 1.0, (1, 64)),
        (7, 33, 10, 1, 0, 0.5, 2.0, (1,)),
        (9, 16, 50, 0, 1, 1.0, 0.0, (9, 50)),  # beta 0: C ignored
        (5, 8, 3, 0, 0, 1.0, 1.0, None),
        (0, 8, 3, 0, 0, 1.0, 1.0, None),  # empty batch
    ],
)
def test_gemm_matches_ref_and_onnxruntime(  # type: ignore[no-untyped-def]
    isa: str, r, k, n, trans_a, trans_b, alpha, beta, c_shape, rng
) -> None:
    a = rng.standard_normal((k, r) if trans_a else (r, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    c = None if c_shape is None else rng.standard_normal(c_shape, dtype=np.float32)
    attrs = {"transA": trans_a, "transB": trans_b, "alpha": alpha, "beta": beta}
    inputs = {"A": a, "B": b, "C": c}
    got, ref = run_both("Gemm", inputs, ("B", "C"), **attrs)
    tol = 1e-4 * np.sqrt(k)
    assert_close(got, ref, rtol=1e-4, atol=tol, what="gemm vs ref")
    if r > 0:
        pytest.importorskip("onnxruntime")
        (want,) = run_onnx_node("Gemm", {k_: v for k_, v in inputs.items() if v is not None}, ("B", "C"), **attrs)
        assert_close(got, want, rtol=1e-4, atol=tol, what="gemm vs onnxruntime")


def test_gemm_full_c_falls_back_to_ref(rng: np.random.Generator) -> None:
    a, b = rng.standard_normal((4, 6), dtype=np.float32), rng.standard_normal((6, 5), dtype=np.float32)
    c = rng.standard_normal((4, 5), dtype=np.float32)
    got, ref = run_both("Gemm", {"A": a, "B": b, "C": c}, ("B", "C"))
    assert_close(got, ref, atol=1e-5)


@pytest.mark.parametrize("a_shape", [(3, 40), (2, 5, 40), (1, 1, 1, 40), (0, 40)])
def test_matmul_rows_match_ref(isa: str, a_shape: tuple[int, ...], rng: np.random.Generator) -> None:
    a = rng.standard_normal(a_shape, dtype=np.float32)
    b = rng.standard_normal((40, 70), dtype=np.float32)
    got, ref = run_both("MatMul", {"A": a, "B": b}, ("B",))
    assert_close(got, ref, atol=1e-3)


POOLS = [
    # (op, H, W, kernel, strides, pads, dilations, ceil, include_pad)
    ("MaxPool", 28, 28, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 0, 0),
    ("MaxPool", 13, 17, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, 0),
    ("MaxPool", 11, 9, (3, 2), (1, 2), (2, 0, 1, 1), (2, 2), 0, 0),
    ("MaxPool", 5, 5, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 0, 0),
    ("AveragePool", 14, 14, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 0, 0),
    ("AveragePool", 13, 10, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, 0),
    ("AveragePool", 13, 10, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, 1),
    ("AveragePool", 9, 9, (3, 3), (3, 3), (0, 1, 2, 1), (1, 1), 0, 1),
]


@pytest.mark.parametrize("case", POOLS, ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}-k{c[3]}s{c[4]}p{c[5]}c{c[7]}i{c[8]}")
@pytest.mark.parametrize("n", [2, 0])
def test_pool_matches_ref_and_onnxruntime(isa: str, case: tuple, n: int, rng: np.random.Generator) -> None:
    op, h, w, k, s, p, d, ceil, inc = case
    x = rng.standard_normal((n, 3, h, w), dtype=np.float32)
    attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "pads": p, "ceil_mode": ceil}
    if op == "MaxPool":
        attrs["dilations"] = d
    else:
        attrs["count_include_pad"] = inc
    got, ref = run_both(op, {"X": x}, (), **attrs)
    if op == "MaxPool":
        np.testing.assert_array_equal(got, ref)
    else:
        assert_close(got, ref, atol=1e-6)
    if n > 0:
        pytest.importorskip("onnxruntime")
        (want,) = run_onnx_node(op, {"X": x}, (), opset=19, **attrs)
        assert_close(got, want, atol=1e-6, what="pool vs onnxruntime")


def test_global_average_pool(isa: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 5, 7, 9), dtype=np.float32) + 10
    got, ref = run_both("GlobalAveragePool", {"X": x}, ())
    assert_close(got, ref, rtol=1e-6, atol=1e-6)


def test_maxpool_propagates_nan() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    got, ref = run_both("MaxPool", {"X": x}, (), kernel_shape=(2, 2), strides=(2, 2))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


# ---------------------------------------------------------------- hostile geometry
def conv_ctx(**attrs: Any) -> KernelContext:
    from convertmodel.ir.graph import Node

    node = Node("Conv", "evil", ("X", "W"), ("Y",), attrs)
    return KernelContext(node, dict(attrs))


HOSTILE = [
    {"strides": (0, 1)},
    {"strides": (-2, 1)},
    {"dilations": (0, 1)},
    {"dilations": (1 << 40, 1)},
    {"pads": (-1, 0, 0, 0)},
    {"pads": (1 << 40, 0, 0, 0)},
    {"pads": (1 << 30, 1 << 30, 1 << 30, 1 << 30)},  # fits in 2^31 per value, overflows as a tensor
    {"kernel_shape": (9, 9)},  # larger than the padded input
    {"group": 3},  # 4 channels are not 3 groups
]


@pytest.mark.parametrize("attrs", HOSTILE, ids=lambda a: str(a))
@pytest.mark.parametrize("depthwise", [False, True])
def test_hostile_conv_geometry_raises_typed_error(attrs: dict[str, Any], depthwise: bool) -> None:
    x = np.ones((1, 4, 5, 5), np.float32)
    base: dict[str, Any] = {"kernel_shape": (3, 3), "group": 4 if depthwise else 1}
    ctx = conv_ctx(**{**base, **attrs})
    w = np.ones((4, 1 if depthwise else 4, *ctx.attrs["kernel_shape"]), np.float32)
    with pytest.raises(InvalidModelError, match="evil"):
        fp32.conv(ctx, x, w)


def test_hostile_native_entry_points_raise_value_error() -> None:
    ext = fp32._ext
    x = np.ones((1, 2, 4, 4), np.float32)
    packed = ext.fp32_pack_conv(np.ones((3, 2, 3, 3), np.float32), 1, "")
    with pytest.raises(ValueError, match="scale"):
        ext.fp32_conv(x, packed, np.ones(2, np.float32), None, 0.0, 1.0, [1, 1], [0, 0, 0, 0], [1, 1])
    with pytest.raises(ValueError, match="channels"):
        ext.fp32_conv(np.ones((1, 5, 4, 4), np.float32), packed, None, None, 0.0, 1.0, [1, 1], [0] * 4, [1, 1])
    with pytest.raises(ValueError, match="lo > hi"):
        ext.fp32_conv(x, packed, None, None, 2.0, 1.0, [1, 1], [0, 0, 0, 0], [1, 1])
    dense = ext.fp32_pack_dense(np.ones((6, 3), np.float32), False, 1.0, "")
    with pytest.raises(ValueError, match="K = 6"):
        ext.fp32_dense(np.ones((2, 5), np.float32), dense, None, None, 0.0, 1.0)
    with pytest.raises(ValueError, match="out of range"):
        ext.fp32_pool(x, 0, [2, 2], [0, 1], [0, 0, 0, 0], [1, 1], [2, 2], False)
    with pytest.raises(ValueError, match="kind"):
        ext.fp32_pool(x, 7, [2, 2], [1, 1], [0, 0, 0, 0], [1, 1], [2, 2], False)
    with pytest.raises(ValueError, match="too large"):
        ext.fp32_pool(x, 0, [2, 2], [1, 1], [0, 0, 0, 0], [1, 1], [1 << 20, 2], False)
    with pytest.raises(ValueError, match="unknown fp32 ISA"):
        ext.fp32_isa("sse9")


def test_wrong_input_channels_or_kernel_shape(rng: np.random.Generator) -> None:
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    with pytest.raises(InvalidModelError, match="channels"):
        fp32.conv(conv_ctx(kernel_shape=(3, 3)), np.ones((1, 5, 8, 8), np.float32), w)
    with pytest.raises(InvalidModelError, match="kernel_shape"):
        fp32.conv(conv_ctx(kernel_shape=(2, 2)), np.ones((1, 3, 8, 8), np.float32), w)


def test_int8_isa_names_select_their_fp32_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    if not fp32.available():
        pytest.skip("native extension not built")
    for int8_name, unit in (("avx512vnni", "avx512"), ("avxvnni", "avx2"), ("avx2", "avx2"), ("portable", "portable")):
        if unit in fp32.available_isas():
            monkeypatch.setenv("CONVERTMODEL_ISA", int8_name)
            assert fp32.isa() == unit
    monkeypatch.delenv("CONVERTMODEL_ISA")
    assert fp32.isa() == fp32.available_isas()[0]


@pytest.mark.parametrize("shape", [(2, 8, 9, 9), (3, 8, 5, 7), (1, 8, 6, 40)])
@pytest.mark.parametrize("m", [8, 136])
def test_residual_add_and_relu_fuse_into_the_conv(
    isa: str, conv_path: str, shape: tuple[int, ...], m: int, rng: np.random.Generator
) -> None:
    """ResNet's Conv -> Add(shortcut) -> Relu runs as one kernel and agrees with the unfused reference."""
    b = GraphBuilder("res")
    x = b.add_input("X", "float32", shape)
    w1 = b.add_const("W1", rng.standard_normal((m, 8, 1, 1), dtype=np.float32))
    (short,) = b.add_node("Conv", [x, w1], 1, name="shortcut")  # computed before the fused conv
    w2 = b.add_const("W2", rng.standard_normal((m, 8, 3, 3), dtype=np.float32))
    (y,) = b.add_node("Conv", [x, w2, b.add_const("B2", rng.standard_normal(m, dtype=np.float32))], 1, pads=(1,) * 4)
    (s,) = b.add_node("Add", [short, y], 1, name="add")
    (r,) = b.add_node("Relu", [s], 1, name="relu")
    b.mark_output(r)
    g = b.build()
    check_graph(g)
    ex = Executor(g, NATIVE)
    assert [(st.node.name, st.extra) for st in ex._fast][-1][1] == (("residual", short),)
    assert len(ex._fast) == 2
    xv = rng.standard_normal(shape, dtype=np.float32)
    assert_close(ex.run({"X": xv})[r], Executor(g, ("ref",)).run({"X": xv})[r], rtol=1e-4, atol=1e-3)


def test_output_buffers_are_reused_unless_kept(rng: np.random.Generator) -> None:
    """Buffers nobody references any more are written again by the next run (no fresh pages, a small working
    set); one the caller kept, or a view of, is never handed out while alive."""
    b = GraphBuilder("reuse")
    x = b.add_input("X", "float32", (2, 4, 13, 13))
    w = b.add_const("W", rng.standard_normal((7, 4, 3, 3), dtype=np.float32))
    (y,) = b.add_node("Conv", [x, w], 1, pads=(1,) * 4)
    (p,) = b.add_node("MaxPool", [y], 1, kernel_shape=(2, 2), strides=(2, 2))
    (z,) = b.add_node("Conv", [p, b.add_const("W2", rng.standard_normal((5, 7, 1, 1), dtype=np.float32))], 1)
    b.mark_output(z)
    g = b.build()
    check_graph(g)
    ex = Executor(g, NATIVE)
    xv = rng.standard_normal((2, 4, 13, 13), dtype=np.float32)
    want = Executor(g, ("ref",)).run({"X": xv})[z]
    fp32._POOL.pop((2, 7, 13, 13), None)
    fp32._POOL.pop((2, 5, 6, 6), None)
    ex.run({"X": xv})
    ex.run({"X": xv})
    inner = fp32._POOL[(2, 7, 13, 13)]
    assert len(inner) == 1  # the second run wrote the first run's buffer again
    kept = ex.run({"X": xv})[z]
    first = kept.copy()
    again = ex.run({"X": xv})[z]
    assert again is not kept and len(fp32._POOL[(2, 5, 6, 6)]) == 2  # the kept output is not handed out
    np.testing.assert_array_equal(kept, first)
    assert_close(again, want, rtol=1e-4, atol=1e-3)
    view = inner[0][:1]  # a view of a free buffer keeps it from being handed out
    ex.run({"X": xv})
    assert len(inner) == 2 and inner[1] is not view.base
    np.testing.assert_array_equal(ex.run({"X": xv})[z], again)
    # A smaller batch writes the front of a free larger buffer (no new one) and agrees with the reference.
    g1 = g.replace(inputs=(ValueInfo("X", TensorType("float32", ("N", 4, 13, 13))),))
    ex1 = Executor(g1, NATIVE)
    ex1.run({"X": xv})
    sizes = {k: len(v) for k, v in fp32._POOL.items()}
    got = ex1.run({"X": xv[:1]})[z]
    assert {k: len(v) for k, v in fp32._POOL.items() if k in sizes} == sizes and (1, 7, 13, 13) not in fp32._POOL
    assert_close(got, want[:1], rtol=1e-4, atol=1e-3)
