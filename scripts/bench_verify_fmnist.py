#!/usr/bin/env python3
"""Measure ``verify`` on the 10,000 Fashion-MNIST test images for each trained fixture net.

For each net: the fp32 and int8 models alone on preloaded batches (the baseline), then the whole
``verify`` pass (streamed IDX reading, preprocessing, both models, metrics), alternated ``--repeat`` times
with the fastest of each kept, because the CPU is shared and single timings swing by 3x. The target: verify's wall
time is at most twice fp32 + int8 alone, and the int8 top-1 drop is below 0.1 percentage points.

    python scripts/bench_verify_fmnist.py                      # all nets in fixtures/fmnist/models.json
    python scripts/bench_verify_fmnist.py --nets lenet5 --limit 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import convertmodel  # noqa: E402
from convertmodel.data.datasets import open_dataset  # noqa: E402
from convertmodel.data.preprocess import preset  # noqa: E402
from convertmodel.verify.runner import VerifyOptions, run_verify  # noqa: E402

FIX = os.path.join(REPO, "fixtures", "fmnist")


def bench(name: str, data: str, batch: int, limit: int | None, threads: int, repeat: int) -> dict[str, Any]:
    fp32 = convertmodel.load(os.path.join(FIX, f"{name}.onnx"))
    t0 = time.perf_counter()
    int8 = fp32.quantize()
    t_quant = time.perf_counter() - t0
    pre = preset("fmnist")
    ds = open_dataset(data)
    xs = [b.x for b in ds.batches(batch, pre, limit)]
    feeds32, feeds8 = fp32.graph.inputs[0].name, int8.graph.inputs[0].name
    ex32, ex8 = fp32.executor(None, threads), int8.executor(None, threads)
    ex32.run({feeds32: xs[0]})  # warm up (native weight packing, allocations)
    ex8.run({feeds8: xs[0]})
    # The CPU is shared: alternate the baseline and verify `repeat` times and keep the fastest of each.
    t_fp32 = t_int8 = wall = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in xs:
            ex32.run({feeds32: x})
        t_fp32 = min(t_fp32, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for x in xs:
            ex8.run({feeds8: x})
        t_int8 = min(t_int8, time.perf_counter() - t0)
        r = run_verify(fp32, int8, ds, pre, VerifyOptions(batch_size=batch, limit=limit, threads=threads))
        if r.timing["wall_seconds"] < wall:
            res, wall = r, r.timing["wall_seconds"]
    return {
        "samples": res.samples,
        "fp32_top1": res.fp32_value,
        "int8_top1": res.int8_value,
        "drop_pp": res.drop,
        "top1_agreement": res.agreement.get("top1_agreement"),
        "sqnr_db": res.agreement.get("sqnr_db"),
        "fp32_alone_s": round(t_fp32, 3),
        "int8_alone_s": round(t_int8, 3),
        "verify_wall_s": round(wall, 3),
        "verify_data_s": round(res.timing["data_seconds"], 3),
        "repeat": repeat,
        # Inside verify: model time vs everything else (reading, preprocessing, metrics, bookkeeping).
        "verify_fp32_s": round(res.timing["fp32_seconds"], 3),
        "verify_int8_s": round(res.timing["int8_seconds"], 3),
        "verify_overhead_s": round(wall - res.timing["fp32_seconds"] - res.timing["int8_seconds"], 3),
        "ratio": round(wall / (t_fp32 + t_int8), 3),
        "quantize_s": round(t_quant, 3),
        "int8_backends": ex8.backend_counts(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--nets", default=None, help="comma-separated (default: every net in models.json)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="alternate baseline and verify this often; keep the best")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.nets:
        nets = args.nets.split(",")
    else:
        with open(os.path.join(FIX, "models.json")) as f:
            nets = sorted(json.load(f))
    results = {}
    for n in nets:
        r = bench(n, args.data, args.batch_size, args.limit, args.threads, args.repeat)
        results[n] = r
        ok = "ok" if r["drop_pp"] < 0.1 and r["ratio"] <= 2.0 else "MISSED"  # type: ignore[operator]
        print(
            f"{n}: fp32 {r['fp32_top1']:.2f}% int8 {r['int8_top1']:.2f}% drop {r['drop_pp']:.2f} pp | fp32 "
            f"{r['fp32_alone_s']:.1f}s + int8 {r['int8_alone_s']:.1f}s alone, verify {r['verify_wall_s']:.1f}s "
            f"(x{r['ratio']:.2f}; inside verify: models {r['verify_fp32_s'] + r['verify_int8_s']:.1f}s, "
            f"everything else {r['verify_overhead_s']:.2f}s) {ok}",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
