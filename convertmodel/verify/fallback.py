"""Accuracy-aware quantization: fall back the most harmful layers to fp32 until the drop fits the budget.

1. Quantize everything, measure the drop on the data, with the per-layer report (per_layer.py).
2. While the drop is over budget: keep one more layer fp32, the next worst by SQNR in that first
   report, re-quantize and measure again (only the int8 side re-runs; fp32 outputs are cached).
3. Stop when within budget, when every ranked layer is fp32, or after ``max_steps``.

The best model found (smallest drop; among equal drops, fewest fp32 layers) is always returned,
with every step's drop, weight bytes and int8 time, so the caller can save it and report what the
fallback cost even when the budget cannot be met. A budget met by giving up (most weights fp32)
is not a success: ``enough_int8`` is false when the share of the all-int8 model's int8 weights
that the best model keeps int8 falls below ``min_int8``. The layers fall back by exact name
(``QuantizeOptions.fp32_layers``), on top of every other quantize option the caller gave.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convertmodel.data.datasets import Dataset
from convertmodel.data.preprocess import Preprocess
from convertmodel.quant.options import QuantizeOptions
from convertmodel.verify.inputs import PREPROCESS_KEY
from convertmodel.verify.report import within_budget
from convertmodel.verify.runner import VerifyOptions, VerifyResult, run_verify

#: ``graph.metadata`` key of the layers the fallback kept fp32 (a JSON list).
FALLBACK_KEY = "fallback_fp32_layers"


def int8_weights(graph: Any) -> int:
    """How many weights of a graph are int8 (elements of its int8 constants)."""
    return int(sum(int(np.asarray(a).size) for a in graph.constants.values() if np.asarray(a).dtype == np.int8))


def weight_bytes(graph: Any) -> int:
    """Bytes of all constants of a graph (int8 weights, scales, fp32 tensors left unquantized)."""
    return int(sum(np.asarray(a).nbytes for a in graph.constants.values()))


@dataclass
class FallbackStep:
    fp32_layers: list[str]
    fp32_value: float
    int8_value: float
    drop: float
    relative_drop: float
    weight_bytes: int
    int8_seconds: float
    int8_weights: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FallbackResult:
    model: Any
    result: VerifyResult
    fp32_layers: list[str]
    met: bool
    steps: list[FallbackStep] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    min_int8: float = 0.0
    #: Sizes of the saved model and of its source file, set by whoever saves it.
    file_bytes: int | None = None
    source_bytes: int | None = None

    @property
    def best_step(self) -> FallbackStep:
        return next(s for s in self.steps if s.fp32_layers == self.fp32_layers)

    @property
    def enough_int8(self) -> bool:
        """Is the int8 share of the weights at least ``min_int8`` (else the budget was met by giving up)?"""
        return self.int8_weight_fraction + 1e-12 >= self.min_int8

    @property
    def int8_weight_fraction(self) -> float:
        """Of the weights that are int8 with every layer quantized (step 0), the share the best model keeps int8
        (layers the caller excluded do not count against the search)."""
        first = self.steps[0].int8_weights
        return self.best_step.int8_weights / first if first else 0.0

    def as_dict(self) -> dict[str, Any]:
        first, best = self.steps[0], self.best_step
        return {
            "budget_met": self.met,
            "enough_int8": self.enough_int8,
            "min_int8": self.min_int8,
            "int8_weight_fraction": self.int8_weight_fraction,
            "layers": len(self.ranking),
            "fp32_layers": self.fp32_layers,
            "steps": [s.as_dict() for s in self.steps],
            "size_cost_bytes": best.weight_bytes - first.weight_bytes,
            "weight_bytes_all_int8": first.weight_bytes,
            "weight_bytes": best.weight_bytes,
            "file_bytes": self.file_bytes,
            "source_bytes": self.source_bytes,
            "int8_seconds_all_int8": first.int8_seconds,
            "int8_seconds": best.int8_seconds,
            "seconds": self.seconds,
        }

    def model_with_record(self, pre: Preprocess) -> Any:
        """The best model with its preprocessing and fallback layers in the metadata (what gets saved)."""
        return self.model.with_metadata({PREPROCESS_KEY: pre.to_json(), FALLBACK_KEY: json.dumps(self.fp32_layers)})


def accuracy_aware_quantize(
    fp32: Any,
    dataset: Dataset,
    pre: Preprocess,
    opts: VerifyOptions,
    max_drop: float,
    *,
    relative: bool = False,
    max_steps: int | None = None,
    quantize_options: QuantizeOptions | None = None,
    on_step: Callable[[FallbackStep], None] | None = None,
    min_int8: float = 0.0,
) -> FallbackResult:
    """Quantize ``fp32`` so its drop on ``dataset`` is within ``max_drop`` (pp, or % with ``relative``).

    ``min_int8``: the int8 share of the weights below which a met budget is reported as given up
    (:attr:`FallbackResult.enough_int8`); the search itself does not stop earlier.
    """
    t0 = time.perf_counter()
    qopts = quantize_options or QuantizeOptions()
    cache: list[list[np.ndarray]] = []

    def measure(fp32_layers: list[str], per_layer: bool) -> tuple[Any, VerifyResult, FallbackStep]:
        model = fp32.quantize(qopts.with_fp32_layers([*qopts.fp32_layers, *fp32_layers]))
        res = run_verify(fp32, model, dataset, pre, replace(opts, per_layer=per_layer), fp32_cache=cache)
        step = FallbackStep(
            list(fp32_layers),
            res.fp32_value,
            res.int8_value,
            res.drop,
            res.relative_drop,
            weight_bytes(model.graph),
            res.timing["int8_seconds"],
            int8_weights(model.graph),
        )
        if on_step:
            on_step(step)
        return model, res, step

    def ok(step: FallbackStep) -> bool:
        return within_budget(step.relative_drop if relative else step.drop, max_drop)

    model, res, step = measure([], per_layer=True)
    ranking = res.per_layer
    steps = [step]
    best = (model, res, step)
    order = [r["layer"] for r in ranking]
    limit = len(order) if max_steps is None else min(max_steps, len(order))
    k = 0
    while not ok(best[2]) and k < limit:
        k += 1
        m, r, s = measure(order[:k], per_layer=False)
        steps.append(s)
        # Smaller drop wins; on a tie the earlier step (fewer fp32 layers) stays.
        if s.drop < best[2].drop:
            best = (m, r, s)
    return FallbackResult(
        best[0], best[1], best[2].fp32_layers, ok(best[2]), steps, ranking, time.perf_counter() - t0, min_int8
    )
