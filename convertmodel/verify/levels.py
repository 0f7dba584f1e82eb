"""``quantize --levels auto``: the fast narrow levels where a layer's error is low, the wide ones where it is not.

1. Sensitivity (one fp32 pass over the calibration data): every int8 layer is run, at every rung of the
   ladder (fastest AVX2 kernel first: 127x64 pair-sum, 127x127 u8s8, 255x127 int16), on the fp32 model's
   own input of that layer, and compared with the fp32 output: the layer's *isolated* SQNR, the error it
   adds by itself. (verify --per-layer's SQNR is cumulative: it carries every earlier layer's error, so it
   ranks layers by depth, not by what promoting them would buy.)
2. Floor: each layer starts at the fastest rung whose isolated SQNR is at least ``floor_db``.
3. Drop gate: the promotions that remain (always the layer of lowest isolated SQNR at its current rung,
   one rung up) form one fixed sequence; the shortest prefix that meets ``max_drop`` on the data is
   found by bisection (a handful of int8 passes, fp32 outputs cached), every candidate measured.
4. If even every layer at the widest rung misses the budget, the accuracy-aware fallback
   (fallback.py) keeps layers fp32 on top of those levels.

The chosen levels go to ``QuantizeOptions.layer_levels`` by exact layer name and are recorded in the
.q8 (``QuantizationInfo.layer_levels``); each layer's kernel then follows its levels on every ISA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convertmodel.data.datasets import Dataset
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import UsageError
from convertmodel.ir.graph import Graph, TensorType, ValueInfo
from convertmodel.quant.error import sqnr_from_sums
from convertmodel.quant.ops import quantized_nodes
from convertmodel.quant.options import Levels, QuantizeOptions
from convertmodel.verify.fallback import FallbackResult, accuracy_aware_quantize
from convertmodel.verify.report import within_budget
from convertmodel.verify.runner import VerifyOptions, VerifyResult, run_verify

#: Fastest on AVX2 first (docs/performance.md): pair-sum 1.41x, u8s8 1.21x, exact int16 1.00x on VGG16.
LADDER: tuple[Levels, ...] = (Levels(127, 64), Levels(127, 127), Levels(255, 127))
#: Isolated per-layer SQNR below which a layer does not take a rung (docs/quantization.md section 8.4).
FLOOR_DB = 40.0
#: Samples of the data the sensitivity pass runs on (isolated SQNR converges long before the data ends).
SENSITIVITY_SAMPLES = 1024


def levels_name(lv: Levels) -> str:
    return f"{lv.input}x{lv.weight}"


def check_auto_options(q: QuantizeOptions) -> None:
    """UsageError for quantize options that fix the levels the chooser is asked to pick."""
    if q.compat is not None:
        raise UsageError(
            f"--levels auto picks each layer's levels; --compat {q.compat} fixes them for every layer (drop one)"
        )
    if q.input_levels is not None:
        raise UsageError(
            f"--levels auto picks each layer's levels; --input-levels {q.input_levels} fixes them (drop one)"
        )
    if q.layer_levels:
        raise UsageError("--levels auto picks each layer's levels; the options already give per-layer levels")


@dataclass
class _Acc:
    signal: float = 0.0
    noise: float = 0.0
    samples: int = 0

    def sqnr_db(self) -> float:
        """-inf for a layer never measured (it then stays at the widest rung)."""
        return sqnr_from_sums(self.signal, self.noise) if self.samples else -math.inf

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        r = ref.astype(np.float64).ravel()
        d = r - np.asarray(got, np.float64).ravel()
        self.signal += float(r @ r)
        self.noise += float(d @ d)
        self.samples += 1


def _single_node(g: Graph, node: Any) -> Graph:
    consts = {c: g.constants[c] for c in node.inputs[1:] if c}
    return Graph(
        f"{g.name}:{node.name}",
        (ValueInfo(node.inputs[0], TensorType("float32")),),
        (ValueInfo(node.outputs[0], TensorType("float32")),),
        (node,),
        consts,
    )


def layer_sensitivity(
    fp32: Any,
    dataset: Dataset,
    pre: Preprocess,
    opts: VerifyOptions,
    base: QuantizeOptions,
    ladder: Sequence[Levels] = LADDER,
    samples: int = SENSITIVITY_SAMPLES,
) -> list[dict[str, Any]]:
    """Isolated SQNR (dB) of every int8 layer at every rung, on the fp32 model's own inputs to that layer.

    Rows in layer order: ``{"layer", "op", "sqnr_db": [one per rung]}``; layers whose fp32 input or output
    has no value of the same name in the fp32 graph are left out (nothing to compare against).
    """
    from convertmodel.runtime.executor import Executor
    from convertmodel.runtime.registry import BACKENDS

    rungs = [fp32.quantize(replace(base, layer_levels=(("*", lv),))) for lv in ladder]
    g32 = fp32.graph
    values32 = {i.name for i in g32.inputs} | {o for n in g32.nodes for o in n.outputs if o}
    layers = [n for n in quantized_nodes(rungs[0].graph) if n.inputs[0] in values32 and n.outputs[0] in values32]
    backends = opts.backends or BACKENDS
    execs = {
        n.name: [Executor(_single_node(q.graph, q.graph.node(n.name)), backends, opts.threads) for q in rungs]
        for n in layers
    }
    acc = {n.name: [_Acc() for _ in ladder] for n in layers}
    uses: dict[str, int] = {}  # layers (of this batch, still to run) reading each fp32 value
    by_output: dict[str, list[Any]] = {}
    for n in layers:
        uses[n.inputs[0]] = uses.get(n.inputs[0], 0) + 1
        by_output.setdefault(n.outputs[0], []).append(n)
    ex32 = Executor(g32, backends, opts.threads)
    in32 = g32.inputs[0].name
    inputs: dict[str, np.ndarray] = {}
    left: dict[str, int] = {}

    def evaluate(n: Any, ref: np.ndarray) -> None:
        """Each rung of layer ``n`` on its fp32 input, against its fp32 output, as soon as both exist
        (only the inputs still to be read are kept, not a whole batch of activations)."""
        xin = inputs.get(n.inputs[0])
        if xin is None:
            return
        for k, ex in enumerate(execs[n.name]):
            got = next(iter(ex.run({n.inputs[0]: xin}).values()))
            if got.shape == ref.shape:
                acc[n.name][k].add(ref, got)
        left[n.inputs[0]] -= 1
        if not left[n.inputs[0]]:
            del inputs[n.inputs[0]]

    def hook(node: Any, outs: list[np.ndarray], seconds: float) -> None:
        for name, val in zip(node.outputs, outs, strict=False):
            if name in uses:
                inputs[name] = val
            for n in by_output.get(name, ()):
                evaluate(n, val)

    limit = min(samples, len(dataset)) if opts.limit is None else min(samples, opts.limit, len(dataset))
    for b in dataset.batches(opts.batch_size, pre, limit):
        x = np.asarray(b.x)
        inputs.clear()
        left.clear()
        left.update(uses)
        if in32 in uses:
            inputs[in32] = x
        ex32.run({in32: x}, hook=hook)
    return [{"layer": n.name, "op": n.op_type, "sqnr_db": [a.sqnr_db() for a in acc[n.name]]} for n in layers]


def promotion_order(sens: list[dict[str, Any]], start: dict[str, int], top: int) -> list[str]:
    """The promotions after ``start`` (rung per layer), one rung each, always the layer whose current rung
    has the lowest isolated SQNR (ties: layer order)."""
    rung = dict(start)
    by_name = {r["layer"]: r for r in sens}
    order: list[str] = []
    while True:
        open_ = [r["layer"] for r in sens if rung[r["layer"]] < top]
        if not open_:
            return order
        worst = min(open_, key=lambda name: by_name[name]["sqnr_db"][rung[name]])
        rung[worst] += 1
        order.append(worst)


@dataclass
class LevelsStep:
    promotions: int
    levels: dict[str, str]
    drop: float
    relative_drop: float
    int8_value: float
    sqnr_db: float
    agreement: float | None
    int8_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LevelsResult:
    model: Any
    result: VerifyResult
    layer_levels: dict[str, Levels]
    sensitivity: list[dict[str, Any]]
    ladder: tuple[Levels, ...]
    floor_db: float
    met: bool
    steps: list[LevelsStep] = field(default_factory=list)
    fallback: FallbackResult | None = None
    seconds: float = 0.0

    def options(self, base: QuantizeOptions) -> QuantizeOptions:
        return levels_options(base, self.layer_levels)

    def as_dict(self) -> dict[str, Any]:
        names = [levels_name(lv) for lv in self.ladder]
        counts = {n: 0 for n in names}
        for lv in self.layer_levels.values():
            counts[levels_name(lv)] = counts.get(levels_name(lv), 0) + 1
        return {
            "mode": "auto",
            "ladder": names,
            "floor_db": self.floor_db,
            "budget_met": self.met,
            "layers": {
                r["layer"]: {
                    "op": r["op"],
                    "levels": levels_name(self.layer_levels[r["layer"]]),
                    "isolated_sqnr_db": dict(zip(names, r["sqnr_db"], strict=True)),
                }
                for r in self.sensitivity
                if r["layer"] in self.layer_levels
            },
            "counts": counts,
            "steps": [s.as_dict() for s in self.steps],
            "fp32_layers": list(self.fallback.fp32_layers) if self.fallback else [],
            "seconds": self.seconds,
        }


def exact_pattern(name: str) -> str:
    """An fnmatch pattern (``QuantizeOptions.layer_levels``) matching exactly ``name`` (``*?[`` escaped)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def levels_options(base: QuantizeOptions, layer_levels: dict[str, Levels]) -> QuantizeOptions:
    """``base`` with each named layer at its levels (exact names: a name with glob characters is escaped)."""
    return replace(base, layer_levels=tuple((exact_pattern(k), v) for k, v in layer_levels.items()))


def choose_levels(
    fp32: Any,
    dataset: Dataset,
    pre: Preprocess,
    opts: VerifyOptions,
    max_drop: float,
    *,
    relative: bool = False,
    quantize_options: QuantizeOptions | None = None,
    floor_db: float = FLOOR_DB,
    ladder: Sequence[Levels] = LADDER,
    fallback: bool = True,
    min_int8: float = 0.0,
    on_step: Callable[[LevelsStep], None] | None = None,
) -> LevelsResult:
    """Per-layer levels for ``fp32`` (see the module docstring); the model and its measurements.

    ``quantize_options``: --exclude and fp32 layers compose (those layers stay fp32); compat and
    input levels contradict the choice (UsageError).
    """
    t0 = time.perf_counter()
    base = quantize_options or QuantizeOptions()
    check_auto_options(base)
    lad = tuple(ladder)
    if not lad:
        raise UsageError("--levels auto needs at least one rung of levels")
    top = len(lad) - 1
    sens = layer_sensitivity(fp32, dataset, pre, opts, base, lad)
    start = {r["layer"]: next((k for k, s in enumerate(r["sqnr_db"]) if s >= floor_db), top) for r in sens}
    order = promotion_order(sens, start, top)
    cache: list[list[np.ndarray]] = []
    measured: dict[int, tuple[Any, VerifyResult, LevelsStep]] = {}

    def levels_after(k: int) -> dict[str, Levels]:
        rung = dict(start)
        for name in order[:k]:
            rung[name] += 1
        return {name: lad[i] for name, i in rung.items()}

    def measure(k: int) -> tuple[Any, VerifyResult, LevelsStep]:
        if k not in measured:
            lv = levels_after(k)
            model = fp32.quantize(levels_options(base, lv))
            res = run_verify(fp32, model, dataset, pre, opts, fp32_cache=cache)
            step = LevelsStep(
                k,
                {n: levels_name(v) for n, v in lv.items()},
                res.drop,
                res.relative_drop,
                res.int8_value,
                float(res.agreement.get("sqnr_db", float("nan"))),
                res.agreement.get("top1_agreement"),
                res.timing["int8_seconds"],
            )
            if on_step:
                on_step(step)
            measured[k] = (model, res, step)
        return measured[k]

    def ok(k: int) -> bool:
        s = measure(k)[2]
        return within_budget(s.relative_drop if relative else s.drop, max_drop)

    if ok(0):
        k = 0
    elif not ok(len(order)):
        k = len(order)
    else:
        lo, hi = 0, len(order)  # ok(hi), not ok(lo)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        k = hi
    model, res, _ = measure(k)
    chosen = levels_after(k)
    met = ok(k)
    fb = None
    if not met and fallback:
        fb = accuracy_aware_quantize(
            fp32,
            dataset,
            pre,
            opts,
            max_drop,
            relative=relative,
            quantize_options=levels_options(base, chosen),
            min_int8=min_int8,
        )
        model, res, met = fb.model, fb.result, fb.met
    steps = [measured[i][2] for i in sorted(measured)]
    return LevelsResult(model, res, chosen, sens, lad, floor_db, met, steps, fb, time.perf_counter() - t0)
