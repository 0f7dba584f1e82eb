"""Every TensorFlow op the reader handles, in small frozen graphs, against TensorFlow itself.

Each case is a tf.function frozen with TensorFlow's own convert_variables_to_constants_v2 (the TF2
export path), written as a binary .pb, read through convertmodel.load (reader + import pipeline)
and compared with a TensorFlow session on the same frozen graph: rtol 1e-4 plus an absolute floor
of 1e-5 x the output's largest magnitude (fp32 sums in another order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convertmodel
from tests.helpers import assert_close
from tests.readers.tensorflow.tfhelp import freeze, run_graphdef, tensorflow

tf = tensorflow()
R = np.random.default_rng(7)


def _c(*shape: int) -> Any:
    return tf.constant(R.standard_normal(shape).astype(np.float32))


# Weights are created once, at import, so the frozen graph holds them as Const nodes.
W33 = _c(3, 3, 4, 6)
W55 = _c(5, 5, 4, 3)
DW = _c(3, 3, 4, 2)
B6 = _c(6)
WT = _c(3, 3, 5, 4)  # conv transpose filter: (H, W, out, in)
FC = _c(4 * 7 * 7, 5)
BN = [tf.constant(R.random(4).astype(np.float32) + 0.5) for _ in range(4)]

CASES: dict[str, tuple[Callable[..., Any], list[tuple[int, ...]]]] = {
    "conv_same_s2_asym": (lambda x: tf.nn.conv2d(x, W33, 2, "SAME"), [(2, 8, 8, 4)]),
    "conv_valid_bias_relu": (
        lambda x: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, W33, 1, "VALID"), B6)),
        [(1, 7, 9, 4)],
    ),
    "conv_dilated": (lambda x: tf.nn.conv2d(x, W33, 1, "SAME", dilations=2), [(1, 9, 9, 4)]),
    "conv_5x5_s2_odd": (lambda x: tf.nn.conv2d(x, W55, 2, "SAME"), [(1, 9, 10, 4)]),
    "depthwise_s2": (lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 2, 2, 1], "SAME"), [(1, 8, 8, 4)]),
    "conv_transpose_same": (
        lambda x: tf.nn.conv2d_transpose(x, WT, [1, 8, 8, 5], 2, "SAME"),
        [(1, 4, 4, 4)],
    ),
    "conv_transpose_valid": (
        lambda x: tf.nn.conv2d_transpose(x, WT, [1, 9, 9, 5], 2, "VALID"),
        [(1, 4, 4, 4)],
    ),
    "fused_bn_relu6": (
        lambda x: tf.nn.relu6(tf.compat.v1.nn.fused_batch_norm(x, *BN, epsilon=1e-3, is_training=False)[0]),
        [(2, 5, 5, 4)],
    ),
    "activations": (
        lambda x: tf.concat(
            [tf.nn.elu(x), tf.nn.leaky_relu(x, 0.1), tf.sigmoid(x), tf.tanh(x), tf.nn.softplus(x)], axis=3
        ),
        [(1, 3, 3, 4)],
    ),
    "maxpool_same_s2": (lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME"), [(1, 8, 8, 4)]),
    "avgpool_same_asym": (lambda x: tf.nn.avg_pool2d(x, 2, 2, "SAME"), [(1, 7, 7, 4)]),
    "avgpool_valid": (lambda x: tf.nn.avg_pool2d(x, 3, 1, "VALID"), [(1, 6, 6, 4)]),
    "mean_global": (lambda x: tf.reduce_mean(tf.nn.relu(x), axis=[1, 2]), [(2, 5, 5, 4)]),
    "max_global_keep": (lambda x: tf.reduce_max(tf.nn.relu(x), axis=[1, 2], keepdims=True), [(2, 5, 5, 4)]),
    "mean_channels": (lambda x: tf.reduce_mean(tf.nn.relu(x), axis=3), [(1, 5, 5, 4)]),
    "pad_then_conv": (
        lambda x: tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]]), W33, 1, "VALID"),
        [(1, 6, 6, 4)],
    ),
    "mirror_pad": (lambda x: tf.pad(tf.nn.relu(x), [[0, 0], [2, 1], [1, 2], [0, 0]], mode="REFLECT"), [(1, 5, 5, 4)]),
    "concat_channels": (lambda a, b: tf.concat([tf.nn.relu(a), b], axis=-1), [(1, 4, 4, 4), (1, 4, 4, 3)]),
    "binary_broadcast": (
        lambda a, b: tf.maximum(tf.nn.relu(a) * 0.5 - b, tf.minimum(a, 1.0)) / 2.0 + tf.constant([1.0, 2.0, 3.0, 4.0]),
        [(1, 4, 4, 4), (1, 1, 1, 4)],
    ),
    "flatten_dense": (
        lambda x: tf.nn.softmax(
            tf.matmul(tf.reshape(tf.nn.relu(tf.nn.conv2d(x, W33, 1, "SAME")[..., :4]), [-1, 196]), FC)
        ),
        [(3, 7, 7, 4)],
    ),
    "shape_pack_reshape": (
        lambda x: tf.reshape(x, tf.stack([tf.shape(x)[0], tf.constant(-1)])),
        [(2, 3, 3, 4)],
    ),
    "squeeze_expand_transpose": (
        lambda x: tf.transpose(
            tf.expand_dims(tf.squeeze(tf.reduce_mean(x, [1, 2], keepdims=True), [1, 2]), 1), [1, 0, 2]
        ),
        [(2, 4, 4, 4)],
    ),
    "strided_slice": (lambda x: tf.nn.relu(x)[:, 1:-1:2, ::-1, 2], [(1, 7, 6, 4)]),
    "strided_slice_new_axis": (lambda x: tf.nn.relu(x)[..., tf.newaxis, 1, :3], [(2, 3, 5, 4)]),
    "strided_slice_new_axis_front": (lambda x: tf.reshape(x, [2, -1])[tf.newaxis, :, 3:], [(2, 3, 3, 4)]),
    "div_no_nan": (lambda a, b: tf.math.divide_no_nan(a, tf.nn.relu(b)), [(1, 3, 3, 4), (1, 3, 3, 4)]),
    "resize_bilinear_half_pixel": (
        lambda x: tf.compat.v1.image.resize_bilinear(tf.nn.relu(x), [7, 9], half_pixel_centers=True),
        [(1, 4, 5, 4)],
    ),
    "resize_bilinear_align": (
        lambda x: tf.compat.v1.image.resize_bilinear(x, [7, 9], align_corners=True),
        [(1, 4, 5, 4)],
    ),
    "resize_bilinear_legacy": (lambda x: tf.compat.v1.image.resize_bilinear(x, [7, 9]), [(1, 4, 5, 4)]),
    "resize_nearest_half_pixel": (
        lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [9, 7], half_pixel_centers=True),
        [(1, 4, 5, 4)],
    ),
    "resize_nearest_align": (
        lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [9, 7], align_corners=True),
        [(1, 4, 5, 4)],
    ),
    "resize_nearest_legacy": (lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [8, 10]), [(1, 4, 5, 4)]),
    "nchw_transpose_pair": (
        lambda x: tf.nn.conv2d(tf.transpose(tf.nn.relu(tf.transpose(x, [0, 3, 1, 2])), [0, 2, 3, 1]), W33, 1, "SAME"),
        [(1, 6, 6, 4)],
    ),
    "l2_normalize": (lambda x: tf.math.l2_normalize(tf.reshape(x, [2, -1]), axis=1), [(2, 3, 3, 4)]),
}


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes, list[str], list[str]]]:
    d = tmp_path_factory.mktemp("tfops")
    out = {}
    for name, (fn, shapes) in CASES.items():
        specs = [tf.TensorSpec(s, tf.float32, name=f"x{i}") for i, s in enumerate(shapes)]
        data = freeze(fn, *specs)
        path = str(d / f"{name}.pb")
        with open(path, "wb") as f:
            f.write(data)
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString(data)
        ins = [n.name for n in gd.node if n.op == "Placeholder"]
        used = {i.split(":")[0].lstrip("^") for n in gd.node for i in n.input}
        outs = [n.name for n in gd.node if n.name not in used and n.op not in ("Placeholder", "Const", "NoOp")]
        out[name] = (path, data, ins, outs)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_tensorflow(case: str, frozen: dict[str, Any]) -> None:
    path, data, ins, outs = frozen[case]
    shapes = CASES[case][1]
    feeds = {n: R.standard_normal(s).astype(np.float32) for n, s in zip(ins, shapes, strict=True)}
    expected = run_graphdef(data, feeds, outs)
    m = convertmodel.load(path)
    assert m.metadata["source_format"] == "tensorflow"
    got = m.predict(feeds)
    for name, e in zip(outs, expected, strict=True):
        assert_close(got[name], e, rtol=1e-4, atol=1e-5 * float(np.abs(e).max() or 1.0), what=f"{case}:{name}")


def test_nhwc_cnn_becomes_nchw_without_inner_transposes(frozen: dict[str, Any]) -> None:
    """Conv -> BiasAdd -> Relu -> Flatten -> MatMul: one Transpose at the input, none inside."""
    m = convertmodel.load(frozen["flatten_dense"][0])
    ops = m.graph.op_counts()
    assert ops.get("Transpose", 0) == 1, ops
    assert ops["Conv"] == 1 and "BatchNormalization" not in ops
    q = m.quantize()
    assert q.graph.op_counts().get("QConv", 0) == 1, q.graph.op_counts()


def test_text_format_pbtxt(frozen: dict[str, Any], tmp_path: Any) -> None:
    from google.protobuf import text_format

    _path, data, ins, outs = frozen["conv_valid_bias_relu"]
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(data)
    p = tmp_path / "net.pbtxt"
    p.write_text("# written by text_format\n" + text_format.MessageToString(gd))
    feeds = {ins[0]: R.standard_normal((1, 7, 9, 4)).astype(np.float32)}
    assert_close(convertmodel.load(str(p)).predict(feeds)[outs[0]], run_graphdef(data, feeds, outs)[0], what="pbtxt")


def test_cut_with_inputs_and_outputs(frozen: dict[str, Any]) -> None:
    """inputs=NAME:SHAPE starts the graph at an inner tensor, outputs=NAME stops it early."""
    path, data, _ins, _outs = frozen["conv_valid_bias_relu"]
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(data)
    conv = next(n.name for n in gd.node if n.op == "Conv2D")
    bias = next(n.name for n in gd.node if n.op == "BiasAdd")
    m = convertmodel.load(path, inputs=f"{conv}:1,5,7,6", outputs=bias)
    assert [i.name for i in m.graph.inputs] == [conv] and [o.name for o in m.graph.outputs] == [bias]
    assert m.graph.inputs[0].type.shape == (1, 5, 7, 6)
    x = R.standard_normal((1, 5, 7, 6)).astype(np.float32)
    assert_close(m.predict(x), run_graphdef(data, {conv: x}, [bias])[0], what="cut")


def test_exporter_transpose_pairs_vanish(frozen: dict[str, Any]) -> None:
    """NHWC -> NCHW -> (Relu) -> NHWC -> Conv, as NCHW-exported graphs have: the pair vanishes; what is
    left is the input's Transpose (the exporter's own) and the one back to NHWC at the 4-D output."""
    g = convertmodel.load(frozen["nchw_transpose_pair"][0]).graph
    ops = g.op_counts()
    assert ops.get("Transpose", 0) == 2 and ops["Conv"] == 1, ops
    prod = g.producers()
    assert prod[g.outputs[0].name].op_type == "Transpose" and prod[prod[g.outputs[0].name].inputs[0]].op_type == "Conv"
