"""Caffe-only ops (Normalize, PriorBox, DetectionOutput, CaffeArgMax) run as single IR nodes,
against OpenCV's dnn layers fed the same one-layer Caffe net, or against numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest

from convertmodel.ir.schema import CM_DOMAIN
from tests.helpers import assert_close, run_ir_node
from tests.readers.caffe_util import input_block, run_opencv, write_net

R = np.random.default_rng(11)


@pytest.mark.parametrize("across,shared", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_normalize_vs_opencv(tmp_path: object, across: int, shared: int) -> None:
    x = R.standard_normal((2, 4, 3, 5)).astype(np.float32)
    scale = (R.random(1 if shared else 4) * 10 + 1).astype(np.float32)
    body = input_block("data", x.shape) + (
        'layer { name: "n" type: "Normalize" bottom: "data" top: "n" '
        f"norm_param {{ across_spatial: {str(bool(across)).lower()} channel_shared: {str(bool(shared)).lower()} }} }}"
    )
    proto, model = write_net(str(tmp_path), body, {"n": [scale]})
    (got,) = run_ir_node(
        "Normalize", {"x": x, "scale": scale}, const_inputs=["scale"], domain=CM_DOMAIN, across_spatial=across
    )
    if not (across and not shared):  # OpenCV 4.14 asserts on per-channel scales with across_spatial
        (ref,) = run_opencv(proto, model, {"data": x}, ["n"])
        assert_close(got, ref, rtol=1e-4, atol=1e-6)
    # And the formula itself, in float64.
    axes = (1, 2, 3) if across else (1,)
    norm = np.sqrt((x.astype(np.float64) ** 2).sum(axis=axes, keepdims=True) + 1e-10)
    assert_close(got, x / norm * scale.reshape(1, -1, 1, 1), rtol=1e-5, atol=1e-7)


PRIOR_CONFIGS = [
    # The res10 SSD face detector's first PriorBox.
    (
        "min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 "
        "variance: 0.2 variance: 0.2 step: 8 offset: 0.5",
        (5, 5),
        (40, 40),
    ),
    # Derived steps on a non-square image, clip, one variance, two min sizes, ratio 3 without flip.
    ("min_size: 6 min_size: 12 aspect_ratio: 3 flip: false clip: true variance: 0.1", (4, 6), (30, 50)),
]


@pytest.mark.parametrize("params,feat_hw,img_hw", PRIOR_CONFIGS)
def test_prior_box_vs_opencv(tmp_path: object, params: str, feat_hw: tuple, img_hw: tuple) -> None:
    feat = np.zeros((1, 2, *feat_hw), np.float32)
    img = np.zeros((1, 3, *img_hw), np.float32)
    body = (
        input_block("feat", feat.shape)
        + input_block("data", img.shape)
        + f'layer {{ name: "pb" type: "PriorBox" bottom: "feat" bottom: "data" top: "pb" '
        f"prior_box_param {{ {params} }} }}"
    )
    proto, model = write_net(str(tmp_path), body)
    (ref,) = run_opencv(proto, model, {"feat": feat, "data": img}, ["pb"])
    from tests.readers.caffe_util import read_checked, run_ours

    got = run_ours(read_checked(model), {"feat": feat, "data": img})["pb"]
    assert got.shape == ref.shape
    assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_prior_box_formula() -> None:
    """One cell, min 10 / max 40, ratio 2 with flip: squares 10 and 20, then 10*sqrt(2) x 10/sqrt(2) and inverse."""
    feat, img = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 3, 100, 100), np.float32)
    (got,) = run_ir_node(
        "PriorBox",
        {"f": feat, "i": img},
        domain=CM_DOMAIN,
        min_sizes=[10.0],
        max_sizes=[40.0],
        aspect_ratios=[2.0],
        variances=[0.1, 0.1, 0.2, 0.2],
    )
    c = 50.0
    sizes = [(10, 10), (20, 20), (10 * 2**0.5, 10 / 2**0.5), (10 / 2**0.5, 10 * 2**0.5)]
    boxes = np.array([[(c - w / 2) / 100, (c - h / 2) / 100, (c + w / 2) / 100, (c + h / 2) / 100] for w, h in sizes])
    assert got.shape == (1, 2, 16)
    assert_close(got[0, 0], boxes.reshape(-1), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got[0, 1], np.tile(np.array([0.1, 0.1, 0.2, 0.2], np.float32), 4))


def _detection_inputs(n_priors: int, n_classes: int, n_loc: int) -> tuple[np.ndarray, ...]:
    cx, cy = R.random(n_priors), R.random(n_priors)
    w, h = R.random(n_priors) * 0.3 + 0.05, R.random(n_priors) * 0.3 + 0.05
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    var = np.tile([0.1, 0.1, 0.2, 0.2], (n_priors, 1))
    priors = np.stack([boxes.reshape(-1), var.reshape(-1)])[None].astype(np.float32)
    loc = (R.standard_normal((1, n_priors * n_loc * 4)) * 0.5).astype(np.float32)
    logits = R.standard_normal((n_priors, n_classes)) * 2
    conf = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).reshape(1, -1).astype(np.float32)
    return loc, conf, priors


DET_CONFIGS = [
    "share_location: true background_label_id: 0 code_type: CENTER_SIZE keep_top_k: 20 confidence_threshold: 0.3 nms_param { nms_threshold: 0.45 top_k: 50 }",
    "share_location: true background_label_id: 0 code_type: CORNER keep_top_k: 200 confidence_threshold: 0.2 nms_param { nms_threshold: 0.3 }",
    "share_location: true background_label_id: 0 code_type: CENTER_SIZE variance_encoded_in_target: true keep_top_k: 7 confidence_threshold: 0.1 "
    "nms_param { nms_threshold: 0.5 top_k: 30 }",
    "code_type: CENTER_SIZE share_location: false background_label_id: -1 keep_top_k: 30 confidence_threshold: 0.3 "
    "nms_param { nms_threshold: 0.45 top_k: 100 }",
]


@pytest.mark.parametrize("params", DET_CONFIGS)
def test_detection_output_vs_opencv(tmp_path: object, params: str) -> None:
    n_priors, n_classes = 60, 3
    share = "share_location: false" not in params
    loc, conf, priors = _detection_inputs(n_priors, n_classes, 1 if share else n_classes)
    if "variance_encoded_in_target: true" in params:
        priors = np.ascontiguousarray(priors[:, :1])  # OpenCV wants no variance channel then
    body = (
        input_block("loc", loc.shape)
        + input_block("conf", conf.shape)
        + input_block("prior", priors.shape)
        + 'layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "det" '
        f"detection_output_param {{ num_classes: {n_classes} {params} }} }}"
    )
    proto, model = write_net(str(tmp_path), body)
    (ref,) = run_opencv(proto, model, {"loc": loc, "conf": conf, "prior": priors}, ["det"])
    from tests.readers.caffe_util import read_checked, run_ours

    got = run_ours(read_checked(model), {"loc": loc, "conf": conf, "prior": priors})["det"]
    k = got.shape[2]
    assert k > 1, "the case should produce several detections"
    # OpenCV pads its output to keep_top_k rows with zeros; the leading rows are the detections.
    assert ref.shape[2] >= k and not ref[0, 0, k:].any()
    # Caffe groups rows by label (ours); OpenCV 4.x orders them by score across labels: compare canonically.
    g_rows, r_rows = _canonical(got[0, 0]), _canonical(ref[0, 0, :k])
    np.testing.assert_array_equal(g_rows[:, :2], r_rows[:, :2])
    assert_close(g_rows[:, 2], r_rows[:, 2], rtol=1e-5, atol=1e-6, what="scores")
    assert_close(g_rows[:, 3:], r_rows[:, 3:], rtol=0, atol=1e-5, what="boxes")
    labels = got[0, 0, :, 1]
    assert np.all(np.diff(labels) >= 0), "rows must be grouped by label ascending, as Caffe writes them"


def _canonical(rows: np.ndarray) -> np.ndarray:
    """Rows sorted by image, label, then score descending."""
    return rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]


def test_detection_output_nms_formula() -> None:
    """Two overlapping boxes (IoU 0.6) and a far one: NMS at 0.5 keeps the best and the far one."""
    priors = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]], np.float32)
    pri = np.stack([priors.reshape(-1), np.full(12, 0.1, np.float32)])[None]
    loc = np.zeros((1, 12), np.float32)
    conf = np.array([[0.2, 0.8, 0.1, 0.9, 0.4, 0.6]], np.float32)  # (prior, class) for 2 classes
    (got,) = run_ir_node(
        "DetectionOutput",
        {"loc": loc, "conf": conf, "prior": pri},
        domain=CM_DOMAIN,
        num_classes=2,
        nms_threshold=0.5,
        confidence_threshold=0.05,
    )
    expect = np.array([[0, 1, 0.9, *priors[1]], [0, 1, 0.6, *priors[2]]], np.float32)
    assert_close(got[0, 0], expect, rtol=0, atol=1e-7)


def test_detection_output_empty_is_caffe_row() -> None:
    loc, conf, priors = _detection_inputs(5, 2, 1)
    (got,) = run_ir_node(
        "DetectionOutput",
        {"loc": loc, "conf": conf, "prior": priors},
        domain=CM_DOMAIN,
        num_classes=2,
        confidence_threshold=1.0,
    )
    np.testing.assert_array_equal(got, np.array([[[[0, -1, -1, -1, -1, -1, -1]]]], np.float32))


def test_caffe_argmax_axis() -> None:
    x = R.standard_normal((2, 5, 3)).astype(np.float32)
    x[0, 1, 0] = x[0, 3, 0] = 10.0  # a tie: Caffe picks the larger index
    (idx,) = run_ir_node("CaffeArgMax", {"x": x}, domain=CM_DOMAIN, top_k=2, has_axis=1, axis=1)
    (val,) = run_ir_node("CaffeArgMax", {"x": x}, domain=CM_DOMAIN, top_k=2, has_axis=1, axis=1, out_max_val=1)
    assert idx.shape == (2, 2, 3)
    assert idx[0, 0, 0] == 3 and idx[0, 1, 0] == 1
    np.testing.assert_array_equal(val, -np.sort(-x, axis=1)[:, :2])
    np.testing.assert_array_equal(np.take_along_axis(x, idx.astype(np.int64), axis=1), val)
