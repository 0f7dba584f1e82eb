"""verify's per-batch function: fp32 and int8 on one batch -> per-sample metric inputs.

It runs wherever the engine puts it (this process, or a Spark task), so it holds only plain
settings and pickles small. Per sample it returns what the metrics need and nothing larger:
top-1 (and top-5) class indices of both models, the sample's cosine, squared-signal and
squared-error sums and largest |difference| (classification outputs); or the parsed detections.
Whole output tensors only with ``keep_outputs``. :mod:`convertmodel.verify.runner` reduces these
columns to the report the same way whatever engine produced them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.metrics.agreement import agreement_columns
from convertmodel.metrics.classification import check_labels, top_classes
from convertmodel.metrics.detection import parse_ssd_output


class Forward:
    """Runs one model on a batch, in pieces when the model's batch dimension is fixed (e.g. Caffe's 1)."""

    def __init__(self, model: Any, backends: tuple[str, ...] | None, threads: int) -> None:
        g = model.graph
        if len(g.inputs) != 1:
            raise InvalidModelError(
                f"{getattr(model, 'source', g.name)}: verify needs a model with one input, "
                f"this one has {[i.name for i in g.inputs]}"
            )
        self.input = g.inputs[0].name
        self.output = g.outputs[0].name
        shape = g.inputs[0].type.shape
        self.fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        self.executor = model.executor(backends, threads)
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


def parse_chunks(outs: list[np.ndarray], n: int, fixed: int | None) -> list[Any]:
    dets: list[Any] = []
    for y in outs:
        dets.extend(parse_ssd_output(y, fixed or n))
    return dets[:n]


@dataclass
class VerifyBatch:
    """The per-batch function of verify (see the module docstring)."""

    metric: str
    backends: tuple[str, ...] | None = None
    threads: int = 0
    per_layer: bool = False
    keep_outputs: bool = False
    #: det-agreement: the score from which a detection counts.
    min_score: float = 0.5
    #: In-process only (the local engine): fp32 outputs per call, filled once and then reused.
    fp32_cache: list[list[np.ndarray]] | None = field(default=None, repr=False)
    _calls: int = field(default=0, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, fp32_cache=None, _calls=0)

    def __call__(self, models: Mapping[str, Any], batch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from convertmodel.runtime.threads import limit_threads

        # --threads caps BLAS wherever the batch runs (this process or a Spark task), not only the caller
        with limit_threads(self.threads):
            return self._run(models, batch)

    def _run(self, models: Mapping[str, Any], batch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from convertmodel.runtime.threads import blas_threads

        fp32, int8 = models["fp32"], models["int8"]
        f32, i8 = Forward(fp32, self.backends, self.threads), Forward(int8, self.backends, self.threads)
        layers = None
        if self.per_layer:
            from convertmodel.verify.per_layer import PerLayer

            layers = PerLayer(fp32.graph, int8.graph)
        n = len(batch.x)
        cache, k = self.fp32_cache, self._calls
        self._calls += 1
        blas = None
        if cache is not None and len(cache) > k and not layers:
            y32 = cache[k]
        else:
            y32 = f32(batch.x, layers.fp32_hook if layers else None)
            blas = blas_threads()  # what the fp32 side ran with (the report's threads.blas)
            if cache is not None and len(cache) == k:
                cache.append(y32)
        y8 = i8(batch.x, layers.int8_hook if layers else None)
        t0 = time.perf_counter()
        cols: dict[str, Any] = {}
        if self.metric == "det-agreement":
            from convertmodel.metrics.det_agreement import COLUMNS, match_image

            d32, d8 = parse_chunks(y32, n, f32.fixed), parse_chunks(y8, n, i8.fixed)
            rows = [match_image(a, b, self.min_score) for a, b in zip(d32, d8, strict=True)]
            for k, name in enumerate(COLUMNS):
                cols[name] = np.array([r[k] for r in rows], dtype=np.float64)
        elif self.metric.startswith("map"):
            cols["det_fp32"] = parse_chunks(y32, n, f32.fixed)
            cols["det_int8"] = parse_chunks(y8, n, i8.fixed)
            if batch.boxes is not None:
                cols["truth"] = list(batch.boxes)
        else:
            o32, o8 = np.concatenate(y32)[:n], np.concatenate(y8)[:n]
            cols.update(agreement_columns(o32, o8, classify=True))
            if self.metric in ("top1", "top5") and batch.labels is not None:
                check_labels(np.asarray(batch.labels), int(np.prod(o32.shape[1:])))
                cols["top_fp32"] = top_classes(o32, 5)
                cols["top_int8"] = top_classes(o8, 5)
            if self.keep_outputs:
                cols["output_fp32"], cols["output_int8"] = o32, o8
        stats: dict[str, Any] = {
            "fp32_seconds": f32.seconds,
            "int8_seconds": i8.seconds,
            "metrics_seconds": time.perf_counter() - t0,
        }
        if blas is not None:
            stats["blas_threads"] = blas
        if layers:
            stats["per_layer"] = {
                name: (s.signal, s.noise, s.dot, s.norm_ref, s.norm_test, s.max_abs, s.seconds)
                for name, s in layers.stats.items()
            }
        return cols, stats
