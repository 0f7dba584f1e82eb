"""NaN and infinite inputs through the native int8 kernels give the numpy reference's outputs, on every ISA path.

The rule (docs/quantization.md, contract step 2): a window holding a NaN has a NaN min, so it is not live
(q = 0, r_x = 0) and every output of it is NaN through the ``mn * w_sum`` term; the fused ReLU keeps NaN
(``numpy.maximum(y, 0)``), as does the fused residual Add + Relu. A window holding an infinity has an infinite
range: s = 0, r_x = inf, the codes 0, so ``0 * inf`` makes its outputs NaN too (the reference computes exactly
that). The NaN positions of native must equal the reference's exactly, the finite values agree as in
test_native_kernels.py.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from convertmodel.runtime import Executor, native
from tests.helpers import assert_close
from tests.native._util import isa_params, q_params, run_q_node

pytestmark = pytest.mark.native

# (input shape, output channels, kernel, attrs): each path of the native QConv
CONV_CASES: dict[str, tuple[tuple[int, ...], int, tuple[int, int], dict[str, Any]]] = {
    "dense_3x3_padded": ((1, 4, 9, 9), 5, (3, 3), {"pads": [1, 1, 1, 1]}),  # banded, channel maps
    "one_by_one": ((2, 17, 5, 7), 9, (1, 1), {}),
    "strided_3x3": ((1, 6, 13, 12), 7, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # phase planes
    "strided_1x1": ((1, 8, 9, 9), 5, (1, 1), {"strides": [2, 2]}),  # the gather path
    "direct_panels": ((1, 5, 6, 40), 7, (3, 3), {}),  # no padding: quantized straight from the input
    "wide_dilation": ((1, 4, 9, 70), 6, (3, 3), {"dilations": [2, 12]}),  # gathered
    "bands": ((1, 200, 40, 29), 13, (3, 3), {"pads": [1, 1, 1, 1]}),  # several bands, starting mid-row
    "depthwise_s1": ((2, 5, 9, 11), 5, (3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),  # fused strips
    "depthwise_s2": ((1, 4, 13, 13), 4, (3, 3), {"group": 4, "pads": [0, 0, 1, 1], "strides": [2, 2]}),
    "depthwise_mult": ((1, 4, 8, 8), 8, (3, 3), {"group": 4, "pads": [0, 1, 2, 1]}),  # the separate passes
    "groups": ((1, 8, 9, 9), 12, (3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
}


def _plant(x: np.ndarray, value: float, rng: np.random.Generator) -> None:
    """`value` in the first and last channel (at a corner and an edge) and a few random places."""
    n, c, h, w = x.shape
    x[0, 0, 0, 0] = value
    x[-1, c - 1, h - 1, w // 2] = value
    x[0, c // 2, h // 2, w - 1] = value
    for _ in range(3):
        x[rng.integers(n), rng.integers(c), rng.integers(h), rng.integers(w)] = value


def _reference(*args: Any, **kw: Any) -> np.ndarray:
    with warnings.catch_warnings():  # the reference casts the (unused) NaN codes of a NaN window to uint8
        warnings.simplefilter("ignore", RuntimeWarning)
        return run_q_node(*args, **kw)[0]


def _assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    nan = np.isnan(want)
    assert nan.any(), f"{what}: the case plants no NaN output"
    assert (~nan).any(), f"{what}: every output is NaN"
    bad = np.isnan(got) != nan
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} NaN positions differ (native {int(np.isnan(got).sum())}, reference {int(nan.sum())})"
    )
    fin = ~nan
    scale = float(np.abs(want[fin]).max())
    assert_close(got[fin], want[fin], rtol=1e-6, atol=1e-6 * scale, what=what)


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("relu", "threads"), [(False, 1), (True, 2)])
def test_qconv_nonfinite_inputs(
    isa: str,
    case: str,
    value: float,
    relu: bool,
    threads: int,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(native.ISA_ENV, isa)
    shape, m, kernel, attrs = CONV_CASES[case]
    g = attrs.get("group", 1)
    x = rng.standard_normal(shape).astype(np.float32)
    _plant(x, value, rng)
    wq = rng.integers(-127, 128, (m, shape[1] // g, *kernel), dtype=np.int8)
    p = q_params(rng, m, wq[0].size, bias=True)
    kw = {"kernel_shape": list(kernel), "input_levels": 255, "activation": "Relu" if relu else "", **attrs}
    got, counts = run_q_node("QConv", x, wq, p, ("native",), threads, **kw)
    assert counts == {"native": 1}
    want = _reference("QConv", x, wq, p, ("ref",), 1, **kw)
    _assert_same(got, want, f"QConv {case} x={value} relu={relu} on {isa}")


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize(("shape", "m"), [((1, 301), 25), ((2, 1000), 37), ((33, 77), 19)])  # GEMV, panels
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("relu", [False, True])
def test_qgemm_nonfinite_inputs(
    isa: str,
    shape: tuple[int, int],
    m: int,
    value: float,
    relu: bool,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(native.ISA_ENV, isa)
    x = rng.standard_normal(shape).astype(np.float32)
    r, k = shape
    x[0, 0 if r > 1 else k - 1] = value  # the first value of a row (the running min's start) or its last
    if r > 2:  # (two rows: the second stays finite)
        x[r - 1, k // 2] = value
        x[r // 2, k - 1] = value
    wq = rng.integers(-127, 128, (m, k), dtype=np.int8)
    p = q_params(rng, m, k, bias=True)
    kw = {"input_levels": 255, "activation": "Relu" if relu else ""}
    got, counts = run_q_node("QGemm", x, wq, p, ("native",), 1, **kw)
    assert counts == {"native": 1}
    want = _reference("QGemm", x, wq, p, ("ref",), 1, **kw)
    if r == 1:  # one row: all of it NaN; the finite rows are in the other cases
        assert np.isnan(want).all() and np.isnan(got).all(), f"QGemm {shape} x={value} on {isa}"
        return
    _assert_same(got, want, f"QGemm {shape} x={value} relu={relu} on {isa}")


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize(
    ("shape", "m", "kernel", "attrs"),
    [
        ((2, 8, 9, 9), 8, (3, 3), {"pads": [1, 1, 1, 1]}),  # banded
        ((1, 5, 11, 11), 7, (3, 3), {"strides": [2, 2]}),  # bands of phase planes
        ((1, 16, 7, 7), 6, (1, 1), {"strides": [2, 2]}),  # the gather path
        ((1, 6, 8, 8), 6, (3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),  # depthwise: added after its kernel
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_qconv_fused_residual_keeps_nan(
    isa: str,
    shape: tuple[int, ...],
    m: int,
    kernel: tuple[int, int],
    attrs: dict[str, Any],
    relu: bool,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NaN in the convolution's input and in the residual: QConv -> Add(R) [-> Relu] fused into the epilogue.
    from convertmodel.ir import GraphBuilder
    from convertmodel.ir.schema import CM_DOMAIN

    monkeypatch.setenv(native.ISA_ENV, isa)
    g = attrs.get("group", 1)
    x = rng.standard_normal(shape).astype(np.float32)
    _plant(x, np.nan, rng)
    wq = rng.integers(-127, 128, (m, shape[1] // g, *kernel), dtype=np.int8)
    p = q_params(rng, m, wq[0].size, bias=True)
    kw = {"kernel_shape": list(kernel), "input_levels": 255, "activation": "", **attrs}
    conv_y = _reference("QConv", x, wq, p, ("ref",), **kw)
    res = rng.standard_normal(conv_y.shape).astype(np.float32)
    res.reshape(-1)[:: max(1, res.size // 5)] = np.nan
    b = GraphBuilder("res")
    xi, ri = b.add_input("X", "float32", x.shape), b.add_input("R", "float32", res.shape)
    ins = [xi, b.add_const("Wq", wq), b.add_const("w_scale", p["w_scale"]), b.add_const("w_sum", p["w_sum"])]
    ins.append(b.add_const("B", p["B"]))
    (y,) = b.add_node("QConv", ins, 1, name="conv", domain=CM_DOMAIN, **kw)
    (s,) = b.add_node("Add", [y, ri], 1, name="add")
    if relu:
        (s,) = b.add_node("Relu", [s], 1, name="relu")
    b.mark_output(s)
    graph = b.build()
    ex = Executor(graph, ("native", "ref"), threads=2)
    assert len(ex._fast) == 1, "the Add (and Relu) should be fused into the QConv"
    got = ex.run({"X": x, "R": res})[s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = Executor(graph, ("ref",)).run({"X": x, "R": res})[s]
    _assert_same(got, want, f"QConv + residual relu={relu} on {isa}")
