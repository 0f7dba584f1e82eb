"""fp32-vs-int8 comparison without labels: top-1 agreement, cosine similarity and SQNR.

Two steps, so that any engine gives the same numbers: :func:`agreement_columns` computes small
per-sample terms on one batch (wherever the batch runs: this process or a Spark task), and
:func:`summarize_agreement` reduces the terms of all samples, in sample order, with exactly
rounded sums (math.fsum): the result depends only on the per-sample values, not on the batching.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.quant.error import cosine, cosine_rows, sqnr_db, sqnr_from_sums

__all__ = ["COLUMNS", "agreement_columns", "cosine", "sqnr_db", "summarize_agreement"]

#: The per-sample terms :func:`agreement_columns` returns (the argmax pair only for a classifier output).
COLUMNS = ("cosine", "signal", "noise", "max_abs", "argmax_fp32", "argmax_int8")


def agreement_columns(ref: np.ndarray, test: np.ndarray, classify: bool) -> dict[str, np.ndarray]:
    """Per-sample fp32-vs-int8 terms: argmax of both (classify), cosine, sum ref^2, sum diff^2, max |diff|."""
    r = np.asarray(ref, dtype=np.float64)
    t = np.asarray(test, dtype=np.float64)
    if r.shape != t.shape:
        raise InvalidModelError(f"fp32 output shape {list(r.shape)} differs from int8 output {list(t.shape)}")
    r2 = r.reshape(r.shape[0], -1)
    t2 = t.reshape(t.shape[0], -1)
    cos = cosine_rows(r2, t2)
    d = r2 - t2
    cols = {
        "cosine": cos,
        "signal": np.sum(r2 * r2, axis=1),
        "noise": np.sum(d * d, axis=1),
        "max_abs": np.abs(d).max(axis=1) if d.shape[1] else np.zeros(len(d)),
    }
    if classify and r2.shape[1] > 1:
        cols["argmax_fp32"] = r2.argmax(1)
        cols["argmax_int8"] = t2.argmax(1)
    return cols


def summarize_agreement(columns: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """The agreement report of ``n`` samples from their :func:`agreement_columns`, concatenated in sample
    order: top-1 agreement %, cosine mean and min, SQNR of the summed signal and noise, max |diff|."""
    if not n:
        nan = float("nan")
        return {"samples": 0, "cosine_mean": nan, "cosine_min": nan, "sqnr_db": math.inf, "max_abs_diff": 0.0,
                "top1_agreement": nan}  # fmt: skip
    cos = columns["cosine"]
    sq = sqnr_from_sums(math.fsum(columns["signal"]), math.fsum(columns["noise"]))
    agree = 0
    if "argmax_fp32" in columns:
        agree = int((columns["argmax_fp32"] == columns["argmax_int8"]).sum())
    return {
        "samples": n,
        "cosine_mean": math.fsum(cos) / n,
        "cosine_min": float(cos.min()),
        "sqnr_db": sq,
        "max_abs_diff": float(columns["max_abs"].max()),
        "top1_agreement": 100.0 * agree / n,
    }
