"""Older opsets' op forms (attributes that became inputs, Softmax coercion, Upsample) vs onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper

from convertmodel.ir import check_graph
from convertmodel.runtime import run_graph
from tests.helpers import assert_close
from tests.readers.onnx_util import make_model, read, run_ort, save


def _check(tmp_path, nodes, inputs, outputs, opset, rng, inits=None, **options):
    model = make_model(nodes, [(n, x.shape) for n, x in inputs.items()], outputs, inits, opset=opset)
    path = save(model, str(tmp_path))
    g = read(path, **options)
    check_graph(g)
    ours = run_graph(g, inputs, ("ref",))
    for name, ref in zip(outputs, run_ort(path, inputs), strict=True):
        assert_close(ours[name], ref, rtol=1e-5, atol=1e-6, what=f"opset {opset} {name}")
    return g


CASES = [
    # (id, opset, nodes, input shape, expected IR op counts)
    ("clip6_attrs", 9, [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.25)], (2, 3, 4), {"Clip": 1}),
    ("clip11_inputs", 13, [helper.make_node("Clip", ["x", "", "hi"], ["y"])], (2, 3, 4), {"Clip": 1}),
    (
        "unsqueeze_squeeze_attrs",
        11,
        [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]), helper.make_node("Squeeze", ["u"], ["y"], axes=[0])],
        (2, 3, 4),
        {"Unsqueeze": 1, "Squeeze": 1},
    ),
    (
        "slice_attrs",
        9,
        [helper.make_node("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[2, 1])],
        (2, 3, 4),
        {"Slice": 1},
    ),
    (
        "pad_attrs",
        10,
        [helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 0, 1], value=1.5)],
        (2, 3, 4),
        {"Pad": 1},
    ),
    (
        "split_attr",
        11,
        [
            helper.make_node("Split", ["x"], ["a", "b"], axis=2, split=[1, 3]),
            helper.make_node("Sub", ["b", "a"], ["y"]),
        ],
        (2, 3, 4),
        {"Split": 1, "Sub": 1},
    ),
    (
        "split_equal_13",
        13,
        [helper.make_node("Split", ["x"], ["a", "b"], axis=2), helper.make_node("Mul", ["a", "b"], ["y"])],
        (2, 3, 4),
        {"Split": 1, "Mul": 1},
    ),
    (
        "reduce_mean_axes_attr",
        11,
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2], keepdims=0)],
        (2, 3, 4),
        {"ReduceMean": 1},
    ),
    (
        "softmax11_4d_axis1",
        11,
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
        (2, 3, 2, 2),
        {"Flatten": 1, "Softmax": 1, "Reshape": 1},
    ),
    ("logsoftmax11_last_axis", 11, [helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], (2, 5), {"LogSoftmax": 1}),
    ("softmax13_axis1", 13, [helper.make_node("Softmax", ["x"], ["y"], axis=1)], (2, 3, 2, 2), {"Softmax": 1}),
    (
        "sum3_dropout",
        9,
        [helper.make_node("Dropout", ["x"], ["d"], ratio=0.3), helper.make_node("Sum", ["x", "d", "x"], ["y"])],
        (2, 3),
        {"Add": 2},
    ),
    (
        "bn7_spatial",
        7,
        [helper.make_node("BatchNormalization", ["x", "bn_s", "bn_b", "bn_m", "bn_v"], ["y"], epsilon=1e-3, spatial=1)],
        (2, 3, 2, 2),
        {"BatchNormalization": 1},
    ),
    (
        "upsample9_nearest",
        9,
        [helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")],
        (1, 2, 3, 3),
        {"Resize": 1},
    ),
    (
        "upsample7_attr_scales",
        7,
        [helper.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0])],
        (1, 2, 3, 3),
        {"Resize": 1},
    ),
    (
        "resize10_linear",
        10,
        [helper.make_node("Resize", ["x", "sc"], ["y"], mode="linear")],
        (1, 2, 3, 3),
        {"Resize": 1},
    ),
    (
        "resize11_sizes_empty_roi_scales",
        11,
        [
            helper.make_node(
                "Resize",
                ["x", "empty", "empty", "sizes"],
                ["y"],
                mode="linear",
                coordinate_transformation_mode="align_corners",
            )
        ],
        (1, 2, 3, 3),
        {"Resize": 1},
    ),
    (
        "flatten_gemm",
        9,
        [
            helper.make_node("Flatten", ["x"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1, alpha=0.5),
        ],
        (2, 3, 2, 2),
        {"Flatten": 1, "Gemm": 1},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_opset_forms(tmp_path, rng, case):
    _, opset, nodes, shape, counts = case
    x = rng.standard_normal(shape).astype(np.float32)
    inits = {
        "hi": np.float32(0.3),
        "bn_s": rng.uniform(0.5, 2, 3).astype(np.float32),
        "bn_b": rng.standard_normal(3).astype(np.float32),
        "bn_m": rng.standard_normal(3).astype(np.float32),
        "bn_v": rng.uniform(0.5, 2, 3).astype(np.float32),
        "sc": np.array([1, 1, 2, 3], np.float32),
        "empty": np.zeros((0,), np.float32),
        "sizes": np.array([1, 2, 5, 7], np.int64),
        "gw": rng.standard_normal((5, 12)).astype(np.float32),
        "gb": rng.standard_normal(5).astype(np.float32),
    }
    used = {i for n in nodes for i in n.input}
    g = _check(tmp_path, nodes, {"x": x}, ["y"], opset, rng, {k: v for k, v in inits.items() if k in used})
    assert g.op_counts() == counts


def test_dynamic_batch_flatten_chain_folds(tmp_path, rng):
    """tf2onnx-style flatten: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) with a symbolic batch."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    model = make_model(nodes, [("x", ["batch", 2, 3, 4])], ["y"], inits, opset=13)
    path = save(model, str(tmp_path))
    g = read(path)
    check_graph(g)
    assert g.op_counts() == {"Reshape": 1}
    np.testing.assert_array_equal(g.constants[g.nodes[0].inputs[1]], [0, -1])
    assert g.outputs[0].type.shape == ("batch", 24)
    raw = read(path, fold_constants=False, simplify=False)
    assert raw.op_counts() == {"Shape": 1, "Gather": 1, "Unsqueeze": 1, "Concat": 1, "Reshape": 1}
    for batch in (1, 3):
        x = rng.standard_normal((batch, 2, 3, 4)).astype(np.float32)
        ref = run_ort(path, {"x": x})[0]
        assert_close(run_graph(g, {"x": x}, ("ref",))["y"], ref, rtol=0, atol=0)
        assert_close(run_graph(raw, {"x": x}, ("ref",))["y"], ref, rtol=0, atol=0)


