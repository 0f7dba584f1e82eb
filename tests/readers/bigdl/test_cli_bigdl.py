"""quantize, verify and inspect through the CLI on real BigDL files (protobuf, .weights pair, .t7,
BigDL-quantized)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import convertmodel
from tests.cli import run_cli
from tests.helpers import FIXTURES

BIGDL = os.path.join(FIXTURES, "bigdl", "v2.4")
FMNIST = os.path.join(FIXTURES, "fmnist", "data")


@pytest.mark.parametrize("name", ["lenet.bigdl", "lenet_split.bigdl", "lenet.t7"])
def test_quantize_then_predict(tmp_path: object, capsys: pytest.CaptureFixture[str], name: str) -> None:
    src = os.path.join(BIGDL, name)
    out = os.path.join(str(tmp_path), "lenet.q8")
    rc, _, err = run_cli(["-q", "quantize", "--in", src, "--out", out], capsys)
    assert rc == 0, err
    x = np.load(os.path.join(FIXTURES, "bigdl", "inputs", "lenet.npy"))
    ref = np.load(os.path.join(BIGDL, "lenet.bigdl.out.npy"))
    y = np.asarray(convertmodel.load(out).predict(x))
    assert y.shape == ref.shape
    assert (y.argmax(1) == ref.argmax(1)).all()
    assert float(np.abs(y - ref).max()) < 0.05 * float(np.abs(ref).max())


def test_inspect_bigdl_quantized(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["--json", "inspect", os.path.join(BIGDL, "lenet_q.bigdl")], capsys)
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["format"] == "bigdl"
    assert json.loads(rep["metadata"]["quantization"])["counts"]["quantized"] == {"QConv": 2, "QGemm": 3}


def test_verify_bigdl_on_fashion_mnist(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    report = os.path.join(str(tmp_path), "verify.json")
    args = [
        "-q",
        "verify",
        os.path.join(BIGDL, "lenet.bigdl"),
        "--data",
        os.path.join(FMNIST, "t10k-1000-images-idx3-ubyte.gz"),
        "--labels",
        os.path.join(FMNIST, "t10k-1000-labels-idx1-ubyte.gz"),
        "--preset",
        "fmnist",
        "--limit",
        "300",
        "--max-drop",
        "2",
        "--json",
        report,
    ]
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    with open(report) as f:
        rep = json.load(f)
    assert rep["fp32"]["samples"] == 300 and rep["fp32"]["top1"] > 85  # the trained Fashion-MNIST LeNet
    assert rep["drop"]["passed"] and rep["agreement"]["top1_agreement"] > 97
