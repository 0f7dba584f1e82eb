"""Native int8 kernels against independent numpy values, on every ISA path this machine has.

Integer accumulators must equal a numpy int64 matmul bit for bit; window quantization must equal
the contract's float32 formula (written here) bit for bit; full QConv/QGemm outputs must match the
numpy reference kernels (convertmodel.runtime.kernels.ref.quantized) within float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.runtime import native
from tests.helpers import assert_close
from tests.native._util import isa_params, q_params, run_q_node

pytestmark = pytest.mark.native


def contract_quantize(x: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The contract's window quantization per row, op by op in float32 (independent of both kernels)."""
    x = x.astype(np.float32)
    mn, mx = x.min(axis=1), x.max(axis=1)
    L = np.float32(levels)
    live = mx > mn
    s = np.where(live, L / np.where(live, mx - mn, np.float32(1)), np.float32(0)).astype(np.float32)
    d = (x - mn[:, None]).astype(np.float32)
    e = (d * s[:, None]).astype(np.float32)
    q = np.floor((e + np.float32(0.5)).astype(np.float32))
    q = np.clip(q, 0, levels).astype(np.uint8)
    q[~live] = 0
    rx = np.where(live, (mx - mn) / L, np.float32(0)).astype(np.float32)
    return q, mn, rx


@pytest.mark.parametrize("isa", isa_params())
# m: one short block of 1 or 7 channels, blocks plus 1, 4 (the 4-channel kernel) or 8 (the 8-channel kernel)
@pytest.mark.parametrize(
    ("r", "k", "m"), [(1, 1, 1), (17, 27, 7), (33, 301, 13), (64, 576, 64), (5, 4609, 25), (40, 300, 20)]
)
@pytest.mark.parametrize("threads", [1, 2])
def test_accumulate_bit_exact(isa: str, r: int, k: int, m: int, threads: int, rng: np.random.Generator) -> None:
    q = rng.integers(0, 256, (r, k), dtype=np.uint8)
    wq = rng.integers(-127, 128, (m, k), dtype=np.int8)
    got = native.accumulate(q, wq, isa, threads)
    want = q.astype(np.int64) @ wq.astype(np.int64).T
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.astype(np.int64), want)


@pytest.mark.parametrize("isa", isa_params())
def test_accumulate_extremes_do_not_saturate(isa: str) -> None:
    # q = 255 with w = +-127 everywhere: pair sums 2*255*127 = 64770 would saturate int16 (vpmaddubsw).
    k = 1000
    q = np.full((20, k), 255, np.uint8)
    wq = np.stack([np.full(k, 127, np.int8), np.full(k, -127, np.int8), np.where(np.arange(k) % 2, 127, -127)])
    got = native.accumulate(q, wq.astype(np.int8), isa, 1)
    np.testing.assert_array_equal(got.astype(np.int64), q.astype(np.int64) @ wq.astype(np.int64).T)


