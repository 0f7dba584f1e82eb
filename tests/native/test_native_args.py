"""Hostile arguments to the native int8 entry points: typed errors or empty results, never a crash.

Every case runs the extension in this process: a SIGFPE or SIGSEGV would kill the test run, so reaching
the assertion at all is part of what is tested. Zero-size work gives empty outputs of the right shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from convertmodel.runtime import native
from tests.native._util import needs_native, q_params, run_q_node

pytestmark = [pytest.mark.native, needs_native]


def ext() -> Any:
    return native._ext


def conv_args(**over: Any) -> dict[str, Any]:
    """Keyword arguments of a valid qconv call (1, 2, 5, 5) x (3, 2, 3, 3); `over` replaces some."""
    wq = np.ones((3, 18), np.int8)
    args: dict[str, Any] = {
        "x": np.ones((1, 2, 5, 5), np.float32),
        "packed": ext().pack_weights(wq, 1, "", 255),
        "w_scale": np.ones(3, np.float32),
        "w_sum": np.ones(3, np.float32),
        "bias": None,
        "kernel": [3, 3],
        "strides": [1, 1],
        "pads": [1, 1, 1, 1],
        "dilations": [1, 1],
        "levels": 255.0,
        "relu": False,
        "threads": 1,
    }
    args.update(over)
    return args


def test_valid_call_runs() -> None:
    assert ext().qconv(**conv_args()).shape == (1, 3, 5, 5)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"strides": [0, 1]}, "strides = 0"),
        ({"strides": [1, -3]}, "strides = -3"),
        ({"dilations": [-1, 1]}, "dilations = -1"),
        ({"dilations": [0, 1]}, "dilations = 0"),
        ({"pads": [-1, 0, 0, 0]}, "pads = -1"),
        ({"pads": [0, 0, 2**40, 0]}, "pads"),
        ({"kernel": [0, 3]}, "kernel_shape = 0"),
        ({"kernel": [65536, 65537]}, "too large|weights expect"),
        ({"kernel": [2**40, 1]}, "kernel_shape"),
        ({"kernel": [3, 3], "dilations": [2**29, 1]}, "larger than the padded input|too large"),
        ({"kernel": [7, 7], "pads": [0, 0, 0, 0]}, "weights expect"),
        ({"levels": 0.0}, "input_levels"),
        ({"levels": 256.0}, "input_levels"),
        ({"levels": 127.5}, "input_levels"),
        ({"threads": -1}, "threads"),
        ({"w_scale": np.ones(2, np.float32)}, "w_scale"),
        ({"bias": np.ones(4, np.float32)}, "B must have"),
        ({"x": np.ones((1, 3, 5, 5), np.float32)}, "weights expect"),
        ({"x": np.ones((2, 5, 5), np.float32)}, "4-D"),
        ({"out": np.ones((1, 3, 5, 4), np.float32)}, "out"),
        ({"residual": np.ones((1, 3, 5, 4), np.float32)}, "residual must have the output's shape"),
        ({"residual": np.ones((3, 5, 5), np.float32)}, "residual must have the output's shape"),
    ],
)
def test_hostile_geometry_is_a_value_error(over: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ext().qconv(**conv_args(**over))


def test_residual_may_not_be_the_output_buffer() -> None:
    out = np.zeros((1, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match="residual must not be the output"):
        ext().qconv(**conv_args(out=out, residual=out))
    res = np.full((1, 3, 5, 5), 2.0, np.float32)
    plain = ext().qconv(**conv_args())
    np.testing.assert_array_equal(ext().qconv(**conv_args(residual=res)), plain + res)


def test_kernel_larger_than_padded_input() -> None:
    wq = np.ones((3, 2 * 9 * 9), np.int8)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ext().qconv(**conv_args(packed=ext().pack_weights(wq, 1), kernel=[9, 9], pads=[0, 0, 0, 0]))


def test_zero_batch_gives_an_empty_output() -> None:
    y = ext().qconv(**conv_args(x=np.ones((0, 2, 5, 5), np.float32)))
    assert y.shape == (0, 3, 5, 5)
    y = ext().qgemm(
        np.ones((0, 7), np.float32),
        ext().pack_weights(np.ones((4, 7), np.int8)),
        *[np.ones(4, np.float32)] * 2,
        None,
        255.0,
        False,
        1,
    )
    assert y.shape == (0, 4)
    assert native.accumulate(np.zeros((0, 5), np.uint8), np.ones((3, 5), np.int8)).shape == (0, 3)


def test_zero_output_channels_give_an_empty_output() -> None:
    packed = ext().pack_weights(np.ones((0, 18), np.int8))
    y = ext().qconv(**conv_args(packed=packed, w_scale=np.ones(0, np.float32), w_sum=np.ones(0, np.float32)))
    assert y.shape == (1, 0, 5, 5)
    assert native.accumulate(np.ones((4, 5), np.uint8), np.ones((0, 5), np.int8)).shape == (4, 0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda e: e.pack_weights(np.ones((3, 0), np.int8)), "K = 0"),
        (lambda e: e.pack_weights(np.ones((3, 4), np.int8), 2), "multiple of group"),
        (lambda e: e.pack_weights(np.ones((3, 4), np.int8), 0), "group = 0"),
        (lambda e: e.pack_weights(np.ones((3, 4), np.int8), 2**40), "group"),
        (lambda e: e.pack_weights(np.ones((3, 4), np.int8), 1, "", 300.0), "input_levels"),
        (lambda e: e.accumulate(np.ones((2, 0), np.uint8), np.ones((3, 0), np.int8)), "K = 0"),
        (lambda e: e.accumulate(np.full((2, 3), 200, np.uint8), np.ones((3, 3), np.int8), "", 1, 127.0), "> levels"),
        (lambda e: e.quantize_rows(np.ones((4, 0), np.float32), 255.0), "K = 0"),
        (lambda e: e.quantize_rows(np.ones((4, 3), np.float32), -1.0), "input_levels"),
        (
            lambda e: e.qgemm(
                np.ones((2, 5), np.float32),
                e.pack_weights(np.ones((4, 7), np.int8)),
                *[np.ones(4, np.float32)] * 2,
                None,
                255.0,
                False,
                1,
            ),
            "K = 7",
        ),
    ],
)
def test_hostile_sizes_are_value_errors(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(ext())


def test_accumulator_overflow_is_refused() -> None:
    # 255 * 127 * K must fit int32: K = 70,000 could overflow, so the kernels refuse it rather than wrap.
    k = 70_000
    wq = np.full((1, k), 127, np.int8)
    with pytest.raises(ValueError, match="overflow"):
        native.accumulate(np.zeros((1, k), np.uint8), wq)
    # 127 levels with 64-level weights: 127 * 64 * 70,000 fits.
    got = native.accumulate(np.full((1, k), 127, np.uint8), np.full((1, k), 64, np.int8), levels=127)
    assert int(got[0, 0]) == 127 * 64 * k


def test_packed_levels_must_cover_the_call() -> None:
    # Weights packed for 127 levels may use a kernel that saturates at 255 (AVX2 pair sums): refused.
    if "avx2" not in native.available_isas():
        pytest.skip(f"this CPU does not support avx2 (only {native.available_isas()})")
    packed = ext().pack_weights(np.full((3, 18), 64, np.int8), 1, "avx2", 127.0)
    assert (packed.kernel, packed.max_levels) == ("avx2-pair", 127)
    with pytest.raises(ValueError, match="packed for at most"):
        ext().qconv(**conv_args(packed=packed, levels=255.0))


def test_executor_turns_native_errors_into_typed_errors(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    wq = rng.integers(-127, 128, (3, 2, 3, 3), dtype=np.int8)
    params = q_params(rng, 3, 18, bias=False)
    with pytest.raises(InvalidModelError, match="larger than the padded input"):
        run_q_node("QConv", x, wq, params, ("native",), 1, kernel_shape=[3, 3], dilations=[5, 5])
    with pytest.raises(InvalidModelError, match="input_levels"):
        run_q_node("QConv", x, wq, params, ("native",), 1, kernel_shape=[3, 3], input_levels=300)


def test_executor_zero_batch(rng: np.random.Generator) -> None:
    wq = rng.integers(-127, 128, (3, 2, 3, 3), dtype=np.int8)
    params = q_params(rng, 3, 18, bias=True)
    x = np.zeros((0, 2, 5, 5), np.float32)
    got, _ = run_q_node("QConv", x, wq, params, ("native",), 2, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert got.shape == (0, 3, 5, 5)
    got, _ = run_q_node("QGemm", np.zeros((0, 9), np.float32), wq.reshape(3, 18)[:, :9].copy(), params, ("native",), 2)
    assert got.shape == (0, 3)


def test_quantized_lenet_predicts_an_empty_batch() -> None:
    import convertmodel

    q = convertmodel.load("fixtures/fmnist/lenet5.onnx").quantize()
    y = q.predict(np.zeros((0, 1, 28, 28), np.float32))
    outs = list(y.values()) if isinstance(y, dict) else [y]
    assert all(np.asarray(o).shape[0] == 0 for o in outs)
