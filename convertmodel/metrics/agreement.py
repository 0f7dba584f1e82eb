"""fp32-vs-int8 comparison without labels: top-1 agreement, cosine similarity and SQNR."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.quant.error import cosine, cosine_rows, sqnr_db, sqnr_from_sums

__all__ = ["Agreement", "cosine", "sqnr_db"]


class Agreement:
    """Accumulates, over batches: top-1 agreement, per-sample cosine (mean and min), global SQNR, max |diff|."""

    def __init__(self, classify: bool = True) -> None:
        self.classify = classify
        self.n = 0
        self.agree = 0
        self.cos_sum = 0.0
        self.cos_min = math.inf
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0

    def update(self, ref: np.ndarray, test: np.ndarray) -> None:
        r = np.asarray(ref, dtype=np.float64)
        t = np.asarray(test, dtype=np.float64)
        if r.shape != t.shape:
            raise InvalidModelError(f"fp32 output shape {list(r.shape)} differs from int8 output {list(t.shape)}")
        if r.size == 0:
            return
        r2 = r.reshape(r.shape[0], -1)
        t2 = t.reshape(t.shape[0], -1)
        self.n += r2.shape[0]
        if self.classify and r2.shape[1] > 1:
            self.agree += int((r2.argmax(1) == t2.argmax(1)).sum())
        cos = cosine_rows(r2, t2)
        self.cos_sum += float(cos.sum())
        self.cos_min = min(self.cos_min, float(cos.min()))
        d = r2 - t2
        self.signal += float(np.sum(r2 * r2))
        self.noise += float(np.sum(d * d))
        self.max_abs = max(self.max_abs, float(np.abs(d).max()))

    def result(self) -> dict[str, Any]:
        sq = sqnr_from_sums(self.signal, self.noise)
        out: dict[str, Any] = {
            "samples": self.n,
            "cosine_mean": self.cos_sum / self.n if self.n else float("nan"),
            "cosine_min": self.cos_min if self.n else float("nan"),
            "sqnr_db": sq,
            "max_abs_diff": self.max_abs,
        }
        if self.classify:
            out["top1_agreement"] = 100.0 * self.agree / self.n if self.n else float("nan")
        return out
