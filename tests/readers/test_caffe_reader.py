"""Caffe reader units: small hand-written prototxt + caffemodel files (built with caffe_pb2), each
compared with OpenCV's dnn Caffe importer, plus the structural forms (V1 layers, legacy blob shapes,
input forms, in-place layers, prototxt discovery, phases)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from convertmodel.errors import UsageError
from tests.helpers import assert_close
from tests.readers.caffe_cases import CASES, R, layer_text, rand_w
from tests.readers.caffe_util import input_block, read_checked, run_opencv, run_ours, write_net


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_opencv(tmp_path: object, case: tuple) -> None:
    _, shape, body, blobs, out = case
    proto, model = write_net(str(tmp_path), input_block("data", shape) + body, blobs)
    x = (R.standard_normal(shape) * 2).astype(np.float32)
    g = read_checked(model)
    assert g.metadata["source_format"] == "caffe"
    (ref,) = run_opencv(proto, model, {"data": x}, [out])
    got = run_ours(g, {"data": x})
    value = got[out]
    assert_close(value, ref.reshape(value.shape) if ref.size == value.size else ref, rtol=1e-4, atol=1e-5)


def test_crop_matches_opencv(tmp_path: object) -> None:
    body = (
        input_block("data", (1, 3, 8, 9))
        + input_block("ref", (1, 3, 5, 4))
        + layer_text("c", "Crop", ["data", "ref"], "crop_param { axis: 2 offset: 2 offset: 3 }")
    )
    proto, model = write_net(str(tmp_path), body)
    x = R.standard_normal((1, 3, 8, 9)).astype(np.float32)
    r = np.zeros((1, 3, 5, 4), np.float32)
    (ref,) = run_opencv(proto, model, {"data": x, "ref": r}, ["c"])
    got = run_ours(read_checked(model), {"data": x, "ref": r})["c"]
    np.testing.assert_array_equal(got, x[:, :, 2:7, 3:7])
    np.testing.assert_array_equal(got, ref)


def test_inner_product_transpose_numpy(tmp_path: object) -> None:
    """transpose: true stores the weight as (K, N) and computes x @ W (inner_product_layer.cpp); OpenCV
    4.x ignores the flag, so the expected value is the formula."""
    w, b = rand_w(6, 4), rand_w(4)
    body = input_block("data", (2, 6)) + layer_text(
        "fc", "InnerProduct", ["data"], "inner_product_param { num_output: 4 transpose: true }"
    )
    _, model = write_net(str(tmp_path), body, {"fc": [w, b]})
    x = R.standard_normal((2, 6)).astype(np.float32)
    assert_close(run_ours(read_checked(model), {"data": x})["fc"], x @ w + b, rtol=1e-5, atol=1e-6)


def test_lrn_across_k_numpy(tmp_path: object) -> None:
    """scale = k + alpha / size * sum of squares over size channels (lrn_layer.cpp); OpenCV 4.x ignores k."""
    body = input_block("data", (1, 7, 4, 4)) + layer_text(
        "n", "LRN", ["data"], "lrn_param { local_size: 5 alpha: 0.01 beta: 0.75 k: 2 }"
    )
    _, model = write_net(str(tmp_path), body)
    x = (R.standard_normal((1, 7, 4, 4)) * 2).astype(np.float32)
    sq = np.pad(x.astype(np.float64) ** 2, [(0, 0), (2, 2), (0, 0), (0, 0)])
    expect = x / (2 + 0.01 / 5 * sum(sq[:, i : i + 7] for i in range(5))) ** 0.75
    assert_close(run_ours(read_checked(model), {"data": x})["n"], expect, rtol=1e-5, atol=1e-6)


def test_bias_layer_numpy(tmp_path: object) -> None:
    """y = x + b per channel (bias_layer.cpp); OpenCV 4.x has no Bias layer."""
    b = rand_w(3)
    _, model = write_net(
        str(tmp_path), input_block("data", (1, 3, 2, 2)) + layer_text("b", "Bias", ["data"]), {"b": [b]}
    )
    x = R.standard_normal((1, 3, 2, 2)).astype(np.float32)
    g = read_checked(model)
    assert g.op_counts() == {"ChannelAffine": 1}
    np.testing.assert_array_equal(run_ours(g, {"data": x})["b"], x + b.reshape(1, 3, 1, 1))


def test_argmax_numpy(tmp_path: object) -> None:
    body = input_block("data", (2, 5, 3)) + layer_text(
        "a", "ArgMax", ["data"], "argmax_param { top_k: 2 out_max_val: true }"
    )
    _, model = write_net(str(tmp_path), body)
    x = R.standard_normal((2, 5, 3)).astype(np.float32)
    got = run_ours(read_checked(model), {"data": x})["a"]
    flat = x.reshape(2, -1)
    idx = np.argsort(-flat, axis=1)[:, :2]
    expect = np.stack([idx.astype(np.float32), np.take_along_axis(flat, idx, 1)], axis=1)
    np.testing.assert_array_equal(got, expect)


V1_PROTO = """name: "v1net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 6 input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool" top: "fc" inner_product_param { num_output: 3 } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
"""


def test_v1_layers_and_legacy_blob_shapes(tmp_path: object) -> None:
    blobs = {"conv": [rand_w(4, 3, 3, 3), rand_w(4)], "fc": [rand_w(3, 36), rand_w(3)]}
    proto, model = write_net(str(tmp_path), V1_PROTO, blobs, legacy=True, v1_weights=True)
    g = read_checked(model)
    assert g.op_counts() == {"Conv": 1, "Relu": 1, "AveragePool": 1, "Flatten": 1, "Gemm": 1, "Softmax": 1}
    x = R.standard_normal((1, 3, 6, 6)).astype(np.float32)
    (ref,) = run_opencv(proto, model, {"data": x}, ["prob"])
    assert_close(run_ours(g, {"data": x})["prob"], ref)


def test_input_shape_form_and_in_place_ssa(tmp_path: object) -> None:
    text = (
        'input: "data"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
        + layer_text("conv", "Convolution", ["data"], "convolution_param { num_output: 2 kernel_size: 1 }")
        + layer_text("bn", "BatchNorm", ["conv"], "", ["conv"])
        + layer_text("relu", "ReLU", ["conv"], "", ["conv"])
    )
    blobs = {"conv": [rand_w(2, 2, 1, 1), rand_w(2)], "bn": [rand_w(2), np.ones(2, np.float32), np.ones(1, np.float32)]}
    _, model = write_net(str(tmp_path), text, blobs)
    g = read_checked(model)
    assert [n.outputs[0] for n in g.nodes] == ["conv", "bn", "relu"]
    assert [o.name for o in g.outputs] == ["relu"]
    assert g.inputs[0].type.shape == (1, 2, 3, 3)


def test_train_phase_layers_are_skipped(tmp_path: object) -> None:
    text = (
        input_block("data", (1, 3))
        + layer_text("r", "ReLU", ["data"])
        + layer_text("loss", "SoftmaxWithLoss", ["r", "label"], "include { phase: TRAIN }")
    )
    _, model = write_net(str(tmp_path), text)
    assert read_checked(model).op_counts() == {"Relu": 1}


@pytest.mark.parametrize("proto_name", ["net.prototxt", "deploy.prototxt", "other.prototxt.txt"])
def test_prototxt_found_beside_model(tmp_path: object, proto_name: str) -> None:
    d = str(tmp_path)
    proto, model = write_net(d, input_block("data", (1, 2)) + layer_text("r", "ReLU", ["data"]), name="net")
    if proto_name != "net.prototxt":
        os.rename(proto, os.path.join(d, proto_name))
    assert read_checked(model).op_counts() == {"Relu": 1}


def test_prototxt_option_and_prototxt_path(tmp_path: object) -> None:
    d = str(tmp_path)
    proto, model = write_net(d, input_block("data", (1, 2)) + layer_text("r", "TanH", ["data"]), name="net")
    moved = os.path.join(d, "elsewhere.txt")
    os.rename(proto, moved)
    assert read_checked(model, prototxt=moved).op_counts() == {"Tanh": 1}
    os.rename(moved, proto)
    assert read_checked(proto).op_counts() == {"Tanh": 1}  # the prototxt path finds net.caffemodel


def test_missing_prototxt_tells_user_to_pass_it(tmp_path: object) -> None:
    d = str(tmp_path)
    proto, model = write_net(d, input_block("data", (1, 2)) + layer_text("r", "ReLU", ["data"]), name="net")
    os.remove(proto)
    with pytest.raises(UsageError, match="--prototxt"):  # the user must say where it is: a usage error (exit 2)
        read_checked(model)
    for n in ("a.prototxt", "b.prototxt"):
        with open(os.path.join(d, n), "w") as f:
            f.write("")
    with pytest.raises(UsageError, match=r"2 candidates .*--prototxt"):
        read_checked(model)
