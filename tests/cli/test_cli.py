"""CLI behaviour: fast start, exit codes, one-line errors, convert -> inspect -> predict round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from convertmodel import errors
from tests.cli import run_cli
from tests.helpers import assert_close


def _onnx_model(path: str, op: str = "Relu", domain: str = "") -> np.ndarray:
    """A small real ONNX graph: Conv -> <op> -> GlobalAveragePool -> Flatten -> Gemm -> Softmax."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((5, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node(op, ["c"], ["r"], domain=domain),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, path)
    return rng.standard_normal((2, 3, 16, 16)).astype(np.float32)


def test_help_is_light() -> None:
    code = (
        "import sys\n"
        "from convertmodel.cli.main import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'onnxruntime', 'pyspark', 'onnx', 'cv2', 'numpy') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Commands:" in out
    assert out.strip().endswith("HEAVY="), out


def test_missing_file_is_io_error(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    code, _, err = run_cli(["inspect", os.path.join(str(tmp_path), "nope.onnx")], capsys)
    assert code == errors.EXIT_IO
    assert "nope.onnx" in err and "Traceback" not in err and err.count("\n") == 1


def test_garbage_file_is_format_error(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    p = os.path.join(str(tmp_path), "model.bin")
    with open(p, "wb") as f:
        f.write(b"\x00garbage" * 10)
    code, _, err = run_cli(["inspect", p], capsys)
    assert code == errors.EXIT_CORRUPT_FILE
    assert "model.bin" in err and "unrecognised model format" in err


def test_truncated_onnx_is_format_error(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    p = os.path.join(str(tmp_path), "m.onnx")
    _onnx_model(p)
    data = open(p, "rb").read()
    with open(p, "wb") as f:
        f.write(data[: len(data) // 2])
    code, _, err = run_cli(["convert", "--in", p, "--out", os.path.join(str(tmp_path), "m.q8")], capsys)
    assert code == errors.EXIT_CORRUPT_FILE, err
    assert "m.onnx" in err
    assert not os.path.exists(os.path.join(str(tmp_path), "m.q8"))


def test_unsupported_ops_exit_3_and_listed(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    p = os.path.join(str(tmp_path), "custom.onnx")
    _onnx_model(p, op="MysteryOp", domain="com.example")
    code, _, err = run_cli(["convert", "--in", p, "--out", os.path.join(str(tmp_path), "c.q8")], capsys)
    assert code == errors.EXIT_UNSUPPORTED
    assert "MysteryOp" in err and "Traceback" not in err
    assert not os.path.exists(os.path.join(str(tmp_path), "c.q8"))


def test_debug_shows_traceback(tmp_path: str) -> None:
    p = os.path.join(str(tmp_path), "missing.onnx")
    r = subprocess.run([sys.executable, "-m", "convertmodel", "--debug", "inspect", p], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(["convert", "--in"], capsys)
    assert code == errors.EXIT_USAGE


def test_convert_inspect_predict_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    import onnxruntime as ort

    src = os.path.join(str(tmp_path), "m.onnx")
    x = _onnx_model(src)
    q8 = os.path.join(str(tmp_path), "m.q8")
    code, out, err = run_cli(["--json", "convert", "--in", src, "--out", q8], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["nodes"] >= 5 and rep["parameters"] == 8 * 27 + 40
    code, out, err = run_cli(["--json", "inspect", q8], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert {o["op"] for o in info["ops"]} >= {"Conv", "Relu", "Gemm", "Softmax"}
    assert info["quantized"] is False
    xin = os.path.join(str(tmp_path), "x.npy")
    np.save(xin, x)
    yout = os.path.join(str(tmp_path), "y.npy")
    code, _, err = run_cli(["--quiet", "predict", q8, "--input", xin, "--out", yout], capsys)
    assert code == 0, err
    expected = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert_close(np.load(yout), expected, rtol=1e-4, atol=1e-6)


def test_output_in_missing_directory_is_io_error(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    src = os.path.join(str(tmp_path), "m.onnx")
    _onnx_model(src)
    code, _, err = run_cli(["convert", "--in", src, "--out", os.path.join(str(tmp_path), "no", "dir", "m.q8")], capsys)
    assert code == errors.EXIT_IO, err
    assert not os.path.exists(os.path.join(str(tmp_path), "no"))


def test_predict_on_an_image_with_a_preset(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    """A real Fashion-MNIST test image saved as PNG goes through `predict --preset fmnist` like the raw pixels / 255."""
    import onnxruntime as ort
    from PIL import Image

    from convertmodel.data.datasets import read_idx
    from tests.helpers import FIXTURES

    img = read_idx(os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-images-idx3-ubyte.gz"), limit=1)[0]
    png = os.path.join(str(tmp_path), "item.png")
    Image.fromarray(img).save(png)
    model = os.path.join(FIXTURES, "fmnist", "lenet5.onnx")
    yout = os.path.join(str(tmp_path), "y.npy")
    code, _, err = run_cli(["--quiet", "predict", model, "--input", png, "--preset", "fmnist", "--out", yout], capsys)
    assert code == 0, err
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = (img.astype(np.float32) / np.float32(255.0))[None, None]
    expected = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert_close(np.load(yout), expected, rtol=1e-4, atol=1e-6)


def test_truncated_q8_exit_5_names_file_and_offset(capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    src = os.path.join(str(tmp_path), "m.onnx")
    _onnx_model(src)
    q8 = os.path.join(str(tmp_path), "m.q8")
    assert run_cli(["--quiet", "convert", "--in", src, "--out", q8], capsys)[0] == 0
    data = open(q8, "rb").read()
    for cut in (10, len(data) // 2, len(data) - 1):
        bad = os.path.join(str(tmp_path), f"cut{cut}.q8")
        with open(bad, "wb") as f:
            f.write(data[:cut])
        code, _, err = run_cli(["predict", bad, "--input", "unused.npy"], capsys)
        assert code == errors.EXIT_CORRUPT_FILE, err
        assert f"cut{cut}.q8" in err and "byte" in err and "Traceback" not in err
