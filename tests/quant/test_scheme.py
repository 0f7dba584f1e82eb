"""The weight and input window quantization of BigDL 0.3's local-window scheme.

Golden vectors are BigDL's own (QuantizationSpec in BigDL 0.3, quoted in issue 3). The BigDL
compat re-quantization is checked against a scalar re-statement of BigQuant's C code
(model.h DequantizeModel + pad_shuffle.h PadQuantizeShuffle2D, int8 overload) written here
element by element with numpy float32/float64 scalars.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from convertmodel.quant.scheme import (
    bigdl_compat_requantize,
    quantize_weight_rows,
    quantize_windows,
)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([[0.6, 0.4, -0.3, 0.2, 0.1]], [[127, 85, -63, 42, 21]]),
        ([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.4, 0.3, 0.2, 0.1]], [[25, 51, 76, 102, 127], [127, 85, 64, 42, 21]]),
        # a (2, 2, 3) tensor: rows are the first dimension
        (
            [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], [[-0.5, 0.4, 0.3], [0.2, 0.1, 0.0]]],
            [[21, 42, 64, 85, 106, 127], [-127, 102, 76, 51, 25, 0]],
        ),
    ],
)
def test_bigdl_golden_vectors(weights: list, expected: list) -> None:
    w = np.array(weights, dtype=np.float32)
    qw = quantize_weight_rows(w.reshape(w.shape[0], -1))
    assert qw.wq.dtype == np.int8
    np.testing.assert_array_equal(qw.wq, np.array(expected, dtype=np.int8))


def test_weight_rows_scale_sum_and_java_rounding(rng: np.random.Generator) -> None:
    w = rng.standard_normal((7, 50)).astype(np.float32)
    qw = quantize_weight_rows(w)
    for m in range(7):
        a = max(abs(float(w[m].max())), abs(float(w[m].min())))
        # Java: Math.round(1.0 * value / a * 127) == floor(x + 0.5) in double
        exp = [math.floor(float(v) / a * 127.0 + 0.5) for v in w[m]]
        assert qw.wq[m].tolist() == exp
        assert qw.w_scale[m] == np.float32(np.float32(a) / np.float32(127))
        assert abs(float(qw.w_sum[m]) - float(w[m].astype(np.float64).sum())) <= 1e-6 * max(1.0, abs(a) * 50)
    assert np.abs(qw.wq).max() == 127


def test_tiny_rows_do_not_overflow() -> None:
    # a = 1e-40 (a float32 denormal): 127 / a overflows float32; must still follow the double formula
    w = np.array([[1e-40, -5e-41, 2.5e-41, 0.0], [0.6, 0.4, -0.3, 0.2]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        qw = quantize_weight_rows(w)
    a = np.abs(w[0]).max().astype(np.float64)
    exp = [math.floor(float(v) / float(a) * 127 + 0.5) for v in w[0]]
    assert qw.wq[0].tolist() == exp and qw.wq[1].tolist() == [127, 85, -63, 42]
    assert np.isfinite(qw.w_scale).all()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        cq = bigdl_compat_requantize(qw)
    assert cq.wq[0].tolist() == [64, -32, 16, 0] and np.isfinite(cq.w_scale).all()


def test_zero_row_and_blocked_rows(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    w = rng.standard_normal((9, 13)).astype(np.float32)
    w[4] = 0.0
    full = quantize_weight_rows(w)
    assert full.wq[4].tolist() == [0] * 13 and full.w_scale[4] == 0 and full.w_sum[4] == 0
    assert np.all(np.isfinite(full.w_scale))
    # Blocks of rows (bounded temporaries) must not change any value.
    import convertmodel.quant.scheme as scheme

    monkeypatch.setattr(scheme, "_BLOCK_ELEMENTS", 20)
    blocked = quantize_weight_rows(w)
    np.testing.assert_array_equal(blocked.wq, full.wq)
    np.testing.assert_array_equal(blocked.w_scale, full.w_scale)
    np.testing.assert_array_equal(blocked.w_sum, full.w_sum)
    np.testing.assert_array_equal(bigdl_compat_requantize(blocked).wq, bigdl_compat_requantize(full).wq)


def _bigquant_reload_row(q127: np.ndarray, amax: float) -> tuple[list[int], np.float32]:
    """BigQuant's load-time path for one row, scalar by scalar (float = np.float32, double = float)."""
    a = np.float32(amax)
    deq = [np.float32(1.0 * float(np.float32(int(q))) / 127.0 * float(a)) for q in q127]
    mx, mn = max(deq), min(deq)
    denom = abs(mx) if abs(mx) > abs(mn) else abs(mn)
    scale = np.float32(np.float32(64.0) / np.float32(denom))
    ratio = np.float32(1.0 / float(scale))
    out = []
    for d in deq:
        p = float(np.float32(d * scale))  # float * float in float
        out.append(int(math.copysign(math.floor(abs(p) + 0.5), p)))  # roundf: half away from zero
    return out, ratio


