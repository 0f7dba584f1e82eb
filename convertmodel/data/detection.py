"""Detection datasets: VOC-style XML annotations and COCO-style JSON. Boxes are normalised to [0, 1].

Labels follow the Caffe SSD convention: 0 is background and class ``k`` is the k-th name of the label
list (VOC's default list starts with "background"). A ``--labels`` file (one name per line, first line
usually "background") maps annotation names to label numbers for other models, e.g. "background, face"
for OpenCV's face detector. COCO uses its ``category_id`` as the label.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import numpy as np

from convertmodel.data.datasets import Batch, Box, Dataset, sample_digest
from convertmodel.data.images import IMAGE_EXTENSIONS, load_image, read_class_names
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import DataError, FormatError, InvalidModelError, ModelIOError
from convertmodel.fsutil import open_regular

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


def _float(el: ET.Element | None, tag: str, path: str) -> float:
    text = _text(el, tag, path)
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise FormatError(path, f"VOC annotation: <{tag}> must be a finite number, got {text!r:.40}")
    return v


def parse_voc(path: str, class_index: dict[str, int]) -> tuple[str, list[Box]]:
    """One VOC XML file -> (image file name, boxes normalised by the annotated image size)."""
    try:
        with open_regular(path, "a VOC annotation") as f:
            root = ET.fromstring(f.read())
    except (ET.ParseError, ValueError, RecursionError) as e:
        raise FormatError(path, f"cannot parse VOC annotation: {e}") from e
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read: {e.strerror or e}") from e
    size = root.find("size")
    w, h = _float(size, "width", path), _float(size, "height", path)
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
        x0, y0 = _float(bb, "xmin", path) - 1, _float(bb, "ymin", path) - 1
        x1, y1 = _float(bb, "xmax", path), _float(bb, "ymax", path)
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
                raise DataError(f"{self.path}: images differ in size; pass --resize HxW (e.g. --preset caffe-ssd-300)")
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


#: Category ids above this are refused (the label list is indexed by id; COCO's largest is 90).
_MAX_CATEGORY_ID = 100_000


def _list(doc: dict, key: str, path: str, required: bool = True) -> list:
    v = doc.get(key, None if required else [])
    if not isinstance(v, list):
        raise FormatError(path, f"COCO {key!r} must be a list, found {type(v).__name__}")
    return v


def _num(
    obj: object, key: str, path: str, where: str, kind: type, lo: float | None = None, hi: float | None = None
) -> Any:
    """A required number field of a COCO entry, checked (int: an integer; float: finite) and in range."""
    if not isinstance(obj, dict) or key not in obj:
        raise FormatError(path, f"{where}: missing {key!r}")
    v = obj[key]
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if ok and kind is int:
        ok = isinstance(v, int) or (math.isfinite(v) and float(v).is_integer())
    if ok and isinstance(v, int) and abs(v) > 2**63:  # JSON integers are unbounded; float(v) would overflow
        raise FormatError(path, f"{where}: {key!r} is an integer of {v.bit_length()} bits, far outside any range")
    if ok and not math.isfinite(float(v)):
        ok = False
    if not ok:
        raise FormatError(
            path, f"{where}: {key!r} must be {'an integer' if kind is int else 'a finite number'}, got {v!r:.40}"
        )
    val = int(v) if kind is int else float(v)
    if (lo is not None and val < lo) or (hi is not None and val > hi):
        raise FormatError(path, f"{where}: {key!r} = {val} is outside [{lo}, {hi if hi is not None else 'inf'}]")
    return val


class CocoDataset(_DetectionDataset):
    """A COCO-style ``instances_*.json``; images under ``images`` (default: the JSON's folder). Crowd
    regions count as 'difficult' (neither true nor false positives)."""

    def __init__(self, json_path: str, images: str | None = None) -> None:
        try:
            with open_regular(json_path, "a COCO .json file") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FormatError(json_path, f"cannot read COCO annotations: {e}") from e
        except OSError as e:
            raise ModelIOError(f"{json_path}: cannot read: {e.strerror or e}") from e
        if not isinstance(doc, dict) or "images" not in doc or "annotations" not in doc:
            raise FormatError(json_path, "not COCO-style: expected top-level 'images' and 'annotations'")
        base = images or os.path.dirname(os.path.abspath(json_path))
        cats = {}
        for k, c in enumerate(_list(doc, "categories", json_path, required=False)):
            cid = _num(c, "id", json_path, f"categories[{k}]", int, lo=0, hi=_MAX_CATEGORY_ID)
            cats[cid] = str(c.get("name", cid))
        names = ["background"] + [""] * max(cats or {0: ""})
        for cid, name in cats.items():
            names[cid] = name
        per_image: dict[int, list[Box]] = {}
        info: dict[int, tuple[str, float, float]] = {}
        for k, im in enumerate(_list(doc, "images", json_path)):
            where = f"images[{k}]"
            iid = _num(im, "id", json_path, where, int)
            fname = im.get("file_name") if isinstance(im, dict) else None
            if not isinstance(fname, str) or not fname:
                raise FormatError(json_path, f"{where} (id {iid}): 'file_name' must be a non-empty string")
            w = _num(im, "width", json_path, f"{where} (id {iid})", float, lo=1)
            h = _num(im, "height", json_path, f"{where} (id {iid})", float, lo=1)
            info[iid] = (fname, w, h)
            per_image[iid] = []
        for k, a in enumerate(_list(doc, "annotations", json_path)):
            where = f"annotations[{k}]"
            iid = _num(a, "image_id", json_path, where, int)
            if iid not in info:
                raise FormatError(json_path, f"{where} (id {a.get('id')}): refers to unknown image_id {iid}")
            _, w, h = info[iid]
            bbox = a.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise FormatError(json_path, f"{where}: 'bbox' must be [x, y, width, height], got {bbox!r:.60}")
            x, y, bw, bh = (_num({"v": v}, "v", json_path, f"{where} bbox", float) for v in bbox)
            label = _num(a, "category_id", json_path, where, int, lo=0, hi=_MAX_CATEGORY_ID)
            per_image[iid].append(Box(label, x / w, y / h, (x + bw) / w, (y + bh) / h, bool(a.get("iscrowd", 0))))
        items = [(os.path.join(base, info[i][0]), per_image[i]) for i in sorted(info)]
        missing = [p for p, _ in items[:1] if not os.path.exists(p)]
        if missing:
            raise ModelIOError(f"{json_path}: image {missing[0]} not found; pass --images DIR")
        if not items or not items[0][0].lower().endswith(IMAGE_EXTENSIONS):
            raise FormatError(json_path, "no images listed")
        super().__init__(json_path, items, names)
