"""convertmodel's BigDL writer -> this reader: fp32 and BigDL-quantized files read back to the same model."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

import convertmodel
from convertmodel.runtime.executor import run_graph
from tests.cli import run_cli
from tests.helpers import FIXTURES

ONNX = os.path.join(FIXTURES, "fmnist", "lenet5.onnx")


@pytest.mark.parametrize("command", ["convert", "quantize"])
def test_written_bigdl_reads_back(tmp_path: object, capsys: pytest.CaptureFixture[str], command: str) -> None:
    out = os.path.join(str(tmp_path), "lenet.bigdl")
    rc, _, err = run_cli(["-q", command, "--in", ONNX, "--out", out], capsys)
    assert rc == 0, err
    back = convertmodel.load(out)
    src = convertmodel.load(ONNX)
    want = src if command == "convert" else src.quantize(compat="bigdl")
    x = np.load(os.path.join(FIXTURES, "bigdl", "inputs", "lenet.npy"))
    g = back.graph
    q_nodes = [n for n in g.nodes if n.op_type in ("QConv", "QGemm")]
    # A BigDL-quantized file runs with BigDL's arithmetic (arith="bigquant"); with the contract's, it is
    # exactly our --compat bigdl quantization (the same weights and windows).
    assert (
        [n.attrs.get("arith") for n in q_nodes]
        == ["bigquant"] * len(q_nodes)
        == ["bigquant"] * (5 if command == "quantize" else 0)
    )
    nodes = [dataclasses.replace(n, attrs={**n.attrs, "arith": "contract"}) if n in q_nodes else n for n in g.nodes]
    g = g.replace(nodes=nodes)
    y = np.asarray(run_graph(g, {g.inputs[0].name: x})[g.outputs[0].name])
    ref = np.asarray(want.predict(x))
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-7)
    assert back.is_quantized == (command == "quantize")
