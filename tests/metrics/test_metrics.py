"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convertmodel.data.datasets import Box
from convertmodel.errors import InvalidModelError
from convertmodel.metrics.agreement import agreement_columns, cosine, sqnr_db, summarize_agreement
from convertmodel.metrics.classification import check_labels, summarize_topk, top_classes
from convertmodel.metrics.detection import (
    Detection,
    DetectionMAP,
    coco101_ap,
    detections_as_truth,
    iou,
    parse_ssd_output,
    voc11_ap,
)


def test_topk_by_hand():
    scores = np.array(
        [
            [0.1, 0.5, 0.2, 0.15, 0.05, 0.0],  # label 1: top-1 yes
            [0.3, 0.2, 0.25, 0.1, 0.1, 0.05],  # label 2: 2nd -> top-5 only
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # label 0: last of 6 -> neither
            [0.2, 0.2, 0.2, 0.2, 0.2, 0.0],  # label 0: tie -> lowest index wins, top-1 yes
        ],
        dtype=np.float32,
    )
    labels = np.array([1, 2, 0, 0])
    np.testing.assert_array_equal(top_classes(scores, 1)[:, 0] == labels, [True, False, False, True])
    # two batches, the second a Caffe-style (N, C, 1, 1) output
    top = np.concatenate([top_classes(scores[:2], 5), top_classes(scores[2:].reshape(2, 6, 1, 1), 5)])
    r = summarize_topk(top, labels)
    assert r["top1"] == pytest.approx(50.0)
    assert r["top5"] == pytest.approx(75.0)
    assert r["per_class"] == {
        "0": {"correct": 1, "total": 2},
        "1": {"correct": 1, "total": 1},
        "2": {"correct": 0, "total": 1},
    }
    with pytest.raises(InvalidModelError, match="labels must be in"):
        check_labels(np.array([6]), 6)


def test_sqnr_and_cosine_by_hand():
    ref = np.array([3.0, 4.0])
    test = np.array([3.0, 3.0])
    # signal 25, noise 1 -> 10*log10(25) dB
    assert sqnr_db(ref, test) == pytest.approx(10 * math.log10(25.0))
    assert sqnr_db(ref, ref) == math.inf
    assert cosine(ref, test) == pytest.approx(21.0 / (5.0 * math.sqrt(18.0)))
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0


def test_agreement_accumulates():
    r1 = np.array([[1.0, 0.0], [0.0, 2.0]])
    t1 = np.array([[1.0, 0.5], [1.0, 0.5]])  # sample 2 flips its argmax
    batches = [agreement_columns(r1, t1, True), agreement_columns(np.array([[2.0, 1.0]]), np.array([[2.0, 1.0]]), True)]
    res = summarize_agreement({k: np.concatenate([b[k] for b in batches]) for k in batches[0]}, 3)
    assert res["samples"] == 3
    assert res["top1_agreement"] == pytest.approx(200 / 3)
    signal, noise = 1 + 4 + 4 + 1, 0.25 + 1 + 2.25
    assert res["sqnr_db"] == pytest.approx(10 * math.log10(signal / noise))
    cos = [1 / math.sqrt(1.25), 1.0 / (2 * math.sqrt(1.25)), 1.0]
    assert res["cosine_mean"] == pytest.approx(sum(cos) / 3)
    assert res["cosine_min"] == pytest.approx(min(cos))
    assert res["max_abs_diff"] == pytest.approx(1.5)


def test_iou_by_hand():
    got = iou((0.0, 0.0, 0.5, 0.5), np.array([[0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 0.9, 0.9]]))
    np.testing.assert_allclose(got, [0.0625 / (0.25 + 0.25 - 0.0625), 0.0])


def _hand_case() -> DetectionMAP:
    gts = [
        [Box(1, 0, 0, 0.5, 0.5), Box(2, 0.1, 0.1, 0.4, 0.4, difficult=True)],
        [Box(1, 0.5, 0.5, 1, 1), Box(1, 0, 0, 0.2, 0.2), Box(2, 0.2, 0.2, 0.6, 0.6)],
    ]
    dets = [
        [Detection(1, 0.9, 0, 0, 0.5, 0.5), Detection(1, 0.7, 0, 0, 0.5, 0.5), Detection(2, 0.95, 0.1, 0.1, 0.4, 0.4)],
        [
            Detection(1, 0.8, 0.5, 0.5, 1, 1),
            Detection(1, 0.6, 0.6, 0, 0.9, 0.3),
            Detection(2, 0.5, 0.2, 0.2, 0.6, 0.62),
        ],
    ]
    m = DetectionMAP()
    m.update(dets[:1], gts[:1])
    m.update(dets[1:], gts[1:])
    return m


def test_voc11_map_by_hand():
    # Class 1: 3 objects; ranked detections TP, TP, FP (duplicate), FP (no overlap):
    # recall 1/3, 2/3, 2/3, 2/3 -> precision 1 for t = 0.0 .. 0.6 (7 of 11 points), 0 above -> AP = 7/11.
    # Class 2: the detection on the 'difficult' object is ignored; the other is a TP (IoU 0.952) -> AP = 1.
    r = _hand_case().result()
    assert r["ap_per_class_voc"]["1"] == pytest.approx(100 * 7 / 11)
    assert r["ap_per_class_voc"]["2"] == pytest.approx(100.0)
    assert r["map_voc"] == pytest.approx(100 * (7 / 11 + 1) / 2)
    # COCO: the same matches at every IoU in 0.50:0.95 (exact boxes; class 2 IoU 0.952 >= 0.95); the
    # 101-point curve has precision 1 at recall 0.00 .. 0.66 (67 points) for class 1, all 101 for class 2.
    assert r["map_coco"] == pytest.approx(100 * (67 / 101 + 1) / 2)


def test_ap_curves_by_hand():
    rec = np.array([0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 2 / 3])
    # 11-point: t <= 0.5 -> max precision 1 (6 points), t > 0.5 -> 2/3 (5 points).
    assert voc11_ap(rec, prec) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    # 101-point: r <= 0.5 -> envelope 1 (51 points), r > 0.5 -> 2/3 (50 points).
    assert coco101_ap(rec, prec) == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_parse_ssd_output_and_pseudo_truth():
    y = np.array(
        [[[[0, 1, 0.9, 0.1, 0.1, 0.2, 0.2], [1, 1, 0.3, 0.5, 0.5, 0.6, 0.6], [-1, 0, 0, 0, 0, 0, 0]]]], dtype=np.float32
    )
    d = parse_ssd_output(y, 2)
    assert [len(x) for x in d] == [1, 1]
    assert d[0][0].label == 1 and d[0][0].score == pytest.approx(0.9)
    truth = detections_as_truth(d, 0.5)
    assert [len(t) for t in truth] == [1, 0]
    with pytest.raises(InvalidModelError, match="7 values"):
        parse_ssd_output(np.zeros((1, 6)), 1)
