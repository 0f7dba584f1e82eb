"""Detection datasets: VOC-style XML annotations and COCO-style JSON. Boxes are normalised to [0, 1].

Labels follow the Caffe SSD convention: 0 is background and class ``k`` is the k-th name of the label
list (VOC's default list starts with "background"). A ``--labels`` file (one name per line, first line
usually "background") maps annotation names to label numbers for other models, e.g. "background, face"
for OpenCV's face detector. COCO uses its ``category_id`` as the label.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import numpy as np

from convertmodel.data.datasets import Batch, Box, Dataset, sample_digest
from convertmodel.data.images import IMAGE_EXTENSIONS, load_image, read_class_names
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import FormatError, InvalidModelError, ModelIOError

#: PASCAL VOC 2007 classes in the order of the devkit (and of Caffe SSD's labelmap_voc.prototxt).
VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def _text(el: ET.Element | None, tag: str, path: str) -> str:
    found = None if el is None else el.find(tag)
    if found is None or found.text is None:
        raise FormatError(path, f"VOC annotation: missing <{tag}>")
    return found.text.strip()


def parse_voc(path: str, class_index: dict[str, int]) -> tuple[str, list[Box]]:
    """One VOC XML file -> (image file name, boxes normalised by the annotated image size)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise FormatError(path, f"cannot parse VOC annotation: {e}") from e
    size = root.find("size")
    w, h = float(_text(size, "width", path)), float(_text(size, "height", path))
    if w <= 0 or h <= 0:
        raise FormatError(path, f"VOC annotation: image size {w}x{h} must be positive")
    boxes = []
    for obj in root.findall("object"):
        name = _text(obj, "name", path)
        if name not in class_index:
            raise FormatError(
                path,
                f"VOC annotation: class {name!r} is not in the label list "
                f"({', '.join(list(class_index)[:6])}, ...); pass --labels",
            )
        bb = obj.find("bndbox")
        # VOC pixel coordinates are 1-based and inclusive (devkit VOCreadrecxml); convert to [0, 1] corners.
        x0, y0 = float(_text(bb, "xmin", path)) - 1, float(_text(bb, "ymin", path)) - 1
        x1, y1 = float(_text(bb, "xmax", path)), float(_text(bb, "ymax", path))
        diff = obj.find("difficult")
        difficult = diff is not None and (diff.text or "0").strip() == "1"
        boxes.append(Box(class_index[name], x0 / w, y0 / h, x1 / w, y1 / h, difficult))
    return _text(root, "filename", path), boxes


class _DetectionDataset(Dataset):
    kind = "detection"

    def __init__(self, path: str, items: list[tuple[str, list[Box]]], class_names: list[str]) -> None:
        super().__init__(path)
        self.items = items
        self.class_names = class_names
        self.default_preprocess = None

    def __len__(self) -> int:
        return len(self.items)

    def sample_id(self, index: int) -> str:
        return self.items[index][0]

    def _raw_batches(self, batch_size: int, limit: int, pre: Preprocess, start: int = 0) -> Iterator[Batch]:
        if pre.crop is not None:
            raise InvalidModelError(
                f"{self.path}: a centre crop would cut ground-truth boxes; detection data takes --resize HxW only"
            )
        for s in range(start, limit, batch_size):
            chunk = self.items[s : min(s + batch_size, limit)]
            arrays, digests = [], []
            for p, boxes in chunk:
                arr, raw = load_image(p, pre)
                digests.append(
                    sample_digest(raw, repr([(b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes]).encode())
                )
                arrays.append(arr)
            if len({a.shape for a in arrays}) > 1:
                raise InvalidModelError(
                    f"{self.path}: images differ in size; pass --resize HxW (e.g. --preset caffe-ssd-300)"
                )
            x = np.stack(arrays)
            yield Batch(
                pre.normalize(x[..., None] if x.ndim == 3 else x),
                None,
                [b for _, b in chunk],
                [p for p, _ in chunk],
                digests,
            )


class VocDataset(_DetectionDataset):
    """A VOC-style folder: ``Annotations/*.xml`` and ``JPEGImages/``; ``ImageSets/Main/test.txt`` when present
    selects and orders the images."""

    def __init__(self, root: str, labels: str | None = None, split: str = "test") -> None:
        names = read_class_names(labels) if labels else VOC_CLASSES
        index = {n: i for i, n in enumerate(names)}
        ann_dir = os.path.join(root, "Annotations")
        split_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
        if os.path.exists(split_file):
            with open(split_file, encoding="utf-8") as f:
                stems = [ln.split()[0] for ln in f if ln.strip()]
        else:
            try:
                stems = sorted(fn[:-4] for fn in os.listdir(ann_dir) if fn.endswith(".xml"))
            except OSError as e:
                raise ModelIOError(f"{ann_dir}: cannot list: {e.strerror or e}") from e
        items = []
        for stem in stems:
            fname, boxes = parse_voc(os.path.join(ann_dir, f"{stem}.xml"), index)
            items.append((os.path.join(root, "JPEGImages", fname), boxes))
        if not items:
            raise FormatError(root, "no VOC annotations found in Annotations/")
        super().__init__(root, items, names)


class CocoDataset(_DetectionDataset):
    """A COCO-style ``instances_*.json``; images under ``images`` (default: the JSON's folder). Crowd
    regions count as 'difficult' (neither true nor false positives)."""

    def __init__(self, json_path: str, images: str | None = None) -> None:
        try:
            with open(json_path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise FormatError(json_path, f"cannot read COCO annotations: {e}") from e
        if not isinstance(doc, dict) or "images" not in doc or "annotations" not in doc:
            raise FormatError(json_path, "not COCO-style: expected top-level 'images' and 'annotations'")
        base = images or os.path.dirname(os.path.abspath(json_path))
        cats = {int(c["id"]): str(c.get("name", c["id"])) for c in doc.get("categories", [])}
        names = ["background"] + [""] * max(cats or {0: ""})
        for cid, name in cats.items():
            names[cid] = name
        per_image: dict[int, list[Box]] = {}
        info: dict[int, tuple[str, float, float]] = {}
        for im in doc["images"]:
            info[int(im["id"])] = (str(im["file_name"]), float(im["width"]), float(im["height"]))
            per_image[int(im["id"])] = []
        for a in doc["annotations"]:
            iid = int(a["image_id"])
            if iid not in info:
                raise FormatError(json_path, f"annotation {a.get('id')} refers to unknown image_id {iid}")
            _, w, h = info[iid]
            x, y, bw, bh = (float(v) for v in a["bbox"])  # COCO bbox: [x, y, width, height] in pixels
            per_image[iid].append(
                Box(int(a["category_id"]), x / w, y / h, (x + bw) / w, (y + bh) / h, bool(a.get("iscrowd", 0)))
            )
        items = [(os.path.join(base, info[i][0]), per_image[i]) for i in sorted(info)]
        missing = [p for p, _ in items[:1] if not os.path.exists(p)]
        if missing:
            raise ModelIOError(f"{json_path}: image {missing[0]} not found; pass --images DIR")
        if not items or not items[0][0].lower().endswith(IMAGE_EXTENSIONS):
            raise FormatError(json_path, "no images listed")
        super().__init__(json_path, items, names)
