"""--input-shape and --batch on every command, -1 dims read as symbolic, zoo:NAME in every command."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

import convertmodel
from convertmodel import errors
from tests.cli import run_cli
from tests.helpers import FMNIST

CAFFE = os.path.join(FMNIST, "lenet5.caffemodel")


def _minus_one_onnx(path: str) -> None:
    """An export that writes its symbolic batch as dim_value -1 (as some Paddle exports do)."""
    import onnx
    from onnx import helper, numpy_helper

    w = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [-1, 6])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [-1, 4])
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "m1", [x], [y], [numpy_helper.from_array(w, "w")]
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def test_static_batch_model_runs_batched_with_input_shape(tmp_path: Any, capsys: Any) -> None:
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["predict", CAFFE, "--input", str(tmp_path / "x.npy")]
    code, _, err = run_cli(args, capsys)  # the deploy file declares batch 1
    assert code == errors.EXIT_DATA and "expected shape" in err, err
    for shape in ("image:4,1,28,28", "N,1,28,28", "-1,1,28,28"):
        out = tmp_path / f"y{shape.replace(':', '_').replace(',', '_')}.npy"
        code, _, err = run_cli([*args, "--input-shape", shape, "--out", str(out)], capsys)
        assert code == 0, (shape, err)
        one = convertmodel.load(CAFFE)
        want = np.concatenate([one.predict(x[i : i + 1]) for i in range(4)])
        np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-6)
    code, out, _ = run_cli(["--json", "inspect", CAFFE, "--input-shape", "N,1,28,28"], capsys)
    assert json.loads(out)["inputs"][0]["type"] == "float32[N,1,28,28]"


@pytest.mark.parametrize(
    ("shape", "message"),
    [("nope:1,1,28,28", "the model's inputs are ['image']"), ("1,28,28", "declares 4 dims"), ("1,a,2", "integers")],
)
def test_bad_input_shapes_are_usage_errors(shape: str, message: str, capsys: Any) -> None:
    code, _, err = run_cli(["inspect", CAFFE, "--input-shape", shape], capsys)
    assert code == errors.EXIT_USAGE and message in err, err


def test_minus_one_dimension_is_read_as_symbolic(tmp_path: Any, capsys: Any) -> None:
    src = str(tmp_path / "m1.onnx")
    _minus_one_onnx(src)
    m = convertmodel.load(src)
    assert m.graph.inputs[0].type.shape == ("N", 6)
    x = np.ones((3, 6), np.float32)
    assert m.predict(x).shape == (3, 4)
    code, _, err = run_cli(["convert", src, "--out", str(tmp_path / "m1.q8")], capsys)  # failed at write time before
    assert code == 0, err
    assert convertmodel.load(str(tmp_path / "m1.q8")).predict(x).shape == (3, 4)


def test_python_api_input_shapes_and_batch() -> None:
    m = convertmodel.load(CAFFE, batch=2)
    assert m.graph.inputs[0].type.shape == (2, 1, 28, 28) and m.graph.outputs[0].type.shape[0] == 2
    m = convertmodel.load(CAFFE, input_shapes={"image": ("N", 1, 28, 28)})
    assert m.predict(np.zeros((5, 1, 28, 28), np.float32)).shape[0] == 5


def test_batch_is_the_one_name_and_batch_size_an_alias(capsys: Any) -> None:
    from tests.helpers import SUBSET_IMAGES, fixture_model

    base = ["--json", "verify", fixture_model("lenet5"), "--data", SUBSET_IMAGES, "--limit", "20"]
    for flag in ("--batch", "--batch-size"):
        code, out, err = run_cli([*base, flag, "7"], capsys)
        assert code == 0, err
        assert json.loads(out)["data"]["batch_size"] == 7


def test_zoo_models_work_in_every_command_that_reads_a_model(tmp_path: Any, capsys: Any) -> None:
    small = ["--input-shape", "1,3,32,32"]
    code, out, err = run_cli(["--json", "inspect", "zoo:vgg16", *small], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == {"path": "zoo:vgg16", "sha256": None} and doc["inputs"][0]["type"] == "float32[1,3,32,32]"
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    code, out, err = run_cli(["--json", "predict", "zoo:vgg16", *small, "--input", str(tmp_path / "x.npy")], capsys)
    assert code == 0, err
    code, _, err = run_cli(["inspect", "zoo:resnet9000"], capsys)
    assert code != 0 and "zoo:vgg16" in err