#: (input levels, max |Wq|) -> the AVX2 kernel exact for them (4*L*w <= 32767: pair sum; 2*L*w: u8s8).
AVX2_KERNELS = {
    (255, 127): "avx2-int16",
    (130, 127): "avx2-int16",
    (129, 127): "avx2-u8s8",
    (127, 127): "avx2-u8s8",
    (255, 64): "avx2-u8s8",
    (128, 64): "avx2-u8s8",
    (127, 64): "avx2-pair",
    (128, 63): "avx2-pair",
    (255, 32): "avx2-pair",
    (255, 128): "avx2-int16",  # a hostile -128 weight: still exact
}


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize(("levels", "wmax"), list(AVX2_KERNELS))
@pytest.mark.parametrize("threads", [1, 2])
def test_accumulate_every_kernel_bit_exact(
    isa: str, levels: int, wmax: int, threads: int, rng: np.random.Generator
) -> None:
    # Each (levels, max|Wq|) pair selects a kernel (on AVX2 by the saturation bound of its int16 sums); its
    # worst cases sit at the bound: rows of q = levels against rows of w = +-wmax, and random values.
    kernel = native.kernel_name(np.array([[wmax if wmax < 128 else -128]]), levels, isa)
    if isa == "avx2":
        assert kernel == AVX2_KERNELS[(levels, wmax)]
    else:
        assert kernel.startswith(isa)
    k = 1031  # not a multiple of any k-group width
    q = rng.integers(0, levels + 1, (37, k), dtype=np.uint8)
    q[:3] = levels
    q[3, ::2] = 0
    lo = -128 if wmax == 128 else -wmax
    wq = rng.integers(lo, min(wmax, 127) + 1, (23, k), dtype=np.int8)
    wq[0], wq[1] = min(wmax, 127), lo
    wq[2] = np.where(np.arange(k) % 2, min(wmax, 127), lo)
    wq[3, :4] = lo  # so max |w| is wmax whichever rows the random draw gives
    got = native.accumulate(q, wq, isa, threads, levels=levels)
    np.testing.assert_array_equal(got.astype(np.int64), q.astype(np.int64) @ wq.astype(np.int64).T)
    for rows in (1, 2):  # the GEMV paths of one and two rows
        got = native.accumulate(q[:rows], wq, isa, threads, levels=levels)
        np.testing.assert_array_equal(got.astype(np.int64), q[:rows].astype(np.int64) @ wq.astype(np.int64).T)


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("levels", [255, 127])
def test_quantize_rows_bit_exact(isa: str, levels: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((37, 45)).astype(np.float32) * 3
    x[3] = 1.5  # constant window
    x[4] = 0.0  # all zeros
    x[5, :] = np.linspace(-1, 1, 45, dtype=np.float32)  # exact .5 boundaries are likely
    x[6] = rng.integers(-3, 3, 45).astype(np.float32)  # many ties
    # Ranges below L / FLT_MAX: s = L / (mx - mn) overflows to +inf, every v > mn clips to L (rows 7-9 share a
    # 16-row vector with ordinary rows; row 33 is in the 8-row tail of an AVX2 panel)
    for r in (7, 9, 33):
        x[r] = 0.0
        x[r, 1::3] = np.float32(1e-38)
        x[r, 2::5] = np.float32(1e-45)
    x[8, :] = np.float32(-1e-38)
    x[8, ::2] = np.float32(3e-39)
    q, mn, rx = native.quantize_rows(x, levels, isa)
    with np.errstate(over="ignore", invalid="ignore"):
        q_e, mn_e, rx_e = contract_quantize(x, levels)
    np.testing.assert_array_equal(mn, mn_e)
    np.testing.assert_array_equal(rx, rx_e)
    bad = np.argwhere(q != q_e)
    assert bad.size == 0, (
        f"{len(bad)} codes differ, first at {tuple(bad[0])}: {q[tuple(bad[0])]} vs {q_e[tuple(bad[0])]}"
    )


CONV_CASES: dict[str, tuple[tuple[int, ...], int, tuple[int, int], dict[str, Any]]] = {
    # name: (x shape, M, kernel, attrs)
    "vgg_like": ((2, 8, 12, 12), 16, (3, 3), {"pads": [1, 1, 1, 1]}),
    "stride2": ((1, 5, 13, 11), 7, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "dilation": ((1, 4, 15, 15), 9, (3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    "asym_pads": ((2, 3, 10, 9), 5, (3, 2), {"pads": [0, 1, 2, 0]}),
    "groups": ((1, 8, 9, 9), 12, (3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
    "depthwise": ((2, 6, 8, 8), 6, (3, 3), {"group": 6, "pads": [1, 1, 1, 1], "strides": [1, 2]}),
    # the direct depthwise kernel: unit strides (padded-row positions), a channel multiplier, dilation
    "depthwise_s1": ((2, 5, 9, 11), 5, (3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),
    "depthwise_mult": ((1, 4, 8, 8), 8, (3, 3), {"group": 4, "pads": [0, 1, 2, 1]}),
    "depthwise_dilated": ((1, 3, 12, 12), 3, (5, 5), {"group": 3, "pads": [4, 4, 4, 4], "dilations": [2, 2]}),
    "depthwise_s2": ((1, 4, 13, 13), 4, (3, 3), {"group": 4, "pads": [0, 0, 1, 1], "strides": [2, 2]}),
    "one_by_one": ((3, 17, 5, 7), 33, (1, 1), {}),
    "big_k": ((1, 70, 6, 6), 13, (3, 3), {"pads": [1, 1, 1, 1]}),
    "wide_rows": ((1, 3, 3, 40), 4, (1, 5), {"pads": [0, 2, 0, 2], "strides": [1, 3]}),
    # rows of >= 32 outputs: full panels without padding are quantized straight from the input
    "direct_panels": ((2, 5, 6, 40), 7, (3, 3), {"pads": [1, 1, 1, 1]}),
    "direct_dilated": ((1, 4, 9, 70), 6, (3, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1], "strides": [2, 1]}),
    # stride 1 in bands of panels, each padded by its work item: 3 bands of 18/18/3 panels at 1 thread (4 at
    # 2 threads), starting mid-row, the last channel block partial; a dilated kernel whose band halo is 4 rows
    "bands": ((1, 200, 40, 29), 13, (3, 3), {"pads": [1, 1, 1, 1]}),
    "bands_dilated": ((2, 160, 30, 20), 9, (3, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}),
    # strided: bands of sh x sw phase planes (ResNet's 7x7/2 stem, 3x3/2), 2 bands at 2 threads; a one-column
    # input whose odd phase is all padding
    "bands_stride2": ((1, 96, 40, 30), 10, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "stem_7x7_s2": ((2, 3, 40, 60), 8, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    "stride3_narrow": ((1, 4, 10, 1), 5, (3, 1), {"strides": [3, 2], "pads": [1, 0, 2, 0]}),
    # too many dropped columns for the bands: gathered, full panels of one output row straight from the input
    "direct_wide_dilation": ((1, 4, 9, 70), 6, (3, 3), {"dilations": [2, 12]}),
}


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize(
    ("threads", "relu", "levels", "wmax"),
    # 255x127 int16 on AVX2; 127x127 and 255x64 u8s8; 127x64 (BigDL) the pair-sum kernel
    [(1, False, 255, 127), (2, True, 255, 127), (2, False, 127, 127), (1, True, 127, 64), (2, False, 255, 64)],
)
def test_qconv_matches_reference(
    isa: str,
    case: str,
    threads: int,
    relu: bool,
    levels: int,
    wmax: int,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(native.ISA_ENV, isa)
    shape, m, kernel, attrs = CONV_CASES[case]
    g = attrs.get("group", 1)
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, :, : shape[2] // 3, : shape[3] // 3] = 0.25  # constant patches in a corner
    wq = rng.integers(-wmax, wmax + 1, (m, shape[1] // g, *kernel), dtype=np.int8)
    wq.reshape(m, -1)[0, 0] = -wmax
    params = q_params(rng, m, wq[0].size, bias=case != "one_by_one")
    kw = {"kernel_shape": list(kernel), "input_levels": levels, "activation": "Relu" if relu else "", **attrs}
    got, counts = run_q_node("QConv", x, wq, params, ("native",), threads, **kw)
    assert counts == {"native": 1}
    want, _ = run_q_node("QConv", x, wq, params, ("ref",), 1, **kw)
    scale = float(np.abs(want).max())
    assert_close(got, want, rtol=1e-6, atol=1e-6 * scale, what=f"QConv {case} on {isa}")
    if relu:
        assert (got >= 0).all()


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize(
    ("shape", "m"),
    # 1-2 rows take the channel-vectorized GEMV path on AVX2 (4 blocks at a time, then single blocks)
    [((1, 25), 3), ((1, 4097), 25), ((2, 1000), 37), ((8, 301), 37), ((2, 3, 64), 10), ((33, 4096), 19)],
)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("levels", "wmax"), [(255, 127), (127, 64), (255, 64)])
def test_qgemm_matches_reference(
    isa: str,
    shape: tuple[int, ...],
    m: int,
    threads: int,
    levels: int,
    wmax: int,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(native.ISA_ENV, isa)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1, shape[-1])[0] = -2.0  # a constant row: y = mn * w_sum + B exactly
    wq = rng.integers(-wmax, wmax + 1, (m, shape[-1]), dtype=np.int8)
    params = q_params(rng, m, shape[-1], bias=True)
    kw = {"input_levels": levels, "activation": "Relu" if threads == 2 else ""}
    got, counts = run_q_node("QGemm", x, wq, params, ("native",), threads, **kw)
    assert counts == {"native": 1}
    want, _ = run_q_node("QGemm", x, wq, params, ("ref",), 1, **kw)
    assert got.shape == (*shape[:-1], m)
    assert_close(got, want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()), what=f"QGemm {shape} on {isa}")
    if threads == 1:  # the constant row, checked against the closed form too
        first = got.reshape(-1, m)[0]
        assert_close(first, np.float32(-2.0) * params["w_sum"] + params["B"], rtol=1e-6, atol=1e-6, what="constant row")


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize(
    ("shape", "m", "kernel", "attrs"),
    [
        ((2, 8, 9, 9), 8, (3, 3), {"pads": [1, 1, 1, 1]}),  # padded, banded rows
        ((1, 16, 6, 7), 24, (1, 1), {}),  # 1x1
        ((1, 5, 11, 11), 7, (3, 3), {"strides": [2, 2]}),  # the gather path
        ((1, 6, 8, 8), 6, (3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),  # depthwise: added after its kernel
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_qconv_fused_residual_add(
    isa: str,
    shape: tuple[int, ...],
    m: int,
    kernel: tuple[int, int],
    attrs: dict[str, Any],
    relu: bool,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # QConv -> Add(R) [-> Relu]: the executor fuses the Add (and the Relu) into the native epilogue; the
    # output must equal the unfused graph's on the numpy reference kernels.
    from convertmodel.ir import GraphBuilder
    from convertmodel.ir.schema import CM_DOMAIN
    from convertmodel.runtime import Executor

    monkeypatch.setenv(native.ISA_ENV, isa)
    g = attrs.get("group", 1)
    x = rng.standard_normal(shape).astype(np.float32)
    wq = rng.integers(-127, 128, (m, shape[1] // g, *kernel), dtype=np.int8)
    p = q_params(rng, m, wq[0].size, bias=True)
    kw = {"kernel_shape": list(kernel), "input_levels": 255, "activation": "", **attrs}
    conv_y, _ = run_q_node("QConv", x, wq, p, ("ref",), **kw)
    r = rng.standard_normal(conv_y.shape).astype(np.float32)
    b = GraphBuilder("res")
    xi, ri = b.add_input("X", "float32", x.shape), b.add_input("R", "float32", r.shape)
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
    got = ex.run({"X": x, "R": r})[s]
    want = Executor(graph, ("ref",)).run({"X": x, "R": r})[s]
    scale = float(np.abs(want).max())
    assert_close(got, want, rtol=1e-6, atol=1e-6 * scale, what=f"QConv + residual on {isa}")
    if relu:
        assert (got >= 0).all()
