"""Detection agreement: how well the int8 detector's boxes match the fp32 detector's, per image.

For a detector measured on data without annotations a tensor comparison is meaningless (the
number of detections differs between the models). Per image, each fp32 detection with score >=
``min_score`` is matched greedily (highest score first) to the unmatched int8 detection of the
same label with the highest IoU, of any score; a pair with IoU >= ``iou_threshold`` is a match.
Unmatched fp32 boxes are misses; int8 boxes with score >= ``min_score`` left unmatched are extra.
The per-image terms (:func:`match_image`) are summed in sample order by the verify reducer, so the
result does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convertmodel.metrics.detection import Detection, iou

#: Per-image columns: fp32 boxes, int8 boxes (score >= min_score), matched, IoU sum, |score delta| sum,
#: max |score delta|, signed score delta sum (int8 - fp32).
COLUMNS = ("n_fp32", "n_int8", "matched", "iou_sum", "dscore_abs_sum", "dscore_abs_max", "dscore_sum")


def match_image(
    ref: Sequence[Detection], test: Sequence[Detection], min_score: float = 0.5, iou_threshold: float = 0.5
) -> tuple[int, int, int, float, float, float, float]:
    """The :data:`COLUMNS` of one image."""
    r = sorted((d for d in ref if d.score >= min_score), key=lambda d: -d.score)
    t = list(test)
    boxes = np.array([[d.xmin, d.ymin, d.xmax, d.ymax] for d in t], dtype=np.float64).reshape(-1, 4)
    labels = np.array([d.label for d in t], dtype=np.int64)
    used = np.zeros(len(t), dtype=bool)
    matched, iou_sum, abs_sum, abs_max, signed = 0, 0.0, 0.0, 0.0, 0.0
    for d in r:
        if not len(t):
            break
        ious = np.where((labels == d.label) & ~used, iou((d.xmin, d.ymin, d.xmax, d.ymax), boxes), -1.0)
        j = int(np.argmax(ious))
        if ious[j] >= iou_threshold:
            used[j] = True
            matched += 1
            iou_sum += float(ious[j])
            delta = t[j].score - d.score
            abs_sum += abs(delta)
            abs_max = max(abs_max, abs(delta))
            signed += delta
    n_test = sum(1 for d in t if d.score >= min_score)
    return len(r), n_test, matched, iou_sum, abs_sum, abs_max, signed


def summarize(cols: dict[str, np.ndarray], samples: int, min_score: float, iou_threshold: float) -> dict[str, float]:
    """Sum the per-image columns (exactly rounded) into the agreement report."""
    import math

    n32, n8, m = (int(np.sum(cols[k])) for k in ("n_fp32", "n_int8", "matched"))
    nan = float("nan")
    extra = int(np.sum(np.maximum(cols["n_int8"] - cols["matched"], 0)))
    return {
        "samples": samples,
        "min_score": min_score,
        "iou_threshold": iou_threshold,
        "fp32_boxes": n32,
        "int8_boxes": n8,
        "matched": m,
        "unmatched_fp32": n32 - m,
        "unmatched_int8": extra,
        "box_agreement": 100.0 * m / n32 if n32 else (100.0 if not n8 else 0.0),
        "mean_iou": math.fsum(cols["iou_sum"]) / m if m else nan,
        "score_delta_mean": math.fsum(cols["dscore_sum"]) / m if m else nan,
        "score_delta_abs_mean": math.fsum(cols["dscore_abs_sum"]) / m if m else nan,
        "score_delta_abs_max": float(np.max(cols["dscore_abs_max"])) if len(cols["dscore_abs_max"]) else 0.0,
    }
