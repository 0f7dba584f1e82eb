"""Run the fp32 and the int8 model on the same batches, through an engine, and reduce to the metrics.

One pass over the data: each batch is decoded and preprocessed once, then fed to both models
(verify/batch.py, run by the engine: this process, or Spark tasks). The engine returns per-sample
results for every batch; :func:`reduce_results` turns them into the metrics, in sample order with
exactly rounded sums, so every engine gives the same numbers bit for bit. Time is split into fp32,
int8, data (read + decode + preprocess) and metrics. ``--per-layer`` adds node hooks (per_layer.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.data.datasets import Dataset, data_hash
from convertmodel.data.preprocess import Preprocess
from convertmodel.engines.base import BatchResult, Job, ModelRef
from convertmodel.errors import DataError, InvalidModelError, UsageError
from convertmodel.metrics.agreement import COLUMNS as AGREEMENT_COLUMNS
from convertmodel.metrics.agreement import summarize_agreement
from convertmodel.metrics.classification import summarize_topk
from convertmodel.metrics.detection import DetectionMAP, detections_as_truth
from convertmodel.verify.batch import VerifyBatch

#: Metric names accepted by ``--metric``; "auto" picks from the data (labels, boxes or neither).
METRICS = ("auto", "top1", "top5", "agreement", "det-agreement", "map-voc", "map-coco")

#: Called after each batch with (samples done, samples total).
ProgressFn = Callable[[int, int], None]


@dataclass
class VerifyOptions:
    batch_size: int = 64
    limit: int | None = None
    metric: str = "auto"
    threads: int = 0
    backends: tuple[str, ...] | None = None
    per_layer: bool = False
    #: Score above which fp32 detections count as pseudo ground truth (detection without annotations).
    det_min_score: float = 0.5


@dataclass
class VerifyResult:
    metric: str
    fp32: dict[str, Any]
    int8: dict[str, Any]
    agreement: dict[str, Any]
    samples: int
    data_hash: str
    timing: dict[str, float]
    per_layer: list[dict[str, Any]] = field(default_factory=list)
    #: Samples that could not be read: {"index", "id", "error"}, in index order.
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    engine: str = "local"
    #: What the engine reports of the run (Spark: master, partitions, task attempts failed and retried).
    engine_info: dict[str, Any] = field(default_factory=dict)
    #: BLAS threads the fp32 side ran with (threadpoolctl; None when no BLAS library was loaded).
    blas_threads: int | None = None

    @property
    def fp32_value(self) -> float:
        return float(self.fp32[HEADLINE_KEY[self.metric]])

    @property
    def int8_value(self) -> float:
        return float(self.int8[HEADLINE_KEY[self.metric]])

    @property
    def drop(self) -> float:
        """fp32 minus int8, in the metric's unit (percentage points for accuracies and mAP)."""
        return self.fp32_value - self.int8_value

    @property
    def relative_drop(self) -> float:
        """The drop as a percentage of the fp32 value."""
        f = self.fp32_value
        return 100.0 * self.drop / f if f else (0.0 if self.drop == 0 else math.inf)


#: Which result key each metric's headline value lives under.
HEADLINE_KEY = {
    "top1": "top1",
    "top5": "top5",
    "agreement": "top1_agreement",
    "det-agreement": "box_agreement",
    "map-voc": "map_voc",
    "map-coco": "map_coco",
}


def is_detector(model: Any) -> bool:
    """Does the model end in an SSD DetectionOutput (per-image box lists, not one tensor per sample)?"""
    g = getattr(model, "graph", None)
    if g is None:
        return False
    out = {o.name for o in g.outputs}
    return any(n.op_type == "DetectionOutput" and set(n.outputs) & out for n in g.nodes)


def choose_metric(metric: str, dataset: Dataset, detector: bool = False) -> str:
    """Resolve "auto" from the data kind and reject a metric the data cannot give. A detector on data
    without boxes is compared box by box ("det-agreement"), never as a tensor ("agreement")."""
    if metric not in METRICS:
        raise InvalidModelError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    kind = dataset.kind
    if detector and kind != "detection" and metric in ("auto", "agreement"):
        return "det-agreement"
    if metric == "det-agreement" and not detector:
        raise UsageError("--metric det-agreement needs a detector (a model ending in DetectionOutput)")
    if metric == "auto":
        return {"classification": "top1", "detection": "map-voc"}.get(kind, "agreement")
    if metric in ("top1", "top5") and kind != "classification":
        raise DataError(
            f"{dataset.path}: metric {metric} needs labels; the data has none (pass --labels or use --metric agreement)"
        )
    return metric


