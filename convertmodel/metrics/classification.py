"""Classification metrics with labels (top-1, top-5, per-class counts), accumulated batch by batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.errors import DataError, InvalidModelError


def scores_2d(y: np.ndarray) -> np.ndarray:
    """Model output -> (N, classes): drops trailing singleton dims, e.g. Caffe's (N, C, 1, 1)."""
    y = np.asarray(y)
    if y.ndim < 2:
        raise InvalidModelError(f"classification output must be (N, classes), got shape {list(y.shape)}")
    return y.reshape(y.shape[0], -1)


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per sample: is the label among the k highest scores? Ties broken by the lower class index, as argmax."""
    s = scores_2d(scores)
    k = min(k, s.shape[1])
    # Stable sort of -score keeps the lower index first among equal scores, like np.argmax does.
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.asarray((top == np.asarray(labels)[:, None]).any(axis=1))


class TopK:
    """Top-1 / top-5 accuracy and per-class (correct, total) counts."""

    def __init__(self, ks: tuple[int, ...] = (1, 5)) -> None:
        self.ks = ks
        self.n = 0
        self.correct = dict.fromkeys(ks, 0)
        self.per_class_total: dict[int, int] = {}
        self.per_class_correct: dict[int, int] = {}
        self.num_classes = 0

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        s = scores_2d(scores)
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(s):
            raise DataError(f"{len(s)} outputs but {len(labels)} labels")
        self.num_classes = max(self.num_classes, s.shape[1])
        if labels.size and (labels.min() < 0 or labels.max() >= s.shape[1]):
            raise DataError(
                f"labels must be in [0, {s.shape[1]}) for a {s.shape[1]}-class output; found "
                f"{int(labels.min())}..{int(labels.max())}"
            )
        self.n += len(labels)
        for k in self.ks:
            self.correct[k] += int(topk_correct(s, labels, k).sum())
        top1 = topk_correct(s, labels, 1)
        for c, ok in zip(labels.tolist(), top1.tolist(), strict=False):
            self.per_class_total[c] = self.per_class_total.get(c, 0) + 1
            self.per_class_correct[c] = self.per_class_correct.get(c, 0) + int(ok)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": self.n}
        for k in self.ks:
            if k <= max(self.num_classes, 1):
                out[f"top{k}"] = 100.0 * self.correct[k] / self.n if self.n else float("nan")
        out["per_class"] = {
            str(c): {"correct": self.per_class_correct[c], "total": self.per_class_total[c]}
            for c in sorted(self.per_class_total)
        }
        return out
