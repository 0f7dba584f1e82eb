"""scripts/bigdl/bigquant_conv_ref.py (BigDL 2.4's int8 convolution, re-stated in numpy) against BigDL 2.4's own
int8 outputs recorded in fixtures/bigdl (the conv3x3 / conv1x1 probes: SIMD-rounded and truncated codes mixed)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest

from convertmodel.model import load

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(REPO, "fixtures", "bigdl")


def _ref() -> Any:
    spec = importlib.util.spec_from_file_location("bq", os.path.join(REPO, "scripts", "bigdl", "bigquant_conv_ref.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("net", "stride", "pad"), [("conv3x3", 1, 1), ("conv1x1", 2, 0)])
def test_reference_reproduces_bigdl_int8_conv(net: str, stride: int, pad: int) -> None:
    x = np.load(os.path.join(FIX, "inputs", f"{net}.npy"))
    g = load(os.path.join(FIX, "v2.4", f"{net}.bigdl"), input_shape=list(x.shape)).graph
    conv = next(n for n in g.nodes if n.op_type == "Conv")
    w, b = g.constants[conv.inputs[1]], g.constants[conv.inputs[2]]
    y = _ref().bigquant_conv(x, w, stride, pad) + b[None, :, None, None]
    bigdl = np.load(os.path.join(FIX, "v2.4", f"{net}_q.bigdl.out.npy"))
    fp32 = np.load(os.path.join(FIX, "v2.4", f"{net}.bigdl.out.npy"))
    scale = float(np.abs(bigdl).max())
    assert np.abs(y - bigdl).max() < 1e-5 * scale
    assert np.abs(fp32 - bigdl).max() > 1e-3 * scale  # the int8 output really differs from fp32
