"""VOC- and COCO-style detection annotations on tiny real files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from convertmodel.data.datasets import open_dataset
from convertmodel.data.detection import CocoDataset, VocDataset
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import FormatError, InvalidModelError

VOC_XML = """<annotation><filename>{fn}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax><ymax>40</ymax>
</bndbox></object>
<object><name>person</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>100</xmax><ymax>80</ymax>
</bndbox></object></annotation>"""


def _voc(tmp_path, rng):
    root = tmp_path / "voc"
    os.makedirs(root / "Annotations")
    os.makedirs(root / "JPEGImages")
    for stem in ("000001", "000002"):
        Image.fromarray(rng.integers(0, 256, size=(80, 100, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{stem}.png"
        )
        (root / "Annotations" / f"{stem}.xml").write_text(VOC_XML.format(fn=f"{stem}.png", w=100, h=80))
    return root


def test_voc_boxes_normalised(tmp_path, rng):
    root = _voc(tmp_path, rng)
    ds = open_dataset(str(root))
    assert isinstance(ds, VocDataset) and ds.kind == "detection" and len(ds) == 2
    b = next(ds.batches(2, Preprocess(resize=(30, 40))))
    assert b.x.shape == (2, 3, 30, 40) and b.labels is None
    dog, person = b.boxes[0]
    # VOC 1-based inclusive pixels: xmin 11 -> 10 / 100; ymax 40 -> 40 / 80. 'dog' is class 12 of VOC's list.
    assert (dog.label, dog.xmin, dog.ymin, dog.xmax, dog.ymax) == (12, 0.10, 0.25, 0.50, 0.50)
    assert person.label == 15 and person.difficult and not dog.difficult


def test_voc_split_file_and_labels(tmp_path, rng):
    root = _voc(tmp_path, rng)
    os.makedirs(root / "ImageSets" / "Main")
    (root / "ImageSets" / "Main" / "test.txt").write_text("000002\n")
    (tmp_path / "labels.txt").write_text("background\nperson\ndog\n")
    ds = VocDataset(str(root), labels=str(tmp_path / "labels.txt"))
    assert len(ds) == 1 and ds.class_names == ["background", "person", "dog"]
    assert [bx.label for bx in ds.items[0][1]] == [2, 1]
    (tmp_path / "short.txt").write_text("background\nperson\n")
    with pytest.raises(FormatError, match="class 'dog' is not in the label list"):
        VocDataset(str(root), labels=str(tmp_path / "short.txt"))
    with pytest.raises(InvalidModelError, match="centre crop"):
        list(ds.batches(1, Preprocess(crop=(10, 10))))


def test_coco(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, size=(50, 200, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    doc = {
        "images": [{"id": 7, "file_name": "a.png", "width": 200, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [20, 5, 100, 25], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    ds = open_dataset(str(tmp_path / "instances.json"))
    assert isinstance(ds, CocoDataset) and ds.class_names[18] == "dog"
    b = next(ds.batches(1))
    dog, crowd = b.boxes[0]
    # COCO bbox [x, y, w, h] -> corners / image size.
    assert (dog.label, dog.xmin, dog.ymin, dog.xmax, dog.ymax) == (18, 0.1, 0.1, 0.6, 0.6)
    assert crowd.difficult
    doc["annotations"][0]["image_id"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="unknown image_id 99"):
        CocoDataset(str(tmp_path / "bad.json"))
