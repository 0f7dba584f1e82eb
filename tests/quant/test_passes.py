"""The passes: fold_bn (numerics unchanged), quantize (op counts, fusion, exclusion, reasons, compat)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from convertmodel.ir import CM_DOMAIN, Graph, GraphBuilder, check_graph
from convertmodel.passes import PassRecord, fold_bn, run_passes
from convertmodel.passes.quantize import quantize_graph
from convertmodel.quant.options import QuantizeOptions, parse_patterns
from convertmodel.runtime import run_graph
from convertmodel.zoo import vgg
from tests.helpers import assert_close, mini_vgg


@pytest.fixture(scope="module")
def vgg16_small() -> Graph:
    """The real VGG16 topology (13 conv, 3 fc) on 32x32 inputs, 10 classes; built once."""
    return vgg(16, image_size=32, num_classes=10, batch=1)


def _run(g: Graph, x: np.ndarray) -> np.ndarray:
    return run_graph(g, {g.inputs[0].name: x}, ("ref",))[g.outputs[0].name]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _bn_params(b: GraphBuilder, rng: np.random.Generator, c: int, name: str) -> list[str]:
    return [
        b.add_const(f"{name}_scale", rng.uniform(0.5, 2, c).astype(np.float32)),
        b.add_const(f"{name}_b", rng.standard_normal(c).astype(np.float32)),
        b.add_const(f"{name}_mean", rng.standard_normal(c).astype(np.float32)),
        b.add_const(f"{name}_var", rng.uniform(0.1, 3, c).astype(np.float32)),
    ]


def _bn_net(rng: np.random.Generator) -> Graph:
    """conv -> BN -> relu -> conv -> BN -> ChannelAffine -> flatten -> gemm(transB=0, alpha, beta) -> BN."""
    b = GraphBuilder("bn_net")
    x = b.add_input("x", "float32", (2, 3, 8, 8))
    w1 = b.add_const("w1", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    (y,) = b.add_node("Conv", [x, w1], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    (y,) = b.add_node("BatchNormalization", [y, *_bn_params(b, rng, 4, "bn1")], name="bn1", epsilon=1e-3)
    (y,) = b.add_node("Relu", [y], name="relu1")
    w2 = b.add_const("w2", rng.standard_normal((6, 4, 3, 3)).astype(np.float32))
    b2 = b.add_const("b2", rng.standard_normal(6).astype(np.float32))
    (y,) = b.add_node("Conv", [y, w2, b2], name="conv2", kernel_shape=[3, 3], strides=[2, 2])
    (y,) = b.add_node("BatchNormalization", [y, *_bn_params(b, rng, 6, "bn2")], name="bn2")
    s = b.add_const("aff_s", rng.uniform(0.5, 1.5, 6).astype(np.float32))
    t = b.add_const("aff_t", rng.standard_normal(6).astype(np.float32))
    (y,) = b.add_node("ChannelAffine", [y, s, t], name="scale2", domain=CM_DOMAIN)
    (y,) = b.add_node("Flatten", [y], name="flat", axis=1)
    w3 = b.add_const("w3", rng.standard_normal((54, 5)).astype(np.float32))
    c3 = b.add_const("c3", rng.standard_normal(5).astype(np.float32))
    (y,) = b.add_node("Gemm", [y, w3, c3], name="fc", alpha=0.5, beta=2.0)
    (y,) = b.add_node("BatchNormalization", [y, *_bn_params(b, rng, 5, "bn3")], name="bn3")
    b.mark_output(y)
    return b.build()


def test_fold_bn_keeps_numerics(rng: np.random.Generator) -> None:
    g = _bn_net(rng)
    records: list[PassRecord] = []
    f = run_passes(g, [fold_bn], records, check=True)
    assert g.op_counts()["BatchNormalization"] == 3 and g.op_counts()[("ChannelAffine")] == 1
    assert "BatchNormalization" not in f.op_counts() and "ChannelAffine" not in f.op_counts()
    assert f.op_counts() == {"Conv": 2, "Relu": 1, "Flatten": 1, "Gemm": 1}
    assert records[0].name == "fold_bn" and records[0].changes() == {"BatchNormalization": -3, "ChannelAffine": -1}
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    a, b = _run(g, x), _run(f, x)
    assert_close(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()), what="folded vs unfolded")


def test_fold_mul_add_constants(rng: np.random.Generator) -> None:
    b = GraphBuilder("muladd")
    x = b.add_input("x", "float32", (2, 3, 6, 6))
    w = b.add_const("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    (y,) = b.add_node("Conv", [x, w], name="conv", kernel_shape=[3, 3])
    (y,) = b.add_node("Mul", [b.add_const("m", rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32)), y], name="mul")
    (y,) = b.add_node("Add", [y, b.add_const("a", rng.standard_normal((4, 1, 1)).astype(np.float32))], name="add")
    # a (4,)-shaped constant broadcasts along the last axis (W = 4), not per channel: must stay
    (y,) = b.add_node("Mul", [y, b.add_const("lastaxis", rng.uniform(0.5, 2, 4).astype(np.float32))], name="mul_w")
    (y,) = b.add_node("Flatten", [y], name="flat", axis=1)
    gw = b.add_const("gw", rng.standard_normal((5, 64)).astype(np.float32))
    (y,) = b.add_node("Gemm", [y, gw], name="fc", transB=1)
    (y,) = b.add_node("Mul", [y, b.add_const("s", np.array(0.5, np.float32))], name="scale_all")
    (y,) = b.add_node("Add", [y, b.add_const("fb", rng.standard_normal((1, 5)).astype(np.float32))], name="bias")
    b.mark_output(y)
    g = b.build()
    f = fold_bn(g)
    check_graph(f)
    assert f.op_counts() == {"Conv": 1, "Mul": 1, "Flatten": 1, "Gemm": 1}
    assert f.node("mul_w").op_type == "Mul"
    xv = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    a, c = _run(g, xv), _run(f, xv)
    assert_close(c, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()), what="Mul/Add folded")


def test_fold_bn_skips_shared_intermediate(rng: np.random.Generator) -> None:
    b = GraphBuilder("shared")
    x = b.add_input("x", "float32", (1, 2, 5, 5))
    w = b.add_const("w", rng.standard_normal((3, 2, 1, 1)).astype(np.float32))
    (y,) = b.add_node("Conv", [x, w], name="conv")
    (z,) = b.add_node("BatchNormalization", [y, *_bn_params(b, rng, 3, "bn")], name="bn")
    (s,) = b.add_node("Add", [z, y], name="add")  # the conv output has a second consumer
    b.mark_output(s)
    g = b.build()
    f = fold_bn(g)
    assert f.op_counts() == g.op_counts()


def test_run_passes_logs_op_counts(rng: np.random.Generator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="convertmodel.passes"):
        run_passes(_bn_net(rng), [("fold", fold_bn)])
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "pass fold" in msg and "BatchNormalization 3" in msg


def test_quantize_vgg_op_counts_and_metadata(vgg16_small: Graph) -> None:
    g = vgg16_small
    calls: list[tuple[int, int, str]] = []
    q = quantize_graph(g, progress=lambda d, t, n: calls.append((d, t, n)))
    check_graph(q)
    before, after = g.op_counts(), q.op_counts()
    assert before == {"Conv": 13, "Relu": 15, "MaxPool": 5, "Flatten": 1, "Gemm": 3, "Softmax": 1}
    assert after == {"QConv": 13, "QGemm": 3, "MaxPool": 5, "Flatten": 1, "Softmax": 1}
    assert len(calls) == 16 and calls[-1][:2] == (16, 16)
    relu_fused = [n for n in q.nodes if n.op_type.startswith("Q") and n.attrs.get("activation") == "Relu"]
    assert len(relu_fused) == 15  # every Relu; fc8 feeds Softmax
    assert q.node("fc8").attrs["activation"] == ""
    for n in q.nodes:
        if n.domain == CM_DOMAIN:
            assert q.constants[n.inputs[1]].dtype == np.int8
            assert q.constants[n.inputs[1]].shape == g.constants[g.node(n.name).inputs[1]].shape
    info = json.loads(q.metadata["quantization"])
    assert info["scheme"] == "bigdl-local-window" and info["input_levels"] == 255 and info["weight_levels"] == 127
    assert info["counts"]["quantized"] == {"QConv": 13, "QGemm": 3} and info["counts"]["fused_relu"] == 15
    assert info["fp32_ops"] == {"Flatten": 1, "MaxPool": 5, "Softmax": 1}
    # no fp32 copy of a quantized weight is left in the graph
    assert not any(a.dtype == np.float32 and a.ndim >= 2 for a in q.constants.values())


def test_quantized_vgg_close_to_fp32(rng: np.random.Generator) -> None:
    g = mini_vgg(rng, softmax=False)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    a = _run(g, x)
    for compat, floor in ((None, 0.999), ("bigdl", 0.99)):
        q = quantize_graph(g, QuantizeOptions(compat=compat))
        b = _run(q, x)
        assert _cosine(a, b) > floor, compat


def test_exclude_patterns_and_reasons(vgg16_small: Graph) -> None:
    g = vgg16_small
    q = quantize_graph(g, QuantizeOptions(exclude=["conv1_*,fc8", "gemm"]))
    info = json.loads(q.metadata["quantization"])
    kept = info["kept"]
    assert set(kept) == {"conv1_1", "conv1_2", "fc6", "fc7", "fc8"}
    assert kept["conv1_1"]["reason"] == "excluded by pattern 'conv1_*'"
    assert kept["fc6"]["reason"] == "excluded by pattern 'gemm'"  # op types match case-insensitively
    assert q.op_counts()["QConv"] == 11 and "QGemm" not in q.op_counts() and q.op_counts()["Conv"] == 2
    assert info["excluded"] == ["conv1_*", "fc8", "gemm"]
    assert parse_patterns(" a, ,b ") == ("a", "b")


def test_gemm_matmul_variants_and_non_constant_weight(rng: np.random.Generator) -> None:
    b = GraphBuilder("fc_net")
    x = b.add_input("x", "float32", (3, 2, 16))
    wext = b.add_input("wext", "float32", (8, 8))
    m1 = b.add_const("m1", rng.standard_normal((16, 12)).astype(np.float32))
    (y,) = b.add_node("MatMul", [x, m1], name="mm")  # rank-3 input, constant (K, M) weight
    (y,) = b.add_node("Relu", [y], name="r1")
    (y,) = b.add_node("Reshape", [y, b.add_const("shape", np.array([6, 12], np.int64))], name="flat")
    w = b.add_const("gw", rng.standard_normal((12, 8)).astype(np.float32))
    c = b.add_const("gc", rng.standard_normal((1, 8)).astype(np.float32))
    (y,) = b.add_node("Gemm", [y, w, c], name="gemm", alpha=1.5, beta=0.5)  # transB=0, alpha/beta folded
    (y,) = b.add_node("MatMul", [y, wext], name="dyn")  # weight is a graph input: stays fp32
    b.mark_output(y)
    g = b.build()
    q = quantize_graph(g)
    check_graph(q)
    assert q.op_counts() == {"QGemm": 2, "Reshape": 1, "MatMul": 1}
    assert q.node("mm").attrs["activation"] == "Relu"
    assert json.loads(q.metadata["quantization"])["kept"]["dyn"]["reason"].startswith("weight")
    x_val = rng.standard_normal((3, 2, 16)).astype(np.float32)
    we = rng.standard_normal((8, 8)).astype(np.float32)
    feeds = {"x": x_val, "wext": we}
    a = run_graph(g, feeds, ("ref",))[g.outputs[0].name]
    bq = run_graph(q, feeds, ("ref",))[q.outputs[0].name]
    assert _cosine(a, bq) > 0.999


def test_conv_with_weight_input_and_bigdl_compat_weights(rng: np.random.Generator) -> None:
    b = GraphBuilder("dyn_conv")
    x = b.add_input("x", "float32", (1, 2, 6, 6))
    wi = b.add_input("w", "float32", (3, 2, 3, 3))
    (y,) = b.add_node("Conv", [x, wi], name="dynconv", kernel_shape=[3, 3])
    w2 = b.add_const("w2", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    (y,) = b.add_node("Conv", [y, w2], name="conv2", kernel_shape=[3, 3], auto_pad="SAME_UPPER")
    b.mark_output(y)
    g = b.build()
    q = quantize_graph(g, QuantizeOptions(compat="bigdl"))
    info = json.loads(q.metadata["quantization"])
    assert info["kept"] == {"dynconv": {"op": "Conv", "reason": "weight is not a constant"}}
    assert info["compat"] == "bigdl" and info["input_levels"] == 127 and info["weight_levels"] == 64
    node = q.node("conv2")
    assert node.attrs["input_levels"] == 127 and tuple(node.attrs["pads"]) == (1, 1, 1, 1)
    wq = q.constants[node.inputs[1]]
    assert np.abs(wq).max() == 64
    assert (
        quantize_graph(g, QuantizeOptions(compat="bigdl", input_levels=200)).node("conv2").attrs["input_levels"] == 200
    )


def test_bad_options_raise(rng: np.random.Generator) -> None:
    from convertmodel.errors import ConvertModelError

    g = mini_vgg(rng)
    with pytest.raises(ConvertModelError, match="compat"):
        quantize_graph(g, QuantizeOptions(compat="tflite"))
    with pytest.raises(ConvertModelError, match="levels"):
        quantize_graph(g, QuantizeOptions(input_levels=256))


def test_q8_round_trip_is_bit_identical(tmp_path, rng: np.random.Generator) -> None:
    from convertmodel import serialize

    g = mini_vgg(rng)
    q = quantize_graph(g, QuantizeOptions(exclude="fc1"))
    path = str(tmp_path / "vgg.q8")
    serialize.write_q8(q, path)
    r = serialize.read_q8(path)
    assert [(n.op_type, n.domain, n.name, n.inputs, n.outputs) for n in r.nodes] == [
        (n.op_type, n.domain, n.name, n.inputs, n.outputs) for n in q.nodes
    ]
    assert [dict(n.attrs) for n in r.nodes] == [dict(n.attrs) for n in q.nodes]
    assert set(r.constants) == set(q.constants)
    for k, v in q.constants.items():
        assert r.constants[k].dtype == v.dtype and r.constants[k].shape == v.shape
        assert np.asarray(r.constants[k]).tobytes() == v.tobytes(), k
    assert r.metadata["quantization"] == q.metadata["quantization"]
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(_run(r, x), _run(q, x))
    # writing the read graph again gives the same bytes
    path2 = str(tmp_path / "again.q8")
    serialize.write_q8(r, path2)
    assert open(path, "rb").read() == open(path2, "rb").read()


def test_error_helpers_and_layer_errors(rng: np.random.Generator) -> None:
    from convertmodel.quant.error import cosine, sqnr_db, top1_agreement
    from convertmodel.verify.per_layer import layer_errors

    a = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    assert cosine(a, a) == pytest.approx(1.0) and cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert sqnr_db(a, a) == float("inf")
    assert sqnr_db(a, a * 1.1) == pytest.approx(20.0)  # noise = 0.1 x signal
    assert top1_agreement(a, np.array([[0, 0, 1.0], [0, 1.0, 0]])) == 0.5
    g = mini_vgg(rng)
    q = quantize_graph(g)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    rows = layer_errors(g, q, {"data": x})
    by_node = {r["node"]: r for r in rows}
    # quantized layers keep their names; a fused ReLU's value is compared at the ReLU
    assert {"relu0", "relu1", "relu3", "relu_fc", "fc1", "prob"} <= set(by_node)
    assert all(r["cosine"] > 0.99 for r in rows)
    assert by_node["relu0"]["sqnr_db"] > 30


def test_matmul_plus_bias_add_folds_into_one_gemm() -> None:
    """tf2onnx's Dense (MatMul + Add) becomes one Gemm carrying the bias, with the same numbers."""
    import numpy as np

    from convertmodel.ir import GraphBuilder, check_graph
    from convertmodel.passes.fold_bn import fold_bn
    from convertmodel.runtime import run_graph

    rng = np.random.default_rng(3)
    b = GraphBuilder("dense")
    x = b.add_input("x", "float32", ("N", 6))
    w = b.add_const("w", rng.standard_normal((6, 4)).astype(np.float32))
    bias = b.add_const("bias", rng.standard_normal(4).astype(np.float32))
    (m,) = b.add_node("MatMul", [x, w], name="fc/MatMul")
    (y,) = b.add_node("Add", [m, bias], name="fc/BiasAdd")
    b.mark_output(y)
    g = b.build()
    folded = fold_bn(g)
    check_graph(folded)
    assert folded.op_counts() == {"Gemm": 1}
    xv = rng.standard_normal((5, 6)).astype(np.float32)
    ref = run_graph(g, {"x": xv}, ("ref",))[y]
    got = run_graph(folded, {"x": xv}, ("ref",))[y]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
