#!/usr/bin/env python
"""convertmodel fp32 / int8 against onnxruntime fp32 / static int8, one process, alternating runs.

For each model, batch and thread count, every runner executes once per round in turn (ours fp32,
ours int8, ORT fp32, ORT int8), so all four see the same machine state; medians and ratios are
printed. onnxruntime's int8 model is static QDQ, per-channel, u8 activations x s8 weights
(onnxruntime.quantization.quantize_static) calibrated on a few random samples; ours needs none.

VGG16/VGG19 come from convertmodel.zoo (exact topology, random weights: speed does not depend on
the values), exported to ONNX by convertmodel.bench_onnxruntime.export_onnx. Real ONNX files (``--onnx PATH``, or
``--real`` for the ones scripts/fetch_models.py cached) are read by convertmodel's ONNX reader.

    python scripts/bench_peers.py --models vgg16 --batches 8,1 --threads 2,1 --iterations 5
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from convertmodel.bench_onnxruntime import export_onnx, ort_session, quantize_int8
from convertmodel.ir.graph import Graph

CACHE = os.environ.get("CONVERTMODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convertmodel")


def ort_int8_session(
    src: str, dst: str, input_name: str, sample: tuple[int, ...], n_calib: int, threads: int
) -> tuple[Any, str]:
    """onnxruntime's int8 session, per-channel when its quantizer can (else per-tensor); (None, reason) if neither."""
    zeros = {input_name: np.zeros(sample, np.float32)}
    made: list[Any] = []

    def check(path: str) -> None:  # some failures only show when run
        made[:] = [ort_session(path, threads)]
        made[0].run(None, zeros)

    try:
        mode = quantize_int8(src, dst, zeros, n_calib, check)
    except RuntimeError as e:
        return None, str(e)
    return made[0], "per-channel" if mode.endswith("per-channel") else "per-tensor"


#: "wall" (perf_counter) or "cpu": CPU time of the calling thread, which at 1 thread is the work itself and does
#: not count the time other jobs on a shared machine take the core away (onnxruntime with one intra-op thread
#: and our kernels with threads=1 both run on the calling thread).
CLOCK = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = time.perf_counter


