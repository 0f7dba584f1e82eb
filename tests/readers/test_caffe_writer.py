"""Caffe writer: IR -> Caffe -> IR round trips exactly, OpenCV runs what it writes, unsupported ops
fail once, writes are atomic, and scripts/make_vgg_caffe.py builds loadable VGG files."""

from __future__ import annotations

import os
import runpy
import sys

import numpy as np
import pytest

from convertmodel.errors import UnsupportedOpError
from convertmodel.ir import GraphBuilder, check_graph
from convertmodel.ir.graph import Graph
from convertmodel.writers.caffe import write_caffe
from convertmodel.zoo import vgg
from tests.helpers import REPO, assert_close
from tests.readers.caffe_cases import CASES
from tests.readers.caffe_util import input_block, read_checked, run_opencv, run_ours, write_net

R = np.random.default_rng(3)


def _feeds(g: Graph) -> dict[str, np.ndarray]:
    return {
        vi.name: (R.standard_normal([d if isinstance(d, int) else 1 for d in vi.type.shape or ()]) * 2).astype(
            np.float32
        )
        for vi in g.inputs
    }


def _assert_same_graph_and_outputs(g: Graph, g2: Graph) -> None:
    assert g2.op_counts() == g.op_counts()
    assert [n.name for n in g2.nodes] == [n.name for n in g.nodes]
    assert [o.name for o in g2.outputs] == [o.name for o in g.outputs]
    feeds = _feeds(g)
    a, b = run_ours(g, feeds), run_ours(g2, feeds)
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)


# Scale with a second bottom reads as Reshape + a broadcasting Mul, which Caffe has no single layer for.
WRITABLE = [c for c in CASES if c[0] != "scale_second_bottom"]


@pytest.mark.parametrize("case", WRITABLE, ids=[c[0] for c in WRITABLE])
def test_round_trip_of_reader_cases(tmp_path: object, case: tuple) -> None:
    _, shape, body, blobs, out = case
    d = str(tmp_path)
    _, model = write_net(d, input_block("data", shape) + body, blobs, name="src")
    g = read_checked(model)
    dst = os.path.join(d, "out.caffemodel")
    proto = write_caffe(g, dst)
    assert proto == os.path.join(d, "out.prototxt")
    g2 = read_checked(dst)
    _assert_same_graph_and_outputs(g, g2)
    # What we write is real Caffe: OpenCV's importer runs it to the same result.
    feeds = _feeds(g)
    (ref,) = run_opencv(proto, dst, feeds, [out])
    ours = run_ours(g2, feeds)[out]
    assert_close(ours, ref.reshape(ours.shape), rtol=1e-4, atol=1e-5)


def test_vgg_from_zoo_round_trips_and_runs_in_opencv(tmp_path: object) -> None:
    g = vgg(16, image_size=32, num_classes=10, batch=1, seed=5)
    dst = os.path.join(str(tmp_path), "vgg16.caffemodel")
    proto = write_caffe(g, dst, prototxt_out=os.path.join(str(tmp_path), "deploy.prototxt"))
    assert os.path.basename(proto) == "deploy.prototxt"
    g2 = read_checked(dst)  # finds deploy.prototxt by itself
    assert (
        g2.op_counts() == g.op_counts() == {"Conv": 13, "Relu": 15, "MaxPool": 5, "Flatten": 1, "Gemm": 3, "Softmax": 1}
    )
    x = R.standard_normal((1, 3, 32, 32)).astype(np.float32)
    a = run_ours(g, {"data": x})[g.outputs[0].name]
    b = run_ours(g2, {"data": x})[g2.outputs[0].name]
    np.testing.assert_array_equal(b, a)
    (ref,) = run_opencv(proto, dst, {"data": x}, [g2.outputs[0].name])
    assert_close(b, ref, rtol=1e-4, atol=1e-6)


def test_unsupported_ops_fail_once_and_write_nothing(tmp_path: object) -> None:
    b = GraphBuilder("bad")
    x = b.add_input("x", "float32", (1, 2, 5, 5))
    w = b.add_const("w", np.ones((2, 2, 3, 3), np.float32))
    (y,) = b.add_node("Conv", [x, w], name="asym", pads=[0, 1, 1, 0])
    (z,) = b.add_node("Exp", [y], name="exp1")
    (z2,) = b.add_node("Exp", [z], name="exp2")
    b.mark_output(z2)
    g = b.build()
    check_graph(g)
    dst = os.path.join(str(tmp_path), "bad.caffemodel")
    with pytest.raises(UnsupportedOpError) as ei:
        write_caffe(g, dst)
    unsupported = ei.value.unsupported
    assert unsupported["Exp"] == ["exp1", "exp2"]
    assert any(k.startswith("Conv (pads") for k in unsupported)
    assert os.listdir(str(tmp_path)) == []


def test_write_replaces_atomically(tmp_path: object) -> None:
    d = str(tmp_path)
    dst = os.path.join(d, "m.caffemodel")
    with open(dst, "wb") as f:
        f.write(b"old contents that are longer than nothing" * 100)
    g = vgg(16, image_size=32, num_classes=4, batch=1)
    write_caffe(g, dst)
    assert sorted(os.listdir(d)) == ["m.caffemodel", "m.prototxt"]
    assert read_checked(dst).param_count() == g.param_count()


