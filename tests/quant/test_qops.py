"""QConv / QGemm reference kernels against a straightforward dequantize-then-compute in the test.

The expected values are computed here without the library's im2col or window code: patches
are cut out of the padded input position by position, each patch is quantized per the op
contract (float32 scalar-exact numpy ops), the codes are dequantized (``q * r``) and multiplied
with the dequantized weights (``Wq * w_scale``) in float64, and ``mn * sum(w) + B`` is added.
That equals the contract's epilogue up to float32 rounding. A second check compares with the
fp32 op in onnxruntime on the original weights: the int8 error must be small.
"""

from __future__ import annotations

import numpy as np
import pytest

from convertmodel.ir.schema import CM_DOMAIN
from tests.helpers import assert_close, run_ir_node, run_onnx_node


def _quantize_w(w2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row symmetric int8 weights (the contract's weight rule), written independently."""
    a = np.abs(w2).max(axis=1)
    safe = np.where(a > 0, a, 1).astype(np.float64)
    wq = np.floor(w2.astype(np.float64) / safe[:, None] * 127 + 0.5).astype(np.int8)
    return wq, (a / np.float32(127)).astype(np.float32), w2.astype(np.float64).sum(axis=1).astype(np.float32)


def _window(v: np.ndarray, levels: int) -> tuple[np.ndarray, float, float]:
    lo, hi = np.float32(v.min()), np.float32(v.max())
    if not hi > lo:
        return np.zeros(v.shape), float(lo), 0.0
    s = np.float32(levels) / np.float32(hi - lo)
    q = np.clip(np.floor((v - lo) * s + np.float32(0.5)), 0, levels)
    return q.astype(np.float64), float(lo), float(np.float32(hi - lo) / np.float32(levels))


def _expected_conv(x, wq, ws, wsum, b, stride, pads, dil, group, levels, relu):
    n, c, h, w = x.shape
    m, cg, kh, kw = wq.shape
    xp = np.zeros((n, c, h + pads[0] + pads[2], w + pads[1] + pads[3]), np.float32)
    xp[:, :, pads[0] : pads[0] + h, pads[1] : pads[1] + w] = x
    oh = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    wd = wq.reshape(m, -1).astype(np.float64) * ws[:, None].astype(np.float64)
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for ni in range(n):
        for gi in range(group):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[
                        ni,
                        gi * cg : (gi + 1) * cg,
                        i * stride[0] : i * stride[0] + dil[0] * (kh - 1) + 1 : dil[0],
                        j * stride[1] : j * stride[1] + dil[1] * (kw - 1) + 1 : dil[1],
                    ].reshape(-1)
                    q, mn, r = _window(patch, levels)
                    for mm in range(gi * mg, (gi + 1) * mg):
                        y[ni, mm, i, j] = (q * r) @ wd[mm] + mn * float(wsum[mm]) + (0.0 if b is None else b[mm])
    return np.maximum(y, 0) if relu else y


CONV_CASES = {
    "basic": dict(n=1, c=3, hw=(7, 6), m=4, k=(3, 3), stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1),
    "stride_pad": dict(n=2, c=3, hw=(8, 9), m=5, k=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), dil=(1, 1), group=1),
    "asym_pad": dict(n=1, c=2, hw=(6, 7), m=3, k=(3, 2), stride=(1, 2), pads=(0, 2, 1, 0), dil=(1, 1), group=1),
    "dilated": dict(n=1, c=2, hw=(9, 9), m=3, k=(3, 3), stride=(1, 1), pads=(2, 2, 2, 2), dil=(2, 2), group=1),
    "grouped": dict(n=2, c=4, hw=(6, 6), m=6, k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dil=(1, 1), group=2),
    "depthwise": dict(n=3, c=4, hw=(5, 6), m=4, k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dil=(1, 1), group=4),
    "pointwise": dict(n=2, c=5, hw=(4, 4), m=3, k=(1, 1), stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1),
}


def _qconv_case(
    case: dict,
    rng: np.random.Generator,
    levels: int,
    relu: bool,
    bias: bool,
    constant_region: bool = False,
    zero_row: bool = False,
):
    n, c, (h, w), m = case["n"], case["c"], case["hw"], case["m"]
    g = case["group"]
    x = (rng.standard_normal((n, c, h, w)) * 2 + 0.5).astype(np.float32)
    if constant_region:
        x[0, :, :3, :3] = 0.75  # patches inside it are constant windows
        x[-1, :, -3:, -3:] = 0.0  # and all-zero windows
    wf = rng.standard_normal((m, c // g, *case["k"])).astype(np.float32)
    if zero_row:
        wf[1] = 0.0
    b = rng.standard_normal(m).astype(np.float32) if bias else None
    wq2, ws, wsum = _quantize_w(wf.reshape(m, -1))
    wq = wq2.reshape(wf.shape)
    attrs = dict(
        kernel_shape=list(case["k"]),
        strides=list(case["stride"]),
        pads=list(case["pads"]),
        dilations=list(case["dil"]),
        group=g,
        input_levels=levels,
        activation="Relu" if relu else "",
    )
    (got,) = run_ir_node(
        "QConv",
        {"X": x, "Wq": wq, "w_scale": ws, "w_sum": wsum, "B": b},
        const_inputs=("Wq", "w_scale", "w_sum", "B"),
        domain=CM_DOMAIN,
        **attrs,
    )
    exp = _expected_conv(x, wq, ws, wsum, b, case["stride"], case["pads"], case["dil"], g, levels, relu)
    return x, wf, b, got, exp


def _scale(exp: np.ndarray) -> float:
    return float(np.abs(exp).max()) or 1.0


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_qconv_matches_dequantized_reference(name: str, rng: np.random.Generator) -> None:
    case = CONV_CASES[name]
    x, wf, b, got, exp = _qconv_case(case, rng, 255, relu=False, bias=True)
    assert got.dtype == np.float32
    assert_close(got, exp, rtol=0, atol=2e-6 * _scale(exp), what=f"QConv {name}")
    # and against the fp32 convolution (onnxruntime) on the original weights: int8 error only
    (ref,) = run_onnx_node(
        "Conv",
        {"X": x, "W": wf, "B": b},
        const_inputs=("W", "B"),
        kernel_shape=list(case["k"]),
        strides=list(case["stride"]),
        pads=list(case["pads"]),
        dilations=list(case["dil"]),
        group=case["group"],
    )
    err = np.abs(got - ref).max() / _scale(ref)
    assert err < 0.03, f"int8 vs fp32 relative error {err}"


@pytest.mark.parametrize("levels", [255, 127])
def test_qconv_relu_constant_patches_zero_rows(levels: int, rng: np.random.Generator) -> None:
    case = CONV_CASES["stride_pad"]
    _, _, _, got, exp = _qconv_case(case, rng, levels, relu=True, bias=True, constant_region=True, zero_row=True)
    assert np.all(np.isfinite(got))
    assert got.min() >= 0
    assert_close(got, exp, rtol=0, atol=2e-6 * _scale(exp), what="QConv relu/constant/zero-row")
    # a zero weight row gives exactly mn * 0 + B (then ReLU)
    b_row = got[:, 1]
    assert np.all(b_row == b_row.flat[0])


def test_qconv_constant_patch_is_exact(rng: np.random.Generator) -> None:
    # every patch constant: y = mn * sum(w) + B exactly as fp32 would give (within float rounding)
    x = np.full((1, 2, 4, 4), -1.5, np.float32)
    wf = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    wq2, ws, wsum = _quantize_w(wf.reshape(3, -1))
    (got,) = run_ir_node(
        "QConv",
        {"X": x, "Wq": wq2.reshape(wf.shape), "w_scale": ws, "w_sum": wsum},
        const_inputs=("Wq", "w_scale", "w_sum"),
        domain=CM_DOMAIN,
        kernel_shape=[3, 3],
    )
    (ref,) = run_onnx_node("Conv", {"X": x, "W": wf}, const_inputs=("W",), kernel_shape=[3, 3])
    assert_close(got, ref, rtol=1e-6, atol=1e-6, what="constant input")


def _expected_gemm(x2, wq, ws, wsum, b, levels, relu):
    wd = wq.astype(np.float64) * ws[:, None].astype(np.float64)
    y = np.zeros((x2.shape[0], wq.shape[0]))
    for i, row in enumerate(x2):
        q, mn, r = _window(row, levels)
        y[i] = (q * r) @ wd.T + mn * wsum.astype(np.float64) + (0.0 if b is None else b)
    return np.maximum(y, 0) if relu else y


@pytest.mark.parametrize(
    ("shape", "bias", "relu", "levels"),
    [
        ((4, 20), True, False, 255),
        ((2, 3, 20), True, True, 255),  # rank-3 input: one window per (i, j) row
        ((5, 20), False, False, 127),
    ],
)
def test_qgemm_matches_dequantized_reference(shape, bias, relu, levels, rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1, shape[-1])[1] = 0.3  # a constant row
    wf = rng.standard_normal((6, shape[-1])).astype(np.float32)
    wf[2] = 0.0  # an all-zero weight row
    b = rng.standard_normal(6).astype(np.float32) if bias else None
    wq, ws, wsum = _quantize_w(wf)
    (got,) = run_ir_node(
        "QGemm",
        {"X": x, "Wq": wq, "w_scale": ws, "w_sum": wsum, "B": b},
        const_inputs=("Wq", "w_scale", "w_sum", "B"),
        domain=CM_DOMAIN,
        input_levels=levels,
        activation="Relu" if relu else "",
    )
    assert got.shape == (*shape[:-1], 6) and np.all(np.isfinite(got))
    exp = _expected_gemm(x.reshape(-1, shape[-1]), wq, ws, wsum, b, levels, relu).reshape(got.shape)
    assert_close(got, exp, rtol=0, atol=2e-6 * _scale(exp), what="QGemm")
    ref = x @ wf.T + (0 if b is None else b)
    if relu:
        ref = np.maximum(ref, 0)
    assert np.abs(got - ref).max() / _scale(ref) < 0.03


def test_qgemm_large_weight_streams_in_blocks(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    import convertmodel.runtime.kernels.ref.quantized as qk

    x = rng.standard_normal((3, 40)).astype(np.float32)
    wf = rng.standard_normal((9, 40)).astype(np.float32)
    wq, ws, wsum = _quantize_w(wf)
    args = {"X": x, "Wq": wq, "w_scale": ws, "w_sum": wsum, "B": None}
    (whole,) = run_ir_node("QGemm", args, const_inputs=("Wq", "w_scale", "w_sum"), domain=CM_DOMAIN)
    monkeypatch.setattr(qk, "_BLOCK_ELEMENTS", 100)  # weight > block: converted per block of channels
    (blocked,) = run_ir_node("QGemm", args, const_inputs=("Wq", "w_scale", "w_sum"), domain=CM_DOMAIN)
    np.testing.assert_array_equal(whole, blocked)


def test_int8_accumulator_is_exact(rng: np.random.Generator) -> None:
    from convertmodel.runtime.kernels.ref.quantized import int8_accumulate

    k = 60000  # near the contract's K limit: sums up to ~2**31
    q = np.full((2, k), 255, np.uint8)
    q[1] = rng.integers(0, 256, k, dtype=np.uint8)
    w = np.full((3, k), 127, np.int8)
    w[1] = -127
    w[2] = rng.integers(-127, 128, k, dtype=np.int64).astype(np.int8)
    acc = int8_accumulate(q, w)
    exp = q.astype(np.int64) @ w.astype(np.int64).T
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc.astype(np.int64), exp)