def timed_rounds(runners: dict[str, Callable[[], Any]], warmup: int, iterations: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(iterations):
        for k, fn in runners.items():
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
        print(
            f"  round {i + 1}/{iterations}: " + ", ".join(f"{k} {times[k][-1] * 1e3:.0f} ms" for k in runners),
            file=sys.stderr,
            flush=True,
        )
    return times


def scheme_options(scheme: str) -> Any:
    """QuantizeOptions of a level scheme "LxW" (input levels x weight levels) applied to every layer."""
    from convertmodel.quant.options import Levels, QuantizeOptions

    lv, wl = (int(v) for v in scheme.lower().split("x"))
    return QuantizeOptions(layer_levels=(("*", Levels(lv, wl)),))


def kernels_of(g: Graph) -> dict[str, int]:
    """How many quantized layers run on each native GEMM kernel (it follows the ISA and the levels)."""
    from convertmodel.runtime import native

    out: dict[str, int] = {}
    for n in g.nodes:
        if n.op_type in ("QConv", "QGemm") and n.inputs[1] in g.constants:
            k = native.kernel_name(np.asarray(g.constants[n.inputs[1]]), int(n.attrs.get("input_levels", 255)))  # type: ignore[arg-type]
            out[k] = out.get(k, 0) + 1
    return out


def random_weights(g: Graph, seed: int = 0) -> Graph:
    """The graph with its float constants replaced by random values of the same shapes (He-normal conv/fc
    weights, BatchNormalization at identity statistics): for topologies whose stored weights are fills
    (the onnx package's light models), so activations stay in range and every window varies."""
    rng = np.random.default_rng(seed)
    bn = {}
    for n in g.nodes:
        if n.op_type == "BatchNormalization":
            for i, v in zip((1, 2, 3, 4), (1.0, 0.0, 0.0, 1.0), strict=True):
                bn[n.inputs[i]] = v
    consts = {}
    for name, a in g.constants.items():
        a = np.asarray(a)
        if a.dtype != np.float32 or a.size <= 1:
            consts[name] = a
        elif name in bn:
            consts[name] = np.full(a.shape, bn[name], np.float32)
        else:
            fan_in = max(1, int(np.prod(a.shape[1:]))) if a.ndim > 1 else a.size
            consts[name] = (rng.standard_normal(a.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return g.replace(constants=consts)


def bench_model(
    name: str,
    graph: Graph,
    onnx_path: str,
    batches: list[int],
    thread_counts: list[int],
    warmup: int,
    iterations: int,
    n_calib: int,
    tmp: str,
    schemes: tuple[str, ...] = ("255x127",),
) -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    from convertmodel.passes.quantize import quantize_graph
    from convertmodel.runtime import Executor, native

    vi = graph.inputs[0]
    if vi.type.shape is None:
        raise SystemExit(f"{name}: input {vi.name} has no static shape")
    in_shape = vi.type.shape
    sample = tuple(d if isinstance(d, int) and d > 0 else 1 for d in in_shape)
    q_path = os.path.join(tmp, f"{name}.int8.onnx")
    print(f"{name}: onnxruntime quantize_static ({n_calib} random calibration samples)", file=sys.stderr, flush=True)
    probe, ort_mode = ort_int8_session(onnx_path, q_path, vi.name, sample, n_calib, 1)
    if probe is None:
        print(f"{name}: onnxruntime int8 unavailable: {ort_mode}", file=sys.stderr, flush=True)
    int8_graphs = {sch: quantize_graph(graph, scheme_options(sch)) for sch in schemes}
    rows = []
    for threads in thread_counts:
        ex32 = Executor(graph, ("native", "ref"), threads=threads)
        ex8s = {sch: Executor(g8, ("native", "ref"), threads=threads) for sch, g8 in int8_graphs.items()}
        s32 = ort_session(onnx_path, threads)
        s8 = ort_session(q_path, threads) if probe is not None else None
        for batch in batches:
            shape = (in_shape[0] if isinstance(in_shape[0], int) and in_shape[0] > 0 else batch, *sample[1:])
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            feeds = {vi.name: x}
            runners: dict[str, Callable[[], Any]] = {"cm_fp32": functools.partial(ex32.run, feeds)}
            for i, (sch, ex8) in enumerate(ex8s.items()):
                runners["cm_int8" if i == 0 else f"cm_int8_{sch}"] = functools.partial(ex8.run, feeds)
            runners["ort_fp32"] = functools.partial(s32.run, None, feeds)
            if s8 is not None:
                runners["ort_int8"] = functools.partial(s8.run, None, feeds)
            print(f"{name} batch {shape[0]} threads {threads} (ISA {native.isa()})", file=sys.stderr, flush=True)
            with threadpool_limits(limits=threads):
                times = timed_rounds(runners, warmup, iterations)
            ips = {k: shape[0] / float(np.median(v)) for k, v in times.items()}
            rows.append(
                {
                    "model": name,
                    "batch": shape[0],
                    "threads": threads,
                    "isa": native.isa(),
                    "schemes": list(schemes),
                    "int8_kernels": kernels_of(int8_graphs[schemes[0]]),
                    "img_per_s": ips,
                    "ort_int8": ort_mode,
                    "median_ms": {k: float(np.median(v)) * 1e3 for k, v in times.items()},
                    "iterations": iterations,
                    "clock": "cpu" if clock is time.thread_time else "wall",
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'model':<14}{'batch':>6}{'thr':>4}{'cm fp32':>9}{'cm int8':>9}{'ort fp32':>9}{'ort int8':>9}"
        f"{'int8/fp32':>10}{'cm8/ort8':>9}{'cm8/ort32':>10}"
    )
    print(head)
    for r in rows:
        i = dict(r["img_per_s"])
        o8 = i.get("ort_int8", float("nan"))
        print(
            f"{r['model']:<14}{r['batch']:>6}{r['threads']:>4}{i['cm_fp32']:>9.2f}{i['cm_int8']:>9.2f}"
            f"{i['ort_fp32']:>9.2f}{o8:>9.2f}{i['cm_int8'] / i['cm_fp32']:>10.2f}"
            f"{i['cm_int8'] / o8:>9.2f}{i['cm_int8'] / i['ort_fp32']:>10.2f}  ort int8: {r['ort_int8']}"
        )
    for r in rows:  # the other level schemes against the first
        for k, v in r["img_per_s"].items():
            if k.startswith("cm_int8_"):
                print(
                    f"{r['model']} batch {r['batch']} threads {r['threads']}: {k} {v:.2f} img/s = "
                    f"{v / r['img_per_s']['cm_int8']:.2f}x {r['schemes'][0]}, {v / r['img_per_s'].get('ort_int8', np.nan):.2f}x ort int8"
                )
    # Thread scaling of our int8 path: the same model and batch at the largest vs 1 thread.
    for r in rows:
        one = [o for o in rows if o["model"] == r["model"] and o["batch"] == r["batch"] and o["threads"] == 1]
        if r["threads"] > 1 and one:
            print(
                f"{r['model']} batch {r['batch']}: int8 {r['threads']} threads / 1 thread = "
                f"{r['img_per_s']['cm_int8'] / one[0]['img_per_s']['cm_int8']:.2f}x"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models",
        default="vgg16,vgg19",
        help="vgg11..vgg19 (zoo), resnet50 (onnx's light topology, random weights), fmnist_mobilenet "
        "(comma-separated; '' for none)",
    )
    ap.add_argument("--batches", default="8,1")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--calib", type=int, default=4, help="random calibration samples for onnxruntime")
    ap.add_argument("--onnx", action="append", default=[], help="also bench this real ONNX file (repeatable)")
    ap.add_argument("--real", action="store_true", help="also bench the ONNX files fetched into the cache")
    ap.add_argument("--json", help="write the rows as JSON to this file")
    ap.add_argument(
        "--schemes",
        default="255x127",
        help="our int8 level schemes, input x weight levels (comma-separated; the first is 'cm int8', the others "
        "extra runners), e.g. 255x127,127x64",
    )
    ap.add_argument("--clock", choices=sorted(CLOCK), default="wall", help="cpu: thread CPU time (1 thread only)")
    args = ap.parse_args()
    global clock
    clock = CLOCK[args.clock]
    if args.clock == "cpu" and any(int(t) != 1 for t in args.threads.split(",") if t):
        ap.error("--clock cpu measures the calling thread only: use it with --threads 1")
    from convertmodel import zoo
    from convertmodel.model import load

    batches = [int(b) for b in args.batches.split(",") if b]
    threads = [int(t) for t in args.threads.split(",") if t]
    schemes = tuple(s for s in args.schemes.split(",") if s)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in [m for m in args.models.split(",") if m]:
            if m == "resnet50":  # the onnx package's ResNet-50 topology, random weights (its own are fills)
                import onnx

                light = os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light/light_resnet50.onnx")
                g = random_weights(load(light).graph)
            elif m == "fmnist_mobilenet":  # the trained depthwise Fashion-MNIST net of fixtures/fmnist
                g = load(os.path.join(os.path.dirname(__file__), "..", "fixtures", "fmnist", "mobilenet.onnx")).graph
            else:
                g = zoo.vgg(int(m.lower().removeprefix("vgg")), image_size=args.image_size)
            path = os.path.join(tmp, f"{m}.onnx")
            export_onnx(g, path)
            rows += bench_model(m, g, path, batches, threads, args.warmup, args.iterations, args.calib, tmp, schemes)
        files = list(args.onnx)
        if args.real:
            files += sorted(glob.glob(os.path.join(CACHE, "models", "*", "*.onnx")))
        for f in files:
            g = load(f).graph
            rows += bench_model(
                os.path.basename(f).removesuffix(".onnx"),
                g,
                f,
                batches,
                threads,
                args.warmup,
                args.iterations,
                args.calib,
                tmp,
                schemes,
            )
    print_table(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
