"""Batch scoring: one model over a whole data set, one row per sample, through any engine.

Each row: ``index`` (the sample's position), ``id`` (its file path, or the index for arrays), the
``top`` highest classes and their scores (``top_classes``, ``top_scores``) or, with ``raw``, the
whole output flattened (``output``), and ``error``: null, or why the sample could not be read (an
unreadable sample gets a row with its error instead of disappearing). The local engine's rows are
returned to the caller (the CLI prints or writes them as JSON lines); the Spark engine writes them
as Parquet from its tasks (:func:`write_parquet`: a temporary folder beside the destination,
renamed into place when the whole job succeeded, removed when it did not).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.engines.base import BatchResult, Job, ModelRef, ProgressFn
from convertmodel.errors import InvalidModelError, ModelIOError
from convertmodel.metrics.classification import top_classes
from convertmodel.verify.batch import Forward


@dataclass
class PredictBatch:
    """The per-batch function of predict: top-k classes and scores per sample, or the raw output."""

    top: int = 5
    raw: bool = False
    backends: tuple[str, ...] | None = None
    threads: int = 0

    def __call__(self, models: Mapping[str, Any], batch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        f = Forward(models["model"], self.backends, self.threads)
        n = len(batch.x)
        y = np.concatenate(f(batch.x))[:n]
        if y.ndim == 0 or y.shape[0] != n:
            raise InvalidModelError(
                f"{getattr(models['model'], 'source', '')}: output shape {list(y.shape)} has no per-sample first "
                f"dimension for a batch of {n}; predict --data needs one output row per sample"
            )
        flat = np.asarray(y, dtype=np.float32).reshape(n, -1)
        cols: dict[str, Any] = {}
        if self.raw:
            cols["output"] = [r.tolist() for r in flat]
        else:
            idx = top_classes(flat, self.top)
            cols["top_classes"] = idx.tolist()
            cols["top_scores"] = np.take_along_axis(flat, idx, axis=1).tolist()
        return cols, {"model_seconds": f.seconds}


#: Parquet columns (Spark SQL DDL); `output` replaces the two top columns with ``raw``.
SCHEMA_TOP = "index BIGINT, id STRING, top_classes ARRAY<INT>, top_scores ARRAY<FLOAT>, error STRING"
SCHEMA_RAW = "index BIGINT, id STRING, output ARRAY<FLOAT>, error STRING"


def make_job(model: ModelRef, dataset: Any, pre: Any, batch_size: int, limit: int | None, fn: PredictBatch) -> Job:
    total = len(dataset) if limit is None else min(limit, len(dataset))
    open_data = getattr(dataset, "reopen", None) or (lambda: dataset)
    return Job({"model": model}, open_data, pre, batch_size, total, fn, dataset, fn.threads)


def rows_of(r: BatchResult, raw: bool) -> Iterator[tuple[Any, ...]]:
    """The rows of one batch result, in sample order (unreadable samples included, with their error)."""
    keys = ("output",) if raw else ("top_classes", "top_scores")
    good = {i: k for k, i in enumerate(r.indices)}
    bad = {i: (sid, msg) for i, sid, msg in r.errors}
    for i in sorted([*good, *bad]):
        if i in good:
            k = good[i]
            yield (i, r.ids[k], *(r.columns[c][k] if c in r.columns else None for c in keys), None)
        else:
            sid, msg = bad[i]
            yield (i, sid, *((None,) * len(keys)), msg)


def predict_rows(engine: Any, job: Job, progress: ProgressFn | None = None) -> list[dict[str, Any]]:
    """Run ``job`` on ``engine`` and return its rows as dicts, in sample order."""
    raw = bool(job.fn.raw)  # type: ignore[attr-defined]
    names = ["index", "id", *(["output"] if raw else ["top_classes", "top_scores"]), "error"]
    return [dict(zip(names, row, strict=True)) for r in engine.run(job, progress) for row in rows_of(r, raw)]


@contextlib.contextmanager
def atomic_dir(dest: str, inputs: tuple[str | None, ...] = ()) -> Iterator[str]:
    """Yield a temporary folder beside ``dest``; renamed over ``dest`` on success, removed on any error."""
    from convertmodel.fsutil import clean_stale_temps, refuse_overwrite, temp_path

    refuse_overwrite(dest, inputs, "predictions")
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise ModelIOError(f"{dest}: cannot write: directory {parent} does not exist")
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise ModelIOError(f"{dest}: exists and is not a folder; Parquet output is a folder")
    clean_stale_temps(dest, dirs=True)
    tmp = temp_path(dest)
    try:
        yield tmp
        old = None
        if os.path.exists(dest):
            old = temp_path(dest)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise ModelIOError(f"{dest}: cannot write: {e.strerror or e}") from e
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def batch_rows(raw: bool, r: BatchResult) -> list[tuple[Any, ...]]:
    """``rows_of`` as a list; picklable with functools.partial (the Spark write job's row function)."""
    return list(rows_of(r, raw))
