"""``convertmodel bench --against onnxruntime``: onnxruntime fp32 and static int8 in the same alternating run."""

from __future__ import annotations

import json
import os

import pytest

from convertmodel import errors
from tests.cli import run_cli

FMNIST = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "fmnist")


@pytest.mark.parametrize("model", ["mobilenet.onnx", "lenet5.caffemodel"])  # ONNX as is; Caffe exported
def test_against_onnxruntime_reports_both_precisions(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    path = os.path.join(FMNIST, model)
    code, out, _ = run_cli(
        ["bench", path, "--batch", "4", "--warmup", "1", "--iterations", "2", "--against", "onnxruntime", "--json"],
        capsys,
    )
    assert code == 0
    r = json.loads(out)
    assert set(r["results"]) == {"fp32", "int8", "ort_fp32", "ort_int8"}
    for k in r["results"]:
        assert r["results"][k]["iterations"] == 2 and r["results"][k]["p50_ms"] > 0
    # The ratios are the medians' quotient, ours over onnxruntime's throughput.
    for k in ("fp32", "int8"):
        want = r["results"][f"ort_{k}"]["p50_ms"] / r["results"][k]["p50_ms"]
        assert r["vs_onnxruntime"][k] == pytest.approx(want)
    assert "per-channel" in r["against"]["int8_scheme"] or "per-tensor" in r["against"]["int8_scheme"]
    assert set(r["backends"]) == {"fp32", "int8"}  # per-layer/backends are ours only


def test_against_table_prints_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    path = os.path.join(FMNIST, "mobilenet.onnx")
    code, out, _ = run_cli(["bench", path, "--iterations", "1", "--warmup", "0", "--against", "onnxruntime"], capsys)
    assert code == 0
    assert "ort_fp32" in out and "ours / onnxruntime fp32" in out and "ours / onnxruntime int8" in out


def test_against_unknown_peer_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["bench", "zoo:vgg16", "--against", "tvm"], capsys)
    assert code == errors.EXIT_USAGE
    assert "tvm" in err


def test_against_a_q8_without_reference_is_a_usage_error(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    q8 = os.path.join(str(tmp_path), "m.q8")
    assert run_cli(["quantize", "--in", os.path.join(FMNIST, "lenet5.onnx"), "--out", q8], capsys)[0] == 0
    code, _, err = run_cli(["bench", q8, "--iterations", "1", "--against", "onnxruntime"], capsys)
    assert code == errors.EXIT_USAGE
    assert "--reference" in err and "Traceback" not in err
