"""``convertmodel quantize``: .q8 / ONNX in, int8 .q8 out, --exclude, --compat, --json, errors; inspect's breakdown."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from convertmodel import serialize
from convertmodel.ir import Graph
from tests.cli import run_cli
from tests.helpers import mini_vgg


@pytest.fixture
def fp32_q8(tmp_path, rng: np.random.Generator) -> tuple[str, Graph]:
    g = mini_vgg(rng)
    path = str(tmp_path / "mini.q8")
    serialize.write_q8(g, path)
    return path, g


def test_quantize_json_report_and_output(fp32_q8, tmp_path, capsys, rng: np.random.Generator) -> None:
    src, g = fp32_q8
    out = str(tmp_path / "mini_int8.q8")
    code, stdout, err = run_cli(["--json", "quantize", "--in", src, "--out", out, "--exclude", "fc1"], capsys)
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["layers_quantized"] == 4 and rep["quantized_by_op"] == {"QConv": 3, "QGemm": 1}
    assert set(rep["layers_kept_fp32"]) == {"fc1"}
    assert rep["output_bytes"] == os.path.getsize(out)
    assert rep["fp32_weight_bytes"] == sum(a.nbytes for a in g.constants.values())
    assert rep["input_levels"] == 255 and rep["compat"] is None
    q = serialize.read_q8(out)
    assert q.op_counts()["QConv"] == 3 and q.op_counts()["Gemm"] == 1
    # the file runs and agrees with the fp32 model
    from convertmodel.runtime import run_graph

    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    a = run_graph(g, {"data": x}, ("ref",))[g.outputs[0].name]
    b = run_graph(q, {"data": x}, ("ref",))[q.outputs[0].name]
    assert np.abs(a - b).max() < 0.02


def test_quantize_compat_table_output(fp32_q8, tmp_path, capsys) -> None:
    src, _ = fp32_q8
    out = str(tmp_path / "bigdl.q8")
    code, stdout, err = run_cli(["quantize", "--in", src, "--out", out, "--compat", "bigdl"], capsys)
    assert code == 0, err
    assert "layers quantized" in stdout and "compat bigdl" in stdout
    q = serialize.read_q8(out)
    info = json.loads(q.metadata["quantization"])
    assert info["compat"] == "bigdl" and info["input_levels"] == 127
    assert (
        max(
            int(np.abs(np.asarray(q.constants[n.inputs[1]], np.int32)).max())
            for n in q.nodes
            if n.op_type in ("QConv", "QGemm")
        )
        == 64
    )


def test_inspect_shows_size_breakdown(fp32_q8, tmp_path, capsys) -> None:
    src, _ = fp32_q8
    out = str(tmp_path / "q.q8")
    assert run_cli(["-q", "quantize", "--in", src, "--out", out, "--exclude", "conv0"], capsys)[0] == 0
    code, stdout, err = run_cli(["--json", "inspect", out], capsys)
    assert code == 0, err
    bd = json.loads(stdout)["size_breakdown"]
    parts = bd["parts"]
    assert parts["int8 weights"] > 0 and parts["window parameters"] > 0 and parts["graph header"] > 0
    kept = {r["name"]: r for r in bd["fp32_kept"]}
    assert "w0" in kept and "excluded by pattern 'conv0'" in kept["w0"]["reason"]
    # the parts add up to the file size: the header and padding are the writer's own figures
    assert bd["header_exact"] is True and bd["total_bytes"] == os.path.getsize(out)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--input-levels", "300"], 2, "input-levels"),
        (["--compat", "tflite"], 2, "compat"),
    ],
)
def test_quantize_usage_errors(fp32_q8, tmp_path, capsys, args, code, needle) -> None:
    src, _ = fp32_q8
    got, _, err = run_cli(["quantize", "--in", src, "--out", str(tmp_path / "o.q8"), *args], capsys)
    assert got == code and needle in err


def test_quantize_out_must_be_q8_and_missing_input(fp32_q8, tmp_path, capsys) -> None:
    src, _ = fp32_q8
    got, _, err = run_cli(["quantize", "--in", src, "--out", str(tmp_path / "o.onnx")], capsys)
    assert got == 2 and ".q8" in err
    got, _, err = run_cli(["quantize", "--in", str(tmp_path / "nope.q8"), "--out", str(tmp_path / "o.q8")], capsys)
    assert got == 7 and "nope.q8" in err
    assert not os.path.exists(tmp_path / "o.q8")


def test_quantize_onnx_input(tmp_path, capsys) -> None:
    pytest.importorskip("onnx")
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bn = [rng.uniform(0.5, 2, 4), rng.standard_normal(4), rng.standard_normal(4), rng.uniform(0.5, 2, 4)]
    fc = rng.standard_normal((4, 5)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")] + [
        numpy_helper.from_array(np.asarray(a, np.float32), n) for a, n in zip(bn, ("s", "b", "m", "v"), strict=True)
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", 1, [1, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    src = str(tmp_path / "m.onnx")
    onnx.save(model, src)
    out = str(tmp_path / "m.q8")
    code, stdout, err = run_cli(["--json", "quantize", "--in", src, "--out", out], capsys)
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["quantized_by_op"] == {"QConv": 1, "QGemm": 1} and rep["folded_norm"] == 1 and rep["fused_relu"] == 1