def test_bigdl_compat_matches_bigquant_scalar_code(rng: np.random.Generator) -> None:
    w = (rng.standard_normal((6, 40)) * rng.uniform(0.01, 3, (6, 1))).astype(np.float32)
    qw = quantize_weight_rows(w)
    cq = bigdl_compat_requantize(qw)
    assert cq.wq.dtype == np.int8 and np.abs(cq.wq).max() <= 64
    for m in range(6):
        exp, ratio = _bigquant_reload_row(qw.wq[m], float(qw.amax[m]))
        assert cq.wq[m].tolist() == exp
        assert cq.w_scale[m] == ratio
    np.testing.assert_array_equal(cq.w_sum, qw.w_sum)


def test_bigdl_compat_zero_row() -> None:
    w = np.zeros((2, 5), np.float32)
    w[1] = [0.6, 0.4, -0.3, 0.2, 0.1]
    cq = bigdl_compat_requantize(quantize_weight_rows(w))
    assert cq.wq[0].tolist() == [0] * 5 and cq.w_scale[0] == 0
    # 127 -> 64; 85/127*64 = 42.83 -> 43; -63/127*64 = -31.748 -> -32
    assert cq.wq[1].tolist()[:3] == [64, 43, -32]


def _contract_windows(v: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The contract's step 2, one window at a time, float32 scalar ops."""
    q = np.zeros(v.shape, np.uint8)
    mn = np.zeros(v.shape[0], np.float32)
    r = np.zeros(v.shape[0], np.float32)
    for i, row in enumerate(v):
        lo, hi = np.float32(row.min()), np.float32(row.max())
        mn[i] = lo
        if hi > lo:
            s = np.float32(np.float32(levels) / np.float32(hi - lo))
            for k, x in enumerate(row):
                t = np.floor(np.float32(np.float32(np.float32(x - lo) * s) + np.float32(0.5)))
                q[i, k] = int(min(max(t, 0), levels))
            r[i] = np.float32(np.float32(hi - lo) / np.float32(levels))
    return q, mn, r


@pytest.mark.parametrize("levels", [255, 127])
def test_input_windows_follow_the_contract(levels: int, rng: np.random.Generator) -> None:
    v = rng.standard_normal((12, 33)).astype(np.float32) * 3
    v[3] = 1.25  # constant window
    v[4] = 0.0  # all zeros
    v[5, :] = 0.0
    v[5, 7] = -2.0
    win = quantize_windows(v, levels)
    q, mn, r = _contract_windows(v, levels)
    np.testing.assert_array_equal(win.q, q)
    np.testing.assert_array_equal(win.mn, mn)
    np.testing.assert_array_equal(win.r, r)
    assert win.q[3].max() == 0 and win.r[3] == 0 and win.mn[3] == np.float32(1.25)
    assert win.q.max() == levels and win.q.min() == 0
    # the window min maps to 0, the max to L
    assert win.q[5, 7] == 0 and win.q[5, 0] == levels


def test_input_windows_batched_shape(rng: np.random.Generator) -> None:
    v = rng.standard_normal((4, 3, 10)).astype(np.float32)
    win = quantize_windows(v)
    assert win.q.shape == (4, 3, 10) and win.mn.shape == (4, 3) and win.r.shape == (4, 3)
    flat = quantize_windows(v.reshape(12, 10))
    np.testing.assert_array_equal(win.q.reshape(12, 10), flat.q)


def test_windows_holding_nan_or_inf_get_code_zero_without_a_nan_cast() -> None:
    """A window with a NaN or an infinity: its codes are 0 by the contract (not a cast of NaN to uint8, which
    numpy leaves to the platform and warns about), its min carries the NaN/inf into the outputs."""
    import warnings

    v = np.array([[0.5, np.nan, 1.0], [0.0, np.inf, 2.0], [-np.inf, 1.0, 3.0], [0.0, 1.0, 2.0]], np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = quantize_windows(v, 255)
    assert not [c for c in caught if "cast" in str(c.message)]  # inf - inf may warn; a NaN cast must not happen
    assert w.q[:3].tolist() == [[0, 0, 0]] * 3
    assert w.q[3].tolist() == [0, 128, 255]
    assert np.isnan(w.mn[0]) and w.mn[2] == -np.inf
