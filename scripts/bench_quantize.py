#!/usr/bin/env python3
"""Time and memory of reading vs quantizing vs writing a VGG-size model, in one run.

    python scripts/bench_quantize.py                 # VGG16 (138M parameters)
    python scripts/bench_quantize.py --depth 19 --json

A preparation step (its own process) builds ``convertmodel.zoo.vgg(depth)`` and exports it as an
ONNX file (the "source model") into ``--workdir``. A fresh measuring process then runs:

1. ``read``: ``convertmodel.load(model.onnx)`` -- the ONNX reader, to IR with fp32 weights;
2. ``quantize``: ``model.quantize()`` -- the int8 pass (BN folding, weight windows);
3. ``write``: ``qmodel.save(model.q8)`` -- the atomic .q8 writer.

For each phase it reports wall time and the peak resident set size (RSS sampled every 5 ms from
/proc/self/statm, so native allocations such as protobuf's count too) above the RSS at the
phase's start, plus the process-wide peak (``resource.getrusage``). With ``--tracemalloc`` it
also reports the peak of Python/numpy allocations per phase (slower). The fp32 weight size is
the yardstick: "2.0 copies" means the phase's extra memory equals twice the fp32 weights.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RssSampler:
    """Peak RSS over a ``with`` block, sampled by a background thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.start = self.peak = _rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, _rss())


def export_onnx(graph: Any, path: str) -> None:
    """Write a zoo graph (Conv/Relu/MaxPool/Flatten/Gemm/Softmax) as an ONNX file."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    nodes = []
    for n in graph.nodes:
        attrs: dict[str, Any] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in n.attrs.items()}
        nodes.append(helper.make_node(n.op_type, list(n.inputs), list(n.outputs), name=n.name, **attrs))
    inits = [numpy_helper.from_array(np.asarray(a), k) for k, a in graph.constants.items()]
    ins = [
        helper.make_tensor_value_info(i.name, 1, [d if isinstance(d, int) else "N" for d in i.type.shape])
        for i in graph.inputs
    ]
    outs = [helper.make_tensor_value_info(o.name, 1, None) for o in graph.outputs]
    model = helper.make_model(
        helper.make_graph(nodes, graph.name, ins, outs, inits), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    tmp = path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)


def prepare(depth: int, workdir: str) -> str:
    path = os.path.join(workdir, f"vgg{depth}.onnx")
    if not os.path.exists(path):
        from convertmodel.zoo import vgg

        export_onnx(vgg(depth), path)
    return path


def measure(src: str, out: str, use_tracemalloc: bool) -> dict[str, Any]:
    import tracemalloc

    import convertmodel

    phases: dict[str, dict[str, float]] = {}
    state: dict[str, Any] = {}

    def phase(name: str, fn: Any) -> None:
        if use_tracemalloc:
            tracemalloc.start()
        with RssSampler() as s:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
        rec = {"seconds": dt, "rss_start": s.start, "rss_peak": s.peak, "rss_extra_peak": s.peak - s.start}
        if use_tracemalloc:
            rec["traced_peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        phases[name] = rec

    phase("read", lambda: state.__setitem__("m", convertmodel.load(src)))
    weights = int(sum(a.nbytes for a in state["m"].graph.constants.values()))
    params = int(state["m"].graph.param_count())
    phase("quantize", lambda: state.__setitem__("q", state["m"].quantize()))
    phase("write", lambda: state["q"].save(out))
    for rec in phases.values():
        rec["extra_copies_of_weights"] = rec["rss_extra_peak"] / weights
        if "traced_peak" in rec:
            rec["traced_copies_of_weights"] = rec["traced_peak"] / weights
    from convertmodel.serialize.breakdown import size_breakdown

    bd = size_breakdown(state["q"].graph)
    return {
        "source": src,
        "output": out,
        "parameters": params,
        "fp32_weight_bytes": weights,
        "q8_bytes": os.path.getsize(out),
        "ratio": weights / os.path.getsize(out),
        "breakdown": bd["parts"],
        "phases": phases,
        "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "quantize_over_read": phases["quantize"]["seconds"] / phases["read"]["seconds"],
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=16, choices=(16, 19))
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "convertmodel-bench"))
    ap.add_argument("--json", action="store_true", help="print the JSON report only")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python/numpy allocations (slower)")
    ap.add_argument("--measure", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.tracemalloc)))
        return 0
    os.makedirs(args.workdir, exist_ok=True)
    src = (
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                f"import bench_quantize as b; print(b.prepare({args.depth}, {args.workdir!r}))",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    out = os.path.join(args.workdir, f"vgg{args.depth}.q8")
    cmd = [sys.executable, os.path.abspath(__file__), "--measure", src, out] + (
        ["--tracemalloc"] if args.tracemalloc else []
    )
    rep = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    rep["command"] = " ".join(
        ["python scripts/bench_quantize.py", f"--depth {args.depth}"] + (["--tracemalloc"] if args.tracemalloc else [])
    )
    if args.json:
        print(json.dumps(rep, indent=2, sort_keys=True))
        return 0
    print(
        f"VGG{args.depth}: {rep['parameters']:,} parameters, fp32 weights {_mib(rep['fp32_weight_bytes'])}, "
        f".q8 {_mib(rep['q8_bytes'])} ({rep['ratio']:.3f}x smaller)"
    )
    print(f"{'phase':<10}{'seconds':>10}{'peak RSS':>14}{'extra peak':>14}{'x weights':>11}")
    for name, r in rep["phases"].items():
        print(
            f"{name:<10}{r['seconds']:>10.2f}{_mib(r['rss_peak']):>14}{_mib(r['rss_extra_peak']):>14}"
            f"{r['extra_copies_of_weights']:>11.2f}"
        )
    print(f"quantize / read time: {rep['quantize_over_read']:.2f}; process max RSS {_mib(rep['max_rss'])}")
    for part, nbytes in rep["breakdown"].items():
        print(f"  {part:<22}{nbytes:>14,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
