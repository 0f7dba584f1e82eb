"""QConv/QGemm ``arith="bigquant"`` (BigDL's BigQuant arithmetic, docs/quantization.md section 9) as a runtime
mode: recorded in the .q8, refused when misspelt, and its int16 lane saturation. The numbers themselves are
checked against real BigDL in test_fixtures.py (every BigDL-quantized fixture within 1e-4)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convertmodel
from convertmodel.errors import ConvertModelError
from tests.helpers import FIXTURES, run_ir_node

LENET_Q = os.path.join(FIXTURES, "bigdl", "v2.4", "lenet_q.bigdl")


def test_q8_keeps_the_arithmetic(tmp_path: object) -> None:
    m = convertmodel.load(LENET_Q)
    out = os.path.join(str(tmp_path), "lenet_q.q8")
    m.save(out)
    back = convertmodel.load(out)
    arith = [n.attrs.get("arith") for n in back.graph.nodes if n.op_type in ("QConv", "QGemm")]
    assert arith == ["bigquant"] * 5
    x = np.load(os.path.join(FIXTURES, "bigdl", "inputs", "lenet.npy"))
    np.testing.assert_array_equal(np.asarray(back.predict(x)), np.asarray(m.predict(x)))
    np.testing.assert_allclose(np.asarray(back.predict(x)), np.load(LENET_Q + ".out.npy"), rtol=0, atol=1e-6)


def _qgemm(x: np.ndarray, wq: np.ndarray, arith: str, backends: tuple[str, ...] = ("ref",)) -> np.ndarray:
    m = wq.shape[0]
    ins = {"x": x, "wq": wq, "ws": np.full(m, 1 / 64, np.float32), "wsum": np.zeros(m, np.float32)}
    (y,) = run_ir_node(
        "QGemm", ins, ["wq", "ws", "wsum"], domain="convertmodel", backends=backends, input_levels=127, arith=arith
    )
    return y


def test_int16_lanes_saturate() -> None:
    # codes: 0 then 63 x 127; weights all 64. Each of the 4 lanes of a 32-k super-block sums 4 pairs of
    # 2 * 127 * 64 = 16256 (the first lane 8128 + 3 x 16256) and saturates at 32767 after the third.
    x = np.ones((1, 64), np.float32)
    x[0, 0] = 0
    wq = np.full((1, 64), 64, np.int8)
    y = _qgemm(x, wq, "bigquant")
    acc = 8 * 32767
    want = np.float32(acc) * (np.float32(1) / np.float32(127) * np.float32(1 / 64))
    assert float(y[0, 0]) == pytest.approx(float(want), rel=1e-6)
    contract = _qgemm(x, wq, "contract")  # exact int32: 63 x 127 x 64
    assert float(contract[0, 0]) == pytest.approx(63 * 127 * 64 / 127 / 64, rel=1e-6)
    # The native kernels leave the mode to the reference: the same numbers with native first.
    np.testing.assert_array_equal(_qgemm(x, wq, "bigquant", ("native", "ref")), y)


def test_unknown_arithmetic_is_refused() -> None:
    with pytest.raises(ConvertModelError, match="arith must be one of"):
        _qgemm(np.ones((1, 8), np.float32), np.ones((2, 8), np.int8), "fast")
