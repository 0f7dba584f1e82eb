"""fp32-vs-int8 comparison without labels: top-1 agreement, cosine similarity and SQNR."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, 10*log10(sum(ref^2) / sum((ref - test)^2)); inf when equal."""
    r = np.asarray(reference, dtype=np.float64)
    e = r - np.asarray(test, dtype=np.float64)
    noise = float(np.sum(e * e))
    signal = float(np.sum(r * r))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays; 1.0 when both are all zero."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


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
        # Per-sample cosine, vectorized; same conventions as cosine() for all-zero rows.
        nx, ny = np.linalg.norm(r2, axis=1), np.linalg.norm(t2, axis=1)
        dots = np.einsum("ij,ij->i", r2, t2)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where((nx == 0) & (ny == 0), 1.0, np.where((nx == 0) | (ny == 0), 0.0, dots / (nx * ny)))
        self.cos_sum += float(cos.sum())
        self.cos_min = min(self.cos_min, float(cos.min()))
        d = r2 - t2
        self.signal += float(np.sum(r2 * r2))
        self.noise += float(np.sum(d * d))
        self.max_abs = max(self.max_abs, float(np.abs(d).max()))

    def result(self) -> dict[str, Any]:
        if self.noise == 0.0:
            sq = math.inf
        elif self.signal == 0.0:
            sq = -math.inf
        else:
            sq = 10.0 * math.log10(self.signal / self.noise)
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
