"""`quantize --calib DATA --max-drop X`: the accuracy-aware path of the quantize command."""

from __future__ import annotations

import json
import os

import pytest

from convertmodel import errors, load
from convertmodel.cli.main import main
from tests.helpers import FIXTURES

DATA = os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-images-idx3-ubyte.gz")
LABELS = os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-labels-idx1-ubyte.gz")
LENET = os.path.join(FIXTURES, "fmnist", "lenet5.onnx")


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as ei:
        main(args)
    return int(ei.value.code or 0)


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
