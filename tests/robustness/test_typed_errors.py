"""Each hostile input found by the issue-14 fuzz campaign gives one typed error naming the file, the
layer or node and what was expected (never IndexError/ZeroDivisionError/TypeError, never a huge allocation)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import convertmodel
from convertmodel import limits
from convertmodel.errors import FormatError, InvalidModelError
from convertmodel.readers.caffe.proto import pb

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }\n'


def _caffe(tmp_path, layers: str, blobs: dict[str, list[np.ndarray]] | None = None) -> tuple[str, str]:
    proto = os.path.join(tmp_path, "net.prototxt")
    model = os.path.join(tmp_path, "net.caffemodel")
    with open(proto, "w") as f:
        f.write('name: "t"\n' + INPUT + layers)
    net = pb.NetParameter()
    net.layer.add().name = "data"  # a caffemodel needs at least one layer
    for name, arrays in (blobs or {}).items():
        layer = net.layer.add()
        layer.name = name
        for a in arrays:
            b = layer.blobs.add()
            b.shape.dim.extend(a.shape)
            b.data.extend(a.ravel().astype(np.float32).tolist())
    with open(model, "wb") as f:
        f.write(net.SerializeToString())
    return proto, model


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ('layer { name: "r" type: "ReLU" top: "r" }', r"layer 'r' \(ReLU\): expected 1 bottom, found 0"),
        ('layer { name: "r" type: "ReLU" bottom: "data" }', r"layer 'r' \(ReLU\): expected 1 top, found 0"),
        ('layer { name: "r" type: "ReLU" bottom: "data" top: "a" top: "b" }', r"expected 1 top, found 2"),
        (
            'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 0 } }',
            r"layer 'p' \(Pooling\): kernel \[2, 2\] and stride \[0, 0\] must be >= 1",
        ),
        (
            'layer { name: "x" type: "Eltwise" top: "x" }',
            r"layer 'x' \(Eltwise\): expected at least 1 bottoms, found 0",
        ),
    ],
)
def test_caffe_layer_counts_and_geometry(tmp_path, layer: str, match: str) -> None:
    proto, model = _caffe(tmp_path, layer + "\n")
    with pytest.raises(InvalidModelError, match=match) as ei:
        convertmodel.load(model, prototxt=proto)
    assert proto in str(ei.value)


def test_caffe_ssd_aspect_ratio_zero(tmp_path) -> None:
    layer = (
        'layer { name: "pb" type: "PriorBox" bottom: "data" bottom: "data" top: "pb" '
        "prior_box_param { min_size: 30 aspect_ratio: 0 flip: true variance: 0.1 } }\n"
    )
    proto, model = _caffe(tmp_path, layer)
    with pytest.raises(InvalidModelError, match=r"layer 'pb' \(PriorBox\): prior_box_param.aspect_ratio must be"):
        convertmodel.load(model, prototxt=proto)


def test_caffe_conv_group_zero(tmp_path) -> None:
    layer = (
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
        "convolution_param { num_output: 2 kernel_size: 3 group: 0 } }\n"
    )
    proto, model = _caffe(tmp_path, layer, {"c": [np.zeros((2, 2, 3, 3)), np.zeros(2)]})
    with pytest.raises(InvalidModelError, match=r"layer 'c' \(Convolution\): group \(0\)"):
        convertmodel.load(model, prototxt=proto)


def _onnx(tmp_path, nodes, inits, x_shape=(1, 2, 8, 8), opset: int = 13) -> str:
    g = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    p = os.path.join(tmp_path, "m.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), p)
    return p


W = np.ones((2, 2, 3, 3), np.float32)


@pytest.mark.parametrize(
    ("attrs", "w", "match"),
    [
        ({"strides": [0, 1]}, W, r"must all be >= 1"),
        ({"kernel_shape": [3, 3], "pads": [-1, 0, 0, 0]}, W, r"non-negative"),
        ({}, np.ones((2, 2, 9, 9), np.float32), r"larger than the padded input"),
        ({"group": 2}, np.ones((3, 1, 3, 3), np.float32), r"not divisible by group 2"),
        ({}, np.ones((0, 2, 3, 3), np.float32), r"zero-size"),
    ],
)
def test_impossible_conv_geometry_is_refused_at_load(tmp_path, attrs, w, match) -> None:
    p = _onnx(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)], {"w": w})
    with pytest.raises(InvalidModelError, match=match) as ei:
        convertmodel.load(p)
    assert "conv" in str(ei.value)


def test_non_utf8_attribute_name_is_format_error(tmp_path) -> None:
    p = _onnx(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])], {"w": W})
    with open(p, "rb") as f:
        data = bytearray(f.read())
    i = data.find(b"kernel_shape")
    data[i + 3] = 0xFF
    with open(p, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(FormatError, match=r"node #0 'conv' \(Conv\): attribute name b'ker\\xff") as ei:
        convertmodel.load(p)
    assert p in str(ei.value)


def test_repeated_transpose_axis_while_folding(tmp_path) -> None:
    c = np.ones((2, 3), np.float32)
    nodes = [
        helper.make_node("Transpose", ["c"], ["t"], name="tr", perm=[0, 0]),
        helper.make_node("Add", ["x", "t"], ["y"], name="add"),
    ]
    p = _onnx(tmp_path, nodes, {"c": c}, x_shape=(2, 3))
    with pytest.raises(InvalidModelError, match="tr"):
        convertmodel.load(p)


def test_constant_of_shape_bomb_is_refused_before_allocating(tmp_path) -> None:
    shape = np.array([100000, 100000, 10], np.int64)
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["y"], name="bomb")]
    p = _onnx(tmp_path, nodes, {"s": shape})
    assert os.path.getsize(p) < 300
    with pytest.raises(InvalidModelError, match=r"'bomb'.*372.5 GiB, above the memory cap of 1.0 GiB") as ei:
        convertmodel.load(p)
    assert limits.ENV_VAR in str(ei.value)


@pytest.mark.parametrize(
    ("op", "extra", "match"),
    [
        ("Tile", {"r": np.array([1, 100000, 100000, 1], np.int64)}, "Tile"),
        ("Pad", {"r": np.array([0, 0, 0, 0, 0, 0, 100000, 100000], np.int64)}, "Pad"),
        ("Expand", {"r": np.array([100000, 1000, 1, 1, 1], np.int64)}, "Expand"),
    ],
)
def test_declared_sizes_above_the_cap(tmp_path, op, extra, match) -> None:
    p = _onnx(tmp_path, [helper.make_node(op, ["x", "r"], ["y"], name="n")], extra)
    with pytest.raises(InvalidModelError, match=rf"{match} 'n'.*above the memory cap"):
        convertmodel.load(p)


def test_cap_is_overridable(tmp_path, monkeypatch) -> None:
    p = _onnx(
        tmp_path, [helper.make_node("Tile", ["x", "r"], ["y"], name="n")], {"r": np.array([1, 1, 64, 64], np.int64)}
    )
    convertmodel.load(p)  # 1 MiB: fine
    monkeypatch.setenv(limits.ENV_VAR, "512K")
    with pytest.raises(InvalidModelError, match=r"above the memory cap of 512\.0 KiB"):
        convertmodel.load(p)
    assert limits.parse_bytes("16G") == 16 << 30 and limits.parse_bytes("1.5M") == 3 << 19
    with pytest.raises(InvalidModelError, match="expected a byte count"):
        limits.parse_bytes("lots")


def test_folding_budget_adds_up(tmp_path) -> None:
    b = limits.Budget("constant folding", cap=100)
    b.charge(60, "a")
    with pytest.raises(InvalidModelError, match="constant folding so far needs 120 B"):
        b.charge(60, "b")


def test_lrn_huge_window_is_fast_and_exact(tmp_path) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    small = _onnx(tmp_path, [helper.make_node("LRN", ["x"], ["y"], name="l", size=5)], {}, x_shape=(2, 3, 4, 4))
    want = convertmodel.load(small).predict(x)
    huge = os.path.join(tmp_path, "huge")
    os.mkdir(huge)
    p = _onnx(huge, [helper.make_node("LRN", ["x"], ["y"], name="l", size=2**31 - 1)], {}, x_shape=(2, 3, 4, 4))
    got = convertmodel.load(p).predict(x)  # a 2**31 window over 3 channels: every channel sums all three
    sq = np.square(x).sum(axis=1, keepdims=True)
    ref = x / (1.0 + 1e-4 / (2**31 - 1) * sq) ** 0.75
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert want.shape == got.shape


def test_negative_transpose_perm_is_refused(tmp_path) -> None:
    p = _onnx(tmp_path, [helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[0, 2, -1, 1])], {})
    with pytest.raises(InvalidModelError, match=r"Transpose 't': perm \[0, 2, -1, 1\] is not a permutation of rank 4"):
        convertmodel.load(p)


def test_native_fp32_conv_with_a_stride_past_int64_is_typed() -> None:
    """Fuzz case bytes:torch7:3004510: a .t7 conv declared a stride of 2**65, which shape inference accepts (the
    output is 1x1) but pybind11 cannot convert: it must be a node-named InvalidModelError, not a TypeError."""
    from convertmodel.runtime.native import fp32
    from tests.helpers import run_ir_node

    if not fp32.available():
        pytest.skip("native extension not built")
    x = np.ones((1, 2, 3, 3), np.float32)
    w = np.ones((4, 2, 1, 1), np.float32)
    with pytest.raises(InvalidModelError, match="64-bit"):
        run_ir_node("Conv", {"x": x, "w": w}, const_inputs=["w"], backends=("native", "ref"), strides=[2**65, 2])
