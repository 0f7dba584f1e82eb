"""The direct int8 depthwise kernel's fused strips (C/G = 1, no channel multiplier: depthwise.h dw_fused) give
the same bits as its separate passes (the channel-multiplier path), and match the numpy reference, on every
ISA path this machine has: several row blocks, images smaller than one strip, strides 1 and 2 with output rows
shorter and longer than a vector (stride 2: the phase planes against the gather), dilation, ReLU, batch > 1,
threads 1 and 2."""

from __future__ import annotations

import numpy as np
import pytest

from convertmodel.runtime import native
from tests.helpers import assert_close
from tests.native._util import isa_params, q_params, run_q_node

pytestmark = pytest.mark.native

CASES = {
    "blocks": ((2, 3, 40, 40), {"pads": [1, 1, 1, 1]}),  # 42-wide padded rows: 12 rows a block, 4 blocks
    "tiny": ((3, 4, 2, 2), {"pads": [1, 1, 1, 1]}),  # 2 x 4 padded positions: less than one strip
    "s2_short": ((2, 5, 14, 14), {"pads": [0, 0, 1, 1], "strides": [2, 2]}),  # 7 outputs a row
    "s2_long": ((1, 3, 37, 37), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),  # 19 outputs a row
    "s3_dilated": ((1, 2, 20, 23), {"pads": [2, 2, 2, 2], "strides": [3, 3], "dilations": [2, 2]}),
    "s1_5x5": ((1, 4, 17, 9), {"pads": [2, 2, 2, 2], "kernel": [5, 5]}),
    # stride 2 through the 2 x 2 phase planes: 5x5 over several row blocks (odd padded width), 2x2, and 1x1
    # (whose planes do not fit where its one tap would: the gather)
    "s2_5x5_blocks": ((1, 2, 100, 101), {"pads": [2, 2, 2, 2], "strides": [2, 2], "kernel": [5, 5]}),
    "s2_2x2": ((2, 3, 12, 11), {"strides": [2, 2], "kernel": [2, 2]}),
    "s2_1x1": ((1, 3, 9, 9), {"strides": [2, 2], "kernel": [1, 1]}),
}


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(("threads", "relu", "levels"), [(1, False, 255), (2, True, 127)])
def test_fused_strips_equal_the_passes_bit_for_bit(
    isa: str, case: str, threads: int, relu: bool, levels: int, rng: np.random.Generator, monkeypatch
) -> None:
    monkeypatch.setenv(native.ISA_ENV, isa)
    shape, geo = CASES[case]
    attrs = dict(geo)
    kernel = attrs.pop("kernel", [3, 3])
    c = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, :, : shape[2] // 3, : shape[3] // 3] = 0.5  # constant windows in a corner
    wq = rng.integers(-127, 128, (c, 1, *kernel), dtype=np.int8)
    p = q_params(rng, c, wq[0].size, bias=True)
    kw = {"kernel_shape": kernel, "input_levels": levels, "activation": "Relu" if relu else "", "group": c, **attrs}
    fused, counts = run_q_node("QConv", x, wq, p, ("native",), threads, **kw)
    assert counts == {"native": 1}
    # The same channels twice each (channel multiplier 2): the separate passes, the same float32 operations.
    wq2 = np.repeat(wq, 2, axis=0)
    p2 = {k: None if v is None else np.repeat(v, 2) for k, v in p.items()}
    passes, _ = run_q_node("QConv", x, wq2, p2, ("native",), threads, **kw)
    np.testing.assert_array_equal(fused, passes[:, 0::2])
    np.testing.assert_array_equal(fused, passes[:, 1::2])
    want, _ = run_q_node("QConv", x, wq, p, ("ref",), 1, **kw)
    assert_close(fused, want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()), what=f"depthwise {case} on {isa}")
