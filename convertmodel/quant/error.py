"""Error measures between fp32 and int8 outputs: the one implementation of SQNR and cosine.

Both come in two forms: on arrays, and on sums accumulated over batches (verify's per-layer and
agreement reports). The zero-signal rules are the same everywhere: SQNR is +inf when the noise is
zero and -inf when the reference is all zero but the approximation is not; cosine is 1.0 when both
vectors are zero and 0.0 when only one is.
"""

from __future__ import annotations

import math

import numpy as np


def sqnr_from_sums(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)`` from ``sum(ref^2)`` and ``sum((ref - approx)^2)``."""
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine_from_sums(dot: float, ref_sq: float, test_sq: float) -> float:
    """Cosine similarity from ``sum(ref * test)``, ``sum(ref^2)`` and ``sum(test^2)``."""
    den = math.sqrt(ref_sq) * math.sqrt(test_sq)
    if den > 0.0:
        return dot / den
    return 1.0 if ref_sq == 0.0 and test_sq == 0.0 else 0.0


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (flattened, in float64)."""
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(x @ y / (nx * ny))


def cosine_rows(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of two (N, D) arrays (float64), with the zero rules above."""
    r = np.asarray(ref, np.float64)
    t = np.asarray(test, np.float64)
    nx, ny = np.linalg.norm(r, axis=1), np.linalg.norm(t, axis=1)
    dots = np.einsum("ij,ij->i", r, t)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((nx == 0) & (ny == 0), 1.0, np.where((nx == 0) | (ny == 0), 0.0, dots / (nx * ny)))


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(|ref|^2 / |ref - approx|^2)``."""
    r = np.asarray(reference, np.float64).ravel()
    e = r - np.asarray(approx, np.float64).ravel()
    return sqnr_from_sums(float(r @ r), float(e @ e))


def top1_agreement(reference: np.ndarray, approx: np.ndarray) -> float:
    """Fraction of rows (last axis = classes) whose argmax agrees."""
    r = np.asarray(reference).reshape(-1, np.asarray(reference).shape[-1])
    a = np.asarray(approx).reshape(-1, np.asarray(approx).shape[-1])
    return float(np.mean(r.argmax(axis=1) == a.argmax(axis=1)))
