"""Classification metrics with labels (top-1, top-5, per-class counts).

Like :mod:`convertmodel.metrics.agreement`, in two steps: :func:`top_classes` per batch (the five
highest classes of each sample, all a top-1/top-5 count needs), :func:`summarize_topk` over all samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.errors import DataError

__all__ = ["check_labels", "summarize_topk", "top_classes"]


def top_classes(y: np.ndarray, k: int) -> np.ndarray:
    """The k highest-scoring classes per sample (trailing dims flattened, e.g. Caffe's (N, C, 1, 1)),
    ties broken by the lower index, as argmax."""
    s = np.asarray(y).reshape(len(y), -1)
    # A stable sort of -score keeps the lower index first among equal scores, like np.argmax does.
    return np.argsort(-s, axis=1, kind="stable")[:, : min(k, s.shape[1])]


def check_labels(labels: np.ndarray, classes: int) -> None:
    """DataError (exit 8) unless every label is a class of a ``classes``-class output."""
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(
            f"labels must be in [0, {classes}) for a {classes}-class output; found "
            f"{int(labels.min())}..{int(labels.max())}"
        )


def summarize_topk(top: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1/top-5 accuracy % and per-class (correct, total) from the :func:`top_classes` of each sample."""
    n = len(labels)
    out: dict[str, Any] = {"samples": n}
    hit = top == labels[:, None]
    for k in (1, 5):
        if k <= max(top.shape[1], 1):
            out[f"top{k}"] = 100.0 * int(hit[:, :k].any(axis=1).sum()) / n
    ok = hit[:, 0]
    classes = np.unique(labels)
    out["per_class"] = {
        str(int(c)): {"correct": int(ok[labels == c].sum()), "total": int((labels == c).sum())} for c in classes
    }
    return out
