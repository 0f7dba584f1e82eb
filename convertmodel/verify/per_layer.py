"""``verify --per-layer``: which quantized layer hurts. SQNR and cosine of each int8 layer's output
against the fp32 model's value of the same name, on the verify data, worst first.

The int8 layer's output carries the error of every quantized layer before it (this is the model as it
runs), so the ranking shows where the error appears and grows. Matching is by value name: the quantize
pass keeps each layer's output name (or, with a fused ReLU, takes the ReLU's output name, which the
fp32 graph also has); failing that, by node name. Statistics accumulate over all batches via the
executor's node hook, keeping only one batch of activations at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.ir.graph import Graph, Node
from convertmodel.quant.error import cosine, cosine_from_sums, sqnr_db, sqnr_from_sums
from convertmodel.quant.ops import quantized_nodes


@dataclass
class _Stat:
    layer: str
    op: str
    value: str
    fp32_value: str
    signal: float = 0.0
    noise: float = 0.0
    dot: float = 0.0
    norm_ref: float = 0.0
    norm_test: float = 0.0
    max_abs: float = 0.0
    seconds: float = 0.0
    params: int = 0


class PerLayer:
    """Node hooks for the fp32 and int8 executors plus the accumulated per-layer statistics."""

    def __init__(self, fp32: Graph, int8: Graph) -> None:
        fp32_values = {o for n in fp32.nodes for o in n.outputs if o}
        fp32_by_name = {n.name: n for n in fp32.nodes}
        self.stats: dict[str, _Stat] = {}
        self.unmatched: list[str] = []
        for n in quantized_nodes(int8):
            v = n.outputs[0]
            ref = v if v in fp32_values else None
            if ref is None and n.name in fp32_by_name:
                ref = fp32_by_name[n.name].outputs[0]
            if ref is None:
                self.unmatched.append(n.name)
                continue
            params = int(sum(int8.constants[i].size for i in n.inputs[1:2] if i in int8.constants))
            self.stats[n.name] = _Stat(n.name, n.op_type, v, ref, params=params)
        self._want = {s.fp32_value for s in self.stats.values()}
        self._saved: dict[str, list[np.ndarray]] = {}

    def fp32_hook(self, node: Node, outs: list[np.ndarray], seconds: float) -> None:
        for name, val in zip(node.outputs, outs, strict=False):
            if name in self._want:
                self._saved.setdefault(name, []).append(val)

    def int8_hook(self, node: Node, outs: list[np.ndarray], seconds: float) -> None:
        st = self.stats.get(node.name)
        if st is None:
            return
        refs = self._saved.get(st.fp32_value)
        if not refs:
            return
        r = refs.pop(0).astype(np.float64).ravel()
        t = np.asarray(outs[0], dtype=np.float64).ravel()
        if r.shape != t.shape:
            return  # a layout rewrite changed the tensor; nothing comparable
        d = r - t
        st.signal += float(r @ r)
        st.noise += float(d @ d)
        st.dot += float(r @ t)
        st.norm_ref += float(r @ r)
        st.norm_test += float(t @ t)
        st.max_abs = max(st.max_abs, float(np.abs(d).max()) if d.size else 0.0)
        st.seconds += seconds

    def end_batch(self) -> None:
        self._saved.clear()

    def result(self) -> list[dict[str, Any]]:
        rows = []
        for st in self.stats.values():
            sq = sqnr_from_sums(st.signal, st.noise)
            cos = cosine_from_sums(st.dot, st.norm_ref, st.norm_test)
            rows.append(
                {
                    "layer": st.layer,
                    "op": st.op,
                    "output": st.value,
                    "sqnr_db": sq,
                    "cosine": cos,
                    "max_abs_diff": st.max_abs,
                    "weights": st.params,
                    "int8_seconds": st.seconds,
                }
            )
        rows.sort(key=lambda r: (r["sqnr_db"], r["cosine"]))
        return rows


def layer_errors(
    fp32: Graph, int8: Graph, feeds: Mapping[str, np.ndarray], backends: tuple[str, ...] = ("ref",)
) -> list[dict[str, Any]]:
    """Cosine and SQNR of every output the two graphs share (per node, in fp32 node order), on one input.

    Both graphs are run with the executor's node hook. Quantized nodes keep their fp32 node's name
    (the quantize pass preserves names), and a fused ReLU's output keeps the ReLU's value name.
    """
    from convertmodel.runtime.executor import Executor

    got: dict[str, dict[str, np.ndarray]] = {"f": {}, "q": {}}

    def hook(key: str) -> Any:
        def fn(node: Any, outs: list[np.ndarray], dt: float) -> None:
            for name, val in zip(node.outputs, outs, strict=False):
                if name and isinstance(val, np.ndarray) and val.dtype.kind == "f":
                    got[key][name] = np.array(val, copy=True)

        return fn

    Executor(fp32, backends).run(feeds, hook=hook("f"))
    Executor(int8, backends).run(feeds, hook=hook("q"))
    rows = []
    for n in fp32.nodes:
        for o in n.outputs:
            f, q = got["f"].get(o), got["q"].get(o)
            if f is not None and q is not None and f.shape == q.shape:
                rows.append(
                    {"node": n.name, "op": n.op_type, "value": o, "cosine": cosine(f, q), "sqnr_db": sqnr_db(f, q)}
                )
    return rows