def test_write_model_routes_caffemodel(tmp_path: object) -> None:
    from convertmodel.writers import write_model

    g = vgg(16, image_size=32, num_classes=3, batch=1)
    dst = os.path.join(str(tmp_path), "w.caffemodel")
    write_model(g, dst, prototxt_out=os.path.join(str(tmp_path), "w_deploy.prototxt"))
    assert os.path.exists(os.path.join(str(tmp_path), "w_deploy.prototxt"))


def test_make_vgg_caffe_script(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    out = str(tmp_path)
    argv = ["make_vgg_caffe.py", out, "--depth", "19", "--image-size", "32", "--num-classes", "7"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as ei:
        runpy.run_path(os.path.join(REPO, "scripts", "make_vgg_caffe.py"), run_name="__main__")
    assert ei.value.code == 0
    from google.protobuf import text_format

    from convertmodel.readers.caffe.proto import pb

    net = pb.NetParameter()
    with open(os.path.join(out, "vgg19.prototxt")) as f:
        text_format.Merge(f.read(), net)
    seq = [(lay.name, lay.type) for lay in net.layer]
    # The model zoo's deploy layout: in-place ReLUs, dropout after fc6/fc7, InnerProduct reading pool5.
    assert seq[-9:] == [
        ("pool5", "Pooling"),
        ("fc6", "InnerProduct"),
        ("relu6", "ReLU"),
        ("drop6", "Dropout"),
        ("fc7", "InnerProduct"),
        ("relu7", "ReLU"),
        ("drop7", "Dropout"),
        ("fc8", "InnerProduct"),
        ("prob", "Softmax"),
    ]
    relu = next(lay for lay in net.layer if lay.name == "relu1_1")
    assert list(relu.bottom) == list(relu.top) == ["conv1_1"]
    g = read_checked(os.path.join(out, "vgg19.caffemodel"))
    assert g.op_counts()["Conv"] == 16 and g.op_counts()["Gemm"] == 3
    names = [n.name for n in g.nodes if n.op_type in ("Conv", "Gemm")]
    assert names[:3] == ["conv1_1", "conv1_2", "conv2_1"] and names[-3:] == ["fc6", "fc7", "fc8"]
    x = R.standard_normal((1, 3, 32, 32)).astype(np.float32)
    (ref,) = run_opencv(
        os.path.join(out, "vgg19.prototxt"), os.path.join(out, "vgg19.caffemodel"), {"data": x}, ["prob"]
    )
    assert_close(run_ours(g, {"data": x})["prob"], ref, rtol=1e-4, atol=1e-6)


def test_constant_operands_become_power_scale_bias(tmp_path: object) -> None:
    """Scalar constants (either operand order) -> Power; per-channel or trailing-axes constants -> Bias/Scale."""
    b = GraphBuilder("consts")
    x = b.add_input("data", "float32", (1, 3, 4, 5))
    s = b.add_const("s", np.array(1.5, np.float32))
    (y,) = b.add_node("Mul", [s, x], name="scalar_first")
    (y,) = b.add_node("Add", [y, b.add_const("c", R.standard_normal((3, 1, 1)).astype(np.float32))], name="per_ch")
    (y,) = b.add_node("Mul", [y, b.add_const("t", R.standard_normal((4, 5)).astype(np.float32))], name="trailing")
    (y,) = b.add_node("Pow", [y, b.add_const("p", np.array(2.0, np.float32))], name="square")
    b.mark_output(y)
    g = b.build()
    dst = os.path.join(str(tmp_path), "c.caffemodel")
    write_caffe(g, dst)
    g2 = read_checked(dst)
    assert [n.op_type for n in g2.nodes] == ["Mul", "ChannelAffine", "Mul", "Pow"]
    x_val = R.standard_normal((1, 3, 4, 5)).astype(np.float32)
    got = run_ours(g2, {"data": x_val})[g2.outputs[0].name]
    np.testing.assert_array_equal(got, run_ours(g, {"data": x_val})[y])
    c, t = g.constants["c"], g.constants["t"]
    assert_close(got, ((np.float32(1.5) * x_val + c) * t) ** 2, rtol=1e-6, atol=1e-7)


def test_gemm_without_transb_runs_right_in_opencv(tmp_path: object) -> None:
    """A Gemm with a (K, M) weight (as MatMul-style exporters write it) is stored as Caffe's usual (M, K) blob:
    OpenCV's dnn ignores InnerProduct's `transpose` flag, so writing the flag would compute the wrong thing there."""
    b = GraphBuilder("fc")
    x = b.add_input("x", "float32", (2, 6))
    w = b.add_const("w", R.standard_normal((6, 4)).astype(np.float32))
    bias = b.add_const("b", R.standard_normal(4).astype(np.float32))
    (y,) = b.add_node("Gemm", [x, w, bias], name="fc", transB=0)
    b.mark_output(y)
    g = b.build()
    dst = os.path.join(str(tmp_path), "fc.caffemodel")
    proto = write_caffe(g, dst)
    assert "transpose" not in open(proto, encoding="utf-8").read()
    feeds = {"x": R.standard_normal((2, 6)).astype(np.float32)}
    expected = feeds["x"] @ np.asarray(g.constants[w]) + np.asarray(g.constants[bias])
    g2 = read_checked(dst)
    assert g2.op_counts() == {"Gemm": 1}
    assert_close(run_ours(g2, feeds)[g2.outputs[0].name], expected, rtol=1e-5, atol=1e-6)
    (ref,) = run_opencv(proto, dst, feeds, [g2.outputs[0].name])
    assert_close(ref.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)
