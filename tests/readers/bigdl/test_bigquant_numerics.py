"""Where BigDL's int8 conv outputs differ from convertmodel's int8 contract, located with an executable
statement of BigQuant's conv-input quantization (tests/readers/bigdl/bigquant_emulation.py).

The BigDL-quantized graph convertmodel reads is run node by node: QConv through the emulation, every
other node through convertmodel's own runtime. On the ResNet-style and functional-Graph fixtures that
reproduces BigDL's recorded int8 output to float rounding, while the contract's round-half-up codes
are >1000x further off: the weights, windows, biases and epilogue the reader produces are BigDL's,
and the difference is BigQuant's input codes (truncating scalar paths, round-to-even SIMD blocks).

Measured (max |diff| vs BigDL 2.4, emulated / contract): resnet 2.2e-8 / 6.9e-5, graph 2.2e-8 / 1.2e-4,
lenet 6.1e-2 / 3.3e-1 (three of its four samples 4e-6), inception 1.8e-4 / 1.2e-3 (one sample 2e-7),
vgg_bn 5.5e-5 / 5.6e-5: what moves the remaining samples is not found yet (not int16 saturation, not
the fully connected layers).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import convertmodel
from convertmodel.ir.schema import resolve_attrs
from tests.helpers import FIXTURES, run_ir_node
from tests.readers.bigdl.bigquant_emulation import bigquant_conv

ROOT = os.path.join(FIXTURES, "bigdl")


def _run_emulated(path: str, x: np.ndarray) -> np.ndarray:
    g = convertmodel.load(path).graph
    env: dict[str, np.ndarray] = {g.inputs[0].name: x}
    for n in g.nodes:
        args = [g.constants[i] if i in g.constants else env[i] if i else None for i in n.inputs]
        if n.op_type == "QConv":
            a = resolve_attrs(n)
            assert a["group"] == 1 and tuple(a["dilations"]) == (1, 1) and a["input_levels"] == 127
            pads = tuple(a["pads"])
            assert pads[:2] == pads[2:]
            x_, wq, ws, wsum = args[:4]
            y = bigquant_conv(x_, wq, ws, wsum, args[4] if len(args) > 4 else None, tuple(a["strides"]), pads[:2])
            if a["activation"] == "Relu":
                y = np.maximum(y, 0)
            env[n.outputs[0]] = y
            continue
        names = [f"in{k}" for k in range(len(args))]
        consts = [nm for nm, i in zip(names, n.inputs, strict=True) if i in g.constants]
        outs = run_ir_node(
            n.op_type, dict(zip(names, args, strict=True)), consts, len(n.outputs), n.domain, **dict(n.attrs)
        )
        env.update(zip(n.outputs, outs, strict=True))
    return env[g.outputs[0].name]


@pytest.mark.parametrize("net", ["resnet", "graph"])
def test_bigquant_input_codes_explain_the_difference(net: str) -> None:
    path = os.path.join(ROOT, "v2.4", f"{net}_q.bigdl")
    x = np.load(os.path.join(ROOT, "inputs", f"{net}.npy"))
    ref = np.load(os.path.join(ROOT, "v2.4", f"{net}_q.bigdl.out.npy"))
    contract = np.asarray(convertmodel.load(path).predict(x)).reshape(ref.shape)
    emulated = np.asarray(_run_emulated(path, x)).reshape(ref.shape)
    err_contract = float(np.abs(contract - ref).max())
    err_emulated = float(np.abs(emulated - ref).max())
    assert err_emulated <= 1e-6, err_emulated
    assert err_contract >= 50 * max(err_emulated, 1e-7), (err_contract, err_emulated)
