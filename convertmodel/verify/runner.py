"""Run the fp32 and the int8 model on the same batches and accumulate the metrics of both.

One pass over the data: each batch is decoded and preprocessed once, then fed to both models.
Time is split into fp32, int8, data (read + decode + preprocess) and metrics, so the report shows
whether the data pipeline dominates. ``--per-layer`` adds node hooks (per_layer.py) to the same pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.data.datasets import Batch, Dataset
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import InvalidModelError
from convertmodel.metrics.agreement import Agreement
from convertmodel.metrics.classification import TopK
from convertmodel.metrics.detection import DetectionMAP, detections_as_truth, parse_ssd_output

#: Metric names accepted by ``--metric``; "auto" picks from the data (labels, boxes or neither).
METRICS = ("auto", "top1", "top5", "agreement", "map-voc", "map-coco")

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

    @property
    def fp32_value(self) -> float:
        return float(self.fp32[_KEY[self.metric]])

    @property
    def int8_value(self) -> float:
        return float(self.int8[_KEY[self.metric]])

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
_KEY = {"top1": "top1", "top5": "top5", "agreement": "top1_agreement", "map-voc": "map_voc", "map-coco": "map_coco"}


def choose_metric(metric: str, dataset: Dataset) -> str:
    """Resolve "auto" from the data kind and reject a metric the data cannot give."""
    if metric not in METRICS:
        raise InvalidModelError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    kind = dataset.kind
    if metric == "auto":
        return {"classification": "top1", "detection": "map-voc"}.get(kind, "agreement")
    if metric in ("top1", "top5") and kind != "classification":
        raise InvalidModelError(
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


class _Forward:
    """Runs one model on a batch, in pieces when the model's batch dimension is fixed (e.g. Caffe's 1)."""

    def __init__(self, model: Any, opts: VerifyOptions) -> None:
        g = model.graph
        if len(g.inputs) != 1:
            raise InvalidModelError(
                f"{model.source}: verify needs a model with one input, this one has {[i.name for i in g.inputs]}"
            )
        self.input = g.inputs[0].name
        self.output = g.outputs[0].name
        shape = g.inputs[0].type.shape
        self.fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        self.executor = model.executor(opts.backends, opts.threads)
        self.seconds = 0.0

    def __call__(self, x: np.ndarray, hook: Any = None) -> list[np.ndarray]:
        step = self.fixed or len(x)
        outs = []
        t0 = time.perf_counter()
        for s in range(0, len(x), step):
            part = x[s : s + step]
            if len(part) < step:  # pad a short last piece to the fixed batch, drop the padding's output later
                part = np.concatenate([part, np.repeat(part[-1:], step - len(part), axis=0)])
            outs.append(self.executor.run({self.input: part}, hook=hook, outputs=[self.output])[self.output])
        self.seconds += time.perf_counter() - t0
        return outs


def run_verify(
    fp32: Any,
    int8: Any,
    dataset: Dataset,
    pre: Preprocess,
    opts: VerifyOptions,
    progress: ProgressFn | None = None,
    fp32_cache: list[list[np.ndarray]] | None = None,
) -> VerifyResult:
    """One pass over ``dataset``: fp32 and int8 on every batch; metrics, agreement, timing (and per-layer).

    ``fp32_cache``: an empty list is filled with the fp32 outputs per batch; a filled one is used
    instead of running the fp32 model again (the fallback search re-runs only the int8 side).
    """
    metric = choose_metric(opts.metric, dataset)
    detection = metric.startswith("map")
    f32, i8 = _Forward(fp32, opts), _Forward(int8, opts)
    total = len(dataset) if opts.limit is None else min(opts.limit, len(dataset))
    acc32, acc8 = (TopK(), TopK()) if metric in ("top1", "top5") else (None, None)
    agree = Agreement(classify=not detection)
    det32, det8 = (DetectionMAP(), DetectionMAP()) if detection else (None, None)
    layers = None
    if opts.per_layer:
        from convertmodel.verify.per_layer import PerLayer

        layers = PerLayer(fp32.graph, int8.graph)
    t_start = time.perf_counter()
    t_metrics = 0.0
    done = batch_no = 0
    it = dataset.batches(opts.batch_size, pre, opts.limit)
    while True:
        b: Batch | None = next(it, None)
        if b is None:
            break
        n = len(b.x)
        reuse = fp32_cache is not None and len(fp32_cache) > batch_no and not layers
        y32 = fp32_cache[batch_no] if reuse else f32(b.x, layers.fp32_hook if layers else None)  # type: ignore[index]
        if fp32_cache is not None and not reuse:
            fp32_cache.append(y32)
        batch_no += 1
        y8 = i8(b.x, layers.int8_hook if layers else None)
        t0 = time.perf_counter()
        if layers:
            layers.end_batch()
        if detection:
            assert det32 is not None and det8 is not None
            d32 = _parse_chunks(y32, n, f32.fixed)
            d8 = _parse_chunks(y8, n, i8.fixed)
            truth = b.boxes if b.boxes is not None else detections_as_truth(d32, opts.det_min_score)
            det32.update(d32, truth)
            det8.update(d8, truth)
        else:
            o32 = np.concatenate(y32)[:n]
            o8 = np.concatenate(y8)[:n]
            agree.update(o32, o8)
            if acc32 is not None and acc8 is not None and b.labels is not None:
                acc32.update(o32, b.labels)
                acc8.update(o8, b.labels)
        t_metrics += time.perf_counter() - t0
        done += n
        if progress:
            progress(done, total)
    wall = time.perf_counter() - t_start
    if detection:
        assert det32 is not None and det8 is not None
        r32, r8 = det32.result(), det8.result()
        if dataset.kind != "detection":  # scored against fp32's own detections: fp32 is the reference
            r32 = dict(r32, map_voc=100.0, map_coco=100.0, ap50_coco=100.0)
        agr: dict[str, Any] = {"samples": done}
    else:
        agr = agree.result()
        if acc32 is not None and acc8 is not None:
            r32, r8 = acc32.result(), acc8.result()
        else:
            r32, r8 = {"top1_agreement": 100.0}, {"top1_agreement": agr.get("top1_agreement", float("nan"))}
    timing = {
        "wall_seconds": wall,
        "fp32_seconds": f32.seconds,
        "int8_seconds": i8.seconds,
        "metrics_seconds": t_metrics,
        "data_seconds": max(wall - f32.seconds - i8.seconds - t_metrics, 0.0),
    }
    return VerifyResult(metric, r32, r8, agr, done, dataset.data_hash, timing, layers.result() if layers else [])


def _parse_chunks(outs: list[np.ndarray], n: int, fixed: int | None) -> list[Any]:
    dets: list[Any] = []
    for y in outs:
        k = fixed or n
        dets.extend(parse_ssd_output(y, k))
    return dets[:n]