def fit_preprocess(pre: Preprocess, input_shape: tuple[Any, ...] | None, dataset: Dataset) -> Preprocess:
    """Adapt an implicit spec to the model input: channel count, layout and (for images) the size."""
    if input_shape is None or len(input_shape) != 4:
        return pre
    dims = list(input_shape)
    layout = pre.layout
    if dims[1] not in (1, 3) and dims[3] in (1, 3):
        layout = "NHWC"
    c = dims[1] if layout == "NCHW" else dims[3]
    color = pre.color
    if c == 1 and color != "gray":
        color = "gray"
    elif c == 3 and color == "gray":
        color = "rgb"
    h, w = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    resize = pre.resize
    if not pre.needs_geometry and isinstance(h, int) and isinstance(w, int) and not dataset.is_array:
        resize = (h, w)  # image files of any size -> the model's fixed input size
    if (layout, color, resize) == (pre.layout, pre.color, pre.resize):
        return pre
    nc = 1 if color == "gray" else 3
    fits = lambda v: v if v is None or len(v) in (1, nc) else None  # noqa: E731 - a per-channel mean of the wrong length is dropped
    return pre.with_(layout=layout, color=color, resize=resize, mean=fits(pre.mean), std=fits(pre.std))


def run_verify(
    fp32: Any,
    int8: Any,
    dataset: Dataset,
    pre: Preprocess,
    opts: VerifyOptions,
    progress: ProgressFn | None = None,
    fp32_cache: list[list[np.ndarray]] | None = None,
    engine: Any = None,
) -> VerifyResult:
    """One pass over ``dataset``: fp32 and int8 on every batch; metrics, agreement, timing (and per-layer).

    ``fp32``/``int8``: models, or :class:`~convertmodel.engines.ModelRef` (a model plus the .q8 file
    holding it). ``engine``: None or "local" (this process), or an engine object such as
    ``convertmodel.engines.SparkEngine(master="local[2]")``. ``fp32_cache`` (local engine only): an
    empty list is filled with the fp32 outputs per batch; a filled one is used instead of running the
    fp32 model again (the fallback search re-runs only the int8 side).
    """
    from convertmodel.engines import get_engine

    eng = get_engine(engine)
    refs = {k: m if isinstance(m, ModelRef) else ModelRef(m) for k, m in (("fp32", fp32), ("int8", int8))}
    metric = choose_metric(opts.metric, dataset, is_detector(refs["fp32"].model))
    if fp32_cache is not None and eng.name != "local":
        raise UsageError(f"the fp32 output cache needs the local engine, not {eng.name}")
    total = len(dataset) if opts.limit is None else min(opts.limit, len(dataset))
    fn = VerifyBatch(
        metric, opts.backends, opts.threads, opts.per_layer, fp32_cache=fp32_cache, min_score=opts.det_min_score
    )
    open_data = getattr(dataset, "reopen", None)
    if open_data is None and eng.name != "local":
        raise UsageError(f"{dataset.path}: open the data with convertmodel.data.open_dataset to run it on {eng.name}")
    job = Job(refs, open_data or (lambda: dataset), pre, opts.batch_size, total, fn, dataset, opts.threads)
    start = getattr(eng, "session", None)
    if start is not None:
        start()  # a session's start is timed apart (timing.session_seconds), not as part of the pass
    t0 = time.perf_counter()
    results = eng.run(job, progress)
    wall = time.perf_counter() - t0
    res = reduce_results(metric, results, dataset.kind, opts.det_min_score)
    t1 = time.perf_counter()
    if opts.per_layer:
        res.per_layer = _per_layer(refs["fp32"].model, refs["int8"].model, results)
    timing = {
        "wall_seconds": wall,
        "fp32_seconds": sum(r.stats.get("fp32_seconds", 0.0) for r in results),
        "int8_seconds": sum(r.stats.get("int8_seconds", 0.0) for r in results),
        "metrics_seconds": sum(r.stats.get("metrics_seconds", 0.0) for r in results) + time.perf_counter() - t1,
        "data_seconds": sum(r.read_seconds for r in results),
    }
    timing.update(getattr(eng, "last_timing", None) or {})
    res.timing = timing
    res.engine = eng.name
    res.engine_info = dict(getattr(eng, "last_job", None) or {})
    blas = [r.stats["blas_threads"] for r in results if "blas_threads" in r.stats]
    if blas:
        res.blas_threads = max(blas)  # the most BLAS threads any batch's fp32 side ran with
    return res