def test_tf2onnx_nhwc_transpose_pairs_cancel(tmp_path, rng):
    """NHWC input -> [T to NCHW] Conv [T to NHWC] -> [T to NCHW] Conv [T to NHWC]: the middle pair cancels."""
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((5, 4, 1, 1)).astype(np.float32)
    to_nchw, to_nhwc = [0, 3, 1, 2], [0, 2, 3, 1]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=to_nchw),
        helper.make_node("Conv", ["t0", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c1"], ["t1"], perm=to_nhwc),
        helper.make_node("Relu", ["t1"], ["r1"]),
        helper.make_node("Identity", ["r1"], ["i1"]),
        helper.make_node("Transpose", ["i1"], ["t2"], perm=to_nchw),
        helper.make_node("Conv", ["t2", "w2"], ["c2"]),
        helper.make_node("Transpose", ["c2"], ["y"], perm=to_nhwc),
    ]
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    path = save(make_model(nodes, [("x", ["N", 6, 6, 3])], ["y"], {"w1": w1, "w2": w2}, opset=13), str(tmp_path))
    raw = read(path, simplify=False)
    g = read(path)
    check_graph(g)
    assert raw.op_counts()["Transpose"] == 4
    # The NHWC->NCHW / NCHW->NHWC pair around the Relu cancels (the Transpose moves through the Relu);
    # the first and last Transposes keep the model's public NHWC layout.
    assert g.op_counts() == {"Transpose": 2, "Conv": 2, "Relu": 1}
    assert g.inputs[0].type.shape == ("N", 6, 6, 3) and g.outputs[0].name == "y"
    ref = run_ort(path, {"x": x})[0]
    assert_close(run_graph(g, {"x": x}, ("ref",))["y"], ref, rtol=1e-4, atol=1e-4)


def _n(op, ins, **attrs):
    return helper.make_node(op, ins, ["y"], **attrs)


# Pass-through ops (attributes copied) at the newest opsets: the reader's translation vs onnxruntime.
PASS_CASES = [
    ("sigmoid_tanh", [helper.make_node("Sigmoid", ["x"], ["s"]), _n("Tanh", ["s"])], (2, 3, 4, 4)),
    (
        "leaky_prelu",
        [helper.make_node("LeakyRelu", ["x"], ["l"], alpha=0.3), _n("PRelu", ["l", "slope"])],
        (2, 3, 4, 4),
    ),
    (
        "hardsigmoid_elu",
        [helper.make_node("HardSigmoid", ["x"], ["h"], alpha=0.3, beta=0.4), _n("Elu", ["h"])],
        (2, 3, 4, 4),
    ),
    ("concat_neg_axis", [helper.make_node("Relu", ["x"], ["r"]), _n("Concat", ["x", "r"], axis=-3)], (2, 3, 4, 4)),
    (
        "avgpool_ceil_pads",
        [
            _n(
                "AveragePool",
                ["x"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
                count_include_pad=1,
            )
        ],
        (2, 3, 7, 7),
    ),
    ("maxpool_dilated", [_n("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2], storage_order=0)], (2, 3, 7, 7)),
    ("global_max_pool", [_n("GlobalMaxPool", ["x"])], (2, 3, 4, 5)),
    ("conv_transpose", [_n("ConvTranspose", ["x", "ctw"], strides=[2, 2], pads=[1, 1, 1, 1])], (2, 3, 4, 4)),
    (
        "conv_group_strided_same",
        [_n("Conv", ["x", "gw3"], group=3, strides=[2, 2], auto_pad="SAME_UPPER")],
        (2, 3, 7, 7),
    ),
    ("conv_group_dilated", [_n("Conv", ["x", "gw3"], group=3, dilations=[2, 2], pads=[2, 1, 0, 1])], (2, 3, 7, 7)),
    ("instance_norm", [_n("InstanceNormalization", ["x", "sc3", "b3"], epsilon=1e-4)], (2, 3, 4, 4)),
    ("lrn", [_n("LRN", ["x"], size=3, alpha=1e-3, beta=0.7, bias=1.5)], (2, 3, 4, 4)),
    ("transpose_default_perm", [_n("Transpose", ["x"])], (2, 3, 4, 5)),
    (
        "mean_max_min",
        [
            helper.make_node("Max", ["x", "x2"], ["a"]),
            helper.make_node("Min", ["x", "x2"], ["b"]),
            _n("Mean", ["a", "b", "x"]),
        ],
        (2, 3, 4),
    ),
    ("matmul_batched", [_n("MatMul", ["x", "mw"])], (2, 3, 4)),
    ("gather_axis1", [_n("Gather", ["x", "idx"], axis=1)], (2, 3, 4)),
    ("expand_tile", [helper.make_node("Expand", ["x", "eshape"], ["e"]), _n("Tile", ["e", "reps"])], (3, 1)),
]


@pytest.mark.parametrize("case", PASS_CASES, ids=[c[0] for c in PASS_CASES])
@pytest.mark.parametrize("opset", [13, 17])
def test_pass_through_ops(tmp_path, rng, case, opset):
    _, nodes, shape = case
    x = rng.standard_normal(shape).astype(np.float32)
    inits = {
        "slope": rng.uniform(0, 0.5, (3, 1, 1)).astype(np.float32),
        "ctw": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
        "gw3": rng.standard_normal((6, 1, 3, 3)).astype(np.float32),
        "sc3": rng.uniform(0.5, 2, 3).astype(np.float32),
        "b3": rng.standard_normal(3).astype(np.float32),
        "x2": rng.standard_normal(shape[-1:]).astype(np.float32),
        "mw": rng.standard_normal((4, 5)).astype(np.float32),
        "idx": np.array([[2, 0], [1, 1]], np.int64),
        "eshape": np.array([2, 3, 4], np.int64),
        "reps": np.array([1, 2, 1], np.int64),
    }
    used = {i for n in nodes for i in n.input}
    g = _check(tmp_path, nodes, {"x": x}, ["y"], opset, rng, {k: v for k, v in inits.items() if k in used})
    assert set(g.op_counts()) <= {n.op_type for n in nodes} | {"Add", "Mul"}
