"""Where BigDL's int8 outputs differ from convertmodel's int8 contract, located with an executable
statement of BigQuant's arithmetic (tests/readers/bigdl/bigquant_emulation.py).

The BigDL-quantized graph convertmodel reads is run node by node: QConv and QGemm through the
emulation, every other node through convertmodel's own runtime. On six of the eight conv fixtures
(BigDL 0.3.0 and 2.4 alike) that reproduces BigDL's recorded int8 output to float rounding,
1,000-100,000x closer than the contract: the weights (64-level re-quantization), windows, biases and row sums the reader
produces are exactly BigDL's, and the differences are BigQuant's input codes (truncating FMA scalar
paths, round-to-even SIMD blocks, std::round for Linear), its int16 lane saturation and its fused
epilogue.

Measured (max |diff| vs BigDL, emulated / contract; 0.3.0 and 2.4 agree): lenet 4.8e-7 / 3.3e-1,
vgg_bn 2.2e-8 / 5.6e-5, resnet 3e-8 / 6.9e-5, graph 2.2e-8 / 1.2e-4, nhwc 1.2e-7 / 1.2e-3 (2.4),
grouped_dilated 2.4e-7 / 1.0e-4 (2.4), tables 2.4e-7 / 5e-4, inception 2.4e-7 / 1.2e-3 once the LRN
before its convolutions is computed as BigDL does (truncated codes flip on its last-bit differences;
BigDL 0.3 takes the power in float64, 2.4 in float32). Not yet explained: upsample 1.6e-3 (LRN,
ConvTranspose, PReLU and Resize in fp32 before its convolutions), BigDL 0.3's grouped_dilated 1.8e-3.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import convertmodel
from tests.helpers import FIXTURES
from tests.readers.bigdl.bigquant_emulation import run_emulated

ROOT = os.path.join(FIXTURES, "bigdl")


EXPLAINED = [(gen, net) for gen in ("v0.3", "v2.4") for net in ("lenet", "vgg_bn", "resnet", "graph", "nhwc")] + [
    ("v2.4", "grouped_dilated")
]


@pytest.mark.parametrize(("gen", "net"), EXPLAINED)
def test_bigquant_arithmetic_explains_the_difference(gen: str, net: str) -> None:
    path = os.path.join(ROOT, gen, f"{net}_q.bigdl")
    if not os.path.exists(path):
        pytest.skip(f"{path} not generated")
    x = np.load(os.path.join(ROOT, "inputs", f"{net}.npy"))
    ref = np.load(path + ".out.npy")
    contract = np.asarray(convertmodel.load(path).predict(x)).reshape(ref.shape)
    emulated = np.asarray(run_emulated(path, x, np.float64 if gen == "v0.3" else np.float32)).reshape(ref.shape)
    err_contract = float(np.abs(contract - ref).max())
    err_emulated = float(np.abs(emulated - ref).max())
    assert err_emulated <= 1e-6, err_emulated
    assert err_contract >= 50 * max(err_emulated, 1e-7), (err_contract, err_emulated)
