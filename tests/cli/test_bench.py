"""``convertmodel bench``: fp32 vs int8 side by side, JSON report, per-layer times, .q8 and zoo inputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from convertmodel import errors
from tests.cli import run_cli
from tests.helpers import FMNIST


@pytest.fixture
def onnx_model(tmp_path: str) -> tuple[str, int]:
    """A small real ONNX CNN (Conv-Relu-Conv-Relu-Flatten-Gemm); returns (path, initializer bytes)."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "b1": rng.standard_normal(8).astype(np.float32),
        "w2": rng.standard_normal((6, 8, 3, 3)).astype(np.float32),
        "fc": rng.standard_normal((5, 6 * 4 * 4)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    g = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(tmp_path, "small.onnx")
    onnx.save(model, path)
    return path, sum(v.nbytes for v in inits.values())


def test_bench_json_report(onnx_model: tuple[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    from convertmodel.runtime import native

    path, fp32_bytes = onnx_model
    code, out, _ = run_cli(
        ["bench", path, "--batch", "3", "--threads", "1", "--warmup", "0", "--iterations", "3", "--json"], capsys
    )
    assert code == 0
    rep = json.loads(out)
    assert rep["batch"] == 3 and rep["threads"] == 1
    assert set(rep["results"]) == {"fp32", "int8"}
    for side in ("fp32", "int8"):
        r = rep["results"][side]
        assert r["iterations"] == 3
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["img_per_s"] == pytest.approx(3 / (r["p50_ms"] / 1e3))
    assert rep["speedup"] == pytest.approx(rep["results"]["fp32"]["p50_ms"] / rep["results"]["int8"]["p50_ms"])
    assert rep["param_bytes"]["fp32"] == fp32_bytes  # the ONNX initializers, counted independently
    # int8 weights: 1 byte per weight plus per-channel float32 scale/sum (and the fp32 bias).
    n_w = 8 * 27 + 6 * 72 + 5 * 96
    assert rep["param_bytes"]["int8"] == n_w + 4 * (2 * (8 + 6 + 5) + 8)
    assert rep["size_ratio"] == pytest.approx(rep["param_bytes"]["fp32"] / rep["param_bytes"]["int8"])
    if native.available():
        assert rep["isa"] == native.isa()
        assert rep["backends"]["int8"].get("native") == 3  # two QConv + one QGemm
        assert rep["backends"]["fp32"].get("native") == 3  # the native fp32 Conv x2 + Gemm (issue 10)
    else:
        assert "native" not in rep["backends"]["fp32"]


def test_bench_table_and_per_layer(onnx_model: tuple[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = onnx_model
    code, out, err = run_cli(["bench", path, "--seconds", "0.05", "--warmup", "1", "--per-layer"], capsys)
    assert code == 0
    assert "[bench]" in err  # progress goes to stderr
    assert "int8 speedup" in out and "per layer: fp32" in out and "per layer: int8" in out
    assert "QConv" in out and "QGemm" in out

    code, out, _ = run_cli(["bench", path, "--iterations", "1", "--warmup", "0", "--per-layer", "--json"], capsys)
    rep = json.loads(out)
    fp32_nodes = [r["node"] for r in rep["per_layer"]["fp32"]]
    int8_ops = {r["op"] for r in rep["per_layer"]["int8"]}
    assert fp32_nodes == ["conv1", "relu1", "conv2", "relu2", "flat", "fc"]
    assert {"QConv", "QGemm"} <= int8_ops and "Relu" not in int8_ops  # ReLUs fused into QConv
    assert all(r["ms"] >= 0 for r in rep["per_layer"]["int8"])


def test_bench_int8_q8_needs_reference(
    onnx_model: tuple[str, int], tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import convertmodel

    path, _ = onnx_model
    q8 = os.path.join(tmp_path, "small.q8")
    convertmodel.load(path).quantize().save(q8)
    code, out, _ = run_cli(["bench", q8, "--iterations", "2", "--warmup", "0", "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    assert set(rep["results"]) == {"int8"} and "speedup" not in rep
    assert "--reference" in rep["note"]
    code, out, _ = run_cli(["bench", q8, "--reference", path, "--iterations", "2", "--warmup", "0", "--json"], capsys)
    rep = json.loads(out)
    assert set(rep["results"]) == {"fp32", "int8"} and rep["speedup"] > 0


def test_bench_zoo_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        ["bench", "zoo:vgg16", "--image-size", "32", "--iterations", "1", "--warmup", "0", "--json"], capsys
    )
    assert code == 0
    rep = json.loads(out)
    assert rep["backends"]["int8"].get("native", 0) in (0, 21)  # 13 QConv + 3 QGemm + 5 MaxPool when built
    code, _, err = run_cli(["bench", "zoo:resnet9000"], capsys)
    assert code == errors.EXIT_INVALID_MODEL and "zoo:vgg16" in err
    code, _, err = run_cli(["bench", "zoo:vgg16", "--iterations", "2", "--seconds", "1"], capsys)
    assert code == errors.EXIT_USAGE
    code, _, err = run_cli(["bench", "/nonexistent/model.onnx"], capsys)
    assert code == errors.EXIT_USAGE and "no such file" in err


@pytest.fixture
def dynamic_model(tmp_path: str) -> str:
    """An ONNX CNN whose image size is dynamic (x: [N, 3, H, W]): Conv-Relu-GlobalAveragePool-Flatten-Gemm."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "fc": rng.standard_normal((2, 4))}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    g = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(tmp_path, "dynamic.onnx")
    onnx.save(model, path)
    return path


def test_bench_input_shape_fixes_dynamic_dims(
    dynamic_model: str, tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import convertmodel

    fast = ["--iterations", "1", "--warmup", "0", "--threads", "1", "--json"]
    code, _, err = run_cli(["bench", dynamic_model, *fast], capsys)
    assert code == errors.EXIT_INVALID_MODEL and "symbolic dimension 'H' at axis 2" in err, err
    assert len(err.strip().splitlines()) == 1
    for shape, batch, want in (("N,3,10,6", "3", [3, 3, 10, 6]), ("x:2,3,12,12", "5", [2, 3, 12, 12])):
        code, out, err = run_cli(["bench", dynamic_model, "--input-shape", shape, "--batch", batch, *fast], capsys)
        assert code == 0, err
        rep = json.loads(out)
        assert rep["inputs"] == {"x": want} and rep["batch"] == want[0]  # a fixed batch wins over --batch
        assert set(rep["results"]) == {"fp32", "int8"}
    q8 = os.path.join(tmp_path, "dynamic.q8")
    convertmodel.load(dynamic_model).quantize().save(q8)
    code, out, err = run_cli(["bench", q8, "--reference", dynamic_model, "--input-shape", "1,3,9,9", *fast], capsys)
    assert code == 0, err  # the shape fixes the fp32 reference as well as the .q8
    rep = json.loads(out)
    assert rep["inputs"] == {"x": [1, 3, 9, 9]} and set(rep["results"]) == {"fp32", "int8"}
    for shape, message in (("x:1,3,8", "declares 4 dims"), ("y:1,3,8,8", "the model's inputs are ['x']")):
        code, _, err = run_cli(["bench", dynamic_model, "--input-shape", shape, *fast], capsys)
        assert code == errors.EXIT_USAGE and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bench_tf_flags_reach_the_reference(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--tf-inputs of an int8 .q8's TensorFlow --reference go to the reference's reader (as in verify), not
    only to MODEL's (a .q8 takes none): the shape it gives is the one benchmarked."""
    import convertmodel

    pb = os.path.join(FMNIST, "lenet5_frozen.pb")
    q8 = os.path.join(tmp_path, "lenet5_tf.q8")
    convertmodel.load(pb).quantize().save(q8)
    fast = ["--iterations", "1", "--warmup", "0", "--threads", "1", "--json"]
    code, out, err = run_cli(["bench", q8, "--reference", pb, "--tf-inputs", "image:2,28,28,1", *fast], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["inputs"] == {"image": [2, 28, 28, 1]} and set(rep["results"]) == {"fp32", "int8"}, rep["inputs"]


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "zoo:vgg16", "--input-shape", "1,3,8,8", "--iterations", "1", "--warmup", "0"],
        ["bench", "zoo:vgg19", "--image-size", "16", "--iterations", "1", "--warmup", "0"],
        ["inspect", "zoo:vgg16", "--input-shape", "1,3,31,31"],
    ],
)
def test_zoo_image_too_small_is_a_usage_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Below 32 x 32 VGG's five poolings leave nothing for fc6: one line, exit 2 (was an internal error)."""
    code, _, err = run_cli(args, capsys)
    assert code == errors.EXIT_USAGE and "at least 32" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