def _column(results: list[BatchResult], key: str) -> np.ndarray:
    parts = [np.asarray(r.columns[key]) for r in results if r.indices]
    return np.concatenate(parts) if parts else np.zeros(0)


def _listed(results: list[BatchResult], key: str) -> list[Any]:
    return [v for r in results if r.indices for v in r.columns[key]]


def reduce_results(metric: str, results: list[BatchResult], kind: str, det_min_score: float = 0.5) -> VerifyResult:
    """Per-sample results (sorted by batch start) -> metrics. Sums are exactly rounded (math.fsum), so the
    numbers depend only on the per-sample values, not on how the samples were batched or partitioned."""
    starts = [r.start for r in results]
    if len(set(starts)) != len(starts) or starts != sorted(starts):
        raise InvalidModelError(f"engine returned batches out of order or twice: {starts[:8]}")
    done = sum(len(r.indices) for r in results)
    labels = [r.labels for r in results if r.indices]
    unreadable = [{"index": i, "id": sid, "error": msg} for r in results for i, sid, msg in r.errors]
    dhash = data_hash((d for r in results for d in r.digests), labels)
    agr: dict[str, Any]
    r32: dict[str, Any]
    r8: dict[str, Any]
    if metric == "det-agreement":
        from convertmodel.metrics.det_agreement import COLUMNS, summarize

        agr = dict(summarize({k: _column(results, k) for k in COLUMNS}, done, det_min_score, 0.5))
        r32, r8 = {"box_agreement": 100.0}, {"box_agreement": agr["box_agreement"]}
    elif metric.startswith("map"):
        d32, d8 = _listed(results, "det_fp32"), _listed(results, "det_int8")
        truth = _listed(results, "truth") if kind == "detection" else detections_as_truth(d32, det_min_score)
        m32, m8 = DetectionMAP(), DetectionMAP()
        m32.update(d32, truth)
        m8.update(d8, truth)
        r32, r8 = m32.result(), m8.result()
        if kind != "detection":  # scored against fp32's own detections: fp32 is the reference
            r32 = dict(r32, map_voc=100.0, map_coco=100.0, ap50_coco=100.0)
        agr = {"samples": done}
    else:
        agr = _agreement(results, done)
        if metric in ("top1", "top5") and done and "top_fp32" in results[_first(results)].columns:
            y = np.concatenate([np.asarray(v) for v in labels]).astype(np.int64)
            r32, r8 = summarize_topk(_column(results, "top_fp32"), y), summarize_topk(_column(results, "top_int8"), y)
        elif metric in ("top1", "top5"):
            r32, r8 = {"samples": 0, "per_class": {}}, {"samples": 0, "per_class": {}}
        else:
            r32, r8 = {"top1_agreement": 100.0}, {"top1_agreement": agr.get("top1_agreement", float("nan"))}
    return VerifyResult(metric, r32, r8, agr, done, dhash, {}, [], unreadable)


def _first(results: list[BatchResult]) -> int:
    return next(k for k, r in enumerate(results) if r.indices)


def _agreement(results: list[BatchResult], n: int) -> dict[str, Any]:
    present = results[_first(results)].columns if n else {}
    return summarize_agreement({k: _column(results, k) for k in AGREEMENT_COLUMNS if k in present}, n)


def _per_layer(fp32: Any, int8: Any, results: list[BatchResult]) -> list[dict[str, Any]]:
    """Sum each batch's per-layer statistics in batch order (the same order whatever engine ran)."""
    from convertmodel.verify.per_layer import PerLayer

    layers = PerLayer(fp32.graph, int8.graph)
    for r in results:
        for name, (sig, noise, dot, nref, ntest, mx, sec) in r.stats.get("per_layer", {}).items():
            st = layers.stats[name]
            st.signal += sig
            st.noise += noise
            st.dot += dot
            st.norm_ref += nref
            st.norm_test += ntest
            st.max_abs = max(st.max_abs, mx)
            st.seconds += sec
    return layers.result()
