"""Detection mAP: PASCAL VOC 11-point and COCO-style (IoU 0.50:0.95, 101-point), against ground truth
or against the fp32 model's own detections.

Boxes are corners normalised to [0, 1], so IoU has no VOC "+1 pixel" term. Detections come from a
Caffe-SSD ``DetectionOutput`` blob: rows ``[image_id, label, score, xmin, ymin, xmax, ymax]`` (shape
(1, 1, K, 7) or (K, 7)); rows with image_id -1 are padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.data.datasets import Box
from convertmodel.errors import InvalidModelError


@dataclass(frozen=True)
class Detection:
    label: int
    score: float
    xmin: float
    ymin: float
    xmax: float
    ymax: float


def parse_ssd_output(y: np.ndarray, batch: int) -> list[list[Detection]]:
    """Split a DetectionOutput blob into per-image detection lists."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.shape[-1] != 7:
        raise InvalidModelError(
            f"detection output must end in 7 values [image_id, label, score, xmin, ymin, xmax, "
            f"ymax] (Caffe SSD DetectionOutput); got shape {list(arr.shape)}"
        )
    rows = arr.reshape(-1, 7)
    out: list[list[Detection]] = [[] for _ in range(batch)]
    for r in rows:
        i = int(r[0])
        if i < 0:
            continue
        if i >= batch:
            raise InvalidModelError(f"detection row has image_id {i} but the batch has {batch} images")
        out[i].append(Detection(int(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), float(r[6])))
    return out


def iou(a: Sequence[float], b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (xmin, ymin, xmax, ymax) with each row of ``b`` (K, 4)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(dets: list[tuple[int, Detection]], gts: dict[int, list[Box]], thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy VOC matching, highest score first: (tp, fp) flags per detection; 'difficult' matches count as neither."""
    order = sorted(range(len(dets)), key=lambda k: -dets[k][1].score)
    tp = np.zeros(len(dets))
    fp = np.zeros(len(dets))
    used = {img: np.zeros(len(g), dtype=bool) for img, g in gts.items()}
    boxes = {
        img: np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in g], dtype=np.float64).reshape(-1, 4)
        for img, g in gts.items()
    }
    for rank, k in enumerate(order):
        img, d = dets[k]
        g = gts.get(img, [])
        if not g:
            fp[rank] = 1
            continue
        ious = iou((d.xmin, d.ymin, d.xmax, d.ymax), boxes[img])
        j = int(np.argmax(ious))
        if ious[j] >= thr:
            if g[j].difficult:
                continue
            if not used[img][j]:
                tp[rank] = 1
                used[img][j] = True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    return tp, fp


def _pr(tp: np.ndarray, fp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = ctp / max(npos, 1)
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return rec, prec


def voc11_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC2007 11-point AP: mean over t in {0, 0.1, ..., 1} of the max precision at recall >= t."""
    ap = 0.0
    for t in np.linspace(0.0, 1.0, 11):
        p = prec[rec >= t - 1e-12]
        ap += float(p.max()) if p.size else 0.0
    return ap / 11.0


def coco101_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """COCO AP at one IoU: precision made monotone, sampled at 101 recall points (pycocotools' rule)."""
    if rec.size == 0:
        return 0.0
    env = np.maximum.accumulate(prec[::-1])[::-1]
    pts = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(rec, pts, side="left")
    return float(np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0.0).mean())


class DetectionMAP:
    """Collects detections and ground truth per image; ``result()`` gives VOC 11-point mAP@0.5 and COCO mAP."""

    def __init__(self) -> None:
        self.dets: list[tuple[int, Detection]] = []
        self.gts: dict[int, list[Box]] = {}
        self.images = 0

    def update(self, detections: list[list[Detection]], truth: list[list[Box]]) -> None:
        if len(detections) != len(truth):
            raise InvalidModelError(f"{len(detections)} detection lists for {len(truth)} images")
        for dl, gl in zip(detections, truth, strict=False):
            img = self.images
            self.images += 1
            self.gts[img] = list(gl)
            self.dets.extend((img, d) for d in dl)

    def _per_class(self, thr: float, rule: str) -> dict[int, float]:
        labels = sorted({b.label for g in self.gts.values() for b in g if not b.difficult})
        out: dict[int, float] = {}
        for c in labels:
            gts_c = {img: [b for b in g if b.label == c] for img, g in self.gts.items()}
            npos = sum(1 for g in gts_c.values() for b in g if not b.difficult)
            dets_c = [(img, d) for img, d in self.dets if d.label == c]
            tp, fp = _match(dets_c, gts_c, thr)
            keep = (tp + fp) > 0  # drop detections matched to 'difficult' objects (VOC devkit rule)
            rec, prec = _pr(tp[keep], fp[keep], npos)
            out[c] = voc11_ap(rec, prec) if rule == "voc" else coco101_ap(rec, prec)
        return out

    def result(self) -> dict[str, Any]:
        voc = self._per_class(0.5, "voc")
        coco = [self._per_class(t, "coco") for t in np.linspace(0.5, 0.95, 10)]

        def mean(d):
            return 100.0 * float(np.mean(list(d.values()))) if d else float("nan")

        return {
            "images": self.images,
            "detections": len(self.dets),
            "map_voc": mean(voc),
            "map_coco": float(np.mean([mean(d) for d in coco])) if coco and coco[0] else float("nan"),
            "ap50_coco": mean(coco[0]),
            "ap_per_class_voc": {str(c): 100.0 * v for c, v in voc.items()},
        }


def detections_as_truth(dets: list[list[Detection]], min_score: float = 0.5) -> list[list[Box]]:
    """fp32 detections above ``min_score`` as pseudo ground truth (to score int8 without annotations)."""
    return [[Box(d.label, d.xmin, d.ymin, d.xmax, d.ymax) for d in dl if d.score >= min_score] for dl in dets]
