"""Issue 15, wrong answers that looked right in quantize: --exclude patterns that match nothing,
names and op types as ``inspect`` shows them, and re-quantizing an int8 .q8."""

from __future__ import annotations

import os

import pytest

from tests.cli import run_cli
from tests.helpers import fixture_model


@pytest.fixture
def lenet_onnx() -> str:
    return fixture_model("lenet5")


def _kept(src: str, tmp_path, capsys, *patterns: str) -> tuple[int, str, dict[str, str]]:
    import convertmodel

    out = str(tmp_path / "o.q8")
    args = ["quantize", "--in", src, "--out", out]
    for p in patterns:
        args += ["--exclude", p]
    code, _, err = run_cli(args, capsys)
    kept = {}
    if code == 0:
        info = convertmodel.load(out).quantization
        assert info is not None
        kept = {k: v.reason for k, v in info.kept.items()}
    return code, err, kept


def test_exclude_scope_name_matches_inspect_names(lenet_onnx, tmp_path, capsys) -> None:
    # inspect lists conv1's layer as conv1/BiasAdd (tf2onnx): the scope name conv1 names it, conv10 would not
    code, err, kept = _kept(lenet_onnx, tmp_path, capsys, "conv1")
    assert code == 0, err
    assert list(kept) == ["conv1/BiasAdd"]


def test_exclude_original_op_type_after_matmul_add_fold(lenet_onnx, tmp_path, capsys) -> None:
    # inspect shows MatMul (+ Add); the quantize pass sees the folded Gemm: the pattern names either
    code, err, kept = _kept(lenet_onnx, tmp_path, capsys, "MatMul")
    assert code == 0, err
    assert sorted(kept) == ["fc1/MatMul", "fc2/MatMul", "predictions/MatMul"]
    assert all("'MatMul'" in r for r in kept.values())


def test_exclude_pattern_matching_nothing_is_a_usage_error(lenet_onnx, tmp_path, capsys) -> None:
    code, err, _ = _kept(lenet_onnx, tmp_path, capsys, "conv1", "fc8")
    assert code == 2
    assert "'fc8' matches no layer" in err and "conv1/BiasAdd" in err and "MatMul" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not os.path.exists(tmp_path / "o.q8")


def test_requantizing_an_int8_q8_is_refused(lenet_onnx, tmp_path, capsys) -> None:
    q8 = str(tmp_path / "lenet.q8")
    assert run_cli(["quantize", "--in", lenet_onnx, "--out", q8], capsys)[0] == 0
    code, _, err = run_cli(["quantize", "--in", q8, "--out", str(tmp_path / "again.q8")], capsys)
    assert code == 2 and "int8 already" in err and "fp32 source" in err
    assert not os.path.exists(tmp_path / "again.q8")


def test_python_api_refuses_too(lenet_onnx) -> None:
    import convertmodel
    from convertmodel.errors import UsageError

    q = convertmodel.load(lenet_onnx).quantize()
    with pytest.raises(UsageError, match="int8 already"):
        q.quantize()
