"""`quantize --calib DATA --max-drop X`: the accuracy-aware path of the quantize command."""

from __future__ import annotations

import json
import os

import pytest

from convertmodel import errors, load
from tests.cli import run_cli
from tests.helpers import FIXTURES

DATA = os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-images-idx3-ubyte.gz")
LABELS = os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-labels-idx1-ubyte.gz")
LENET = os.path.join(FIXTURES, "fmnist", "lenet5.onnx")


def _run(args: list[str]) -> int:
    return run_cli(args)[0]


def test_unmeetable_budget_exits_6_and_keeps_best_model(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = os.path.join(str(tmp_path), "lenet5.q8")
    # A negative budget demands int8 be *better* than fp32 by 50 points: no fallback can meet it.
    code = _run(
        [
            "--json",
            "quantize",
            "--in",
            LENET,
            "--out",
            out,
            "--calib",
            DATA,
            "--calib-labels",
            LABELS,
            "--max-drop",
            "-50",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == errors.EXIT_ACCURACY_GATE
    assert os.path.exists(out), "the best model found must be written even when the budget is missed"
    steps = report["fallback"]["steps"]
    assert len(steps) > 1, "the search must have tried falling back layers"
    fp32_layers = json.loads(load(out).metadata["fallback_fp32_layers"])
    assert isinstance(fp32_layers, list)


def test_calib_and_max_drop_go_together(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = os.path.join(str(tmp_path), "x.q8")
    assert _run(["quantize", "--in", LENET, "--out", out, "--calib", DATA]) == errors.EXIT_USAGE
    assert not os.path.exists(out)


def test_met_budget_exits_0(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = os.path.join(str(tmp_path), "ok.q8")
    code = _run(
        [
            "--quiet",
            "quantize",
            "--in",
            LENET,
            "--out",
            out,
            "--calib",
            DATA,
            "--calib-labels",
            LABELS,
            "--max-drop",
            "1.0",
        ]
    )
    assert code == 0
    assert load(out).is_quantized


def test_calib_combines_with_compat_and_levels(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every quantize option holds on the accuracy-aware path: the fallback keeps layers fp32 by name on
    top of --compat bigdl and --input-levels, and the model records all of it."""
    import numpy as np

    from convertmodel.quant.ops import quantized_nodes

    out = os.path.join(str(tmp_path), "bigdl.q8")
    args = ["--json", "quantize", "--in", LENET, "--out", out, "--calib", DATA, "--calib-labels", LABELS]
    # 2-level input windows cost real accuracy (8 points), so the search has to fall layers back.
    # It falls back 3 of the 4 layers left: a budget met by giving up on int8, accepted here (--min-int8 0).
    extra = ["--min-int8", "0"]
    code = _run([*args, "--max-drop", "0.5", "--compat", "bigdl", "--input-levels", "2", "--exclude", "fc1/*", *extra])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["drop"]
    q = load(out)
    info = q.quantization
    assert info is not None and info.compat == "bigdl" and info.weight_levels == 64 and info.input_levels == 2
    fallen = report["fallback"]["fp32_layers"]
    assert fallen and list(info.fp32_layers) == fallen == json.loads(q.metadata["fallback_fp32_layers"])
    assert info.excluded == ("fc1/*",) and info.kept["fc1/MatMul"].reason == "excluded by pattern 'fc1/*'"
    for name in fallen:
        assert info.kept[name].reason == "kept fp32 by the accuracy-aware fallback"
    nodes = quantized_nodes(q.graph)
    assert nodes and not {n.name for n in nodes} & {"fc1/MatMul", *fallen}
    for n in nodes:
        assert n.attrs["input_levels"] == 2
        assert int(np.abs(q.graph.constants[n.inputs[1]]).max()) <= 64  # BigDL's re-quantized weights
