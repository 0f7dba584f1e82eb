#!/usr/bin/env python3
"""Spark engine overhead: verify on the 10,000 Fashion-MNIST test images, local engine vs Spark local[N].

One process: the SparkSession is started once (its start time is reported apart), then for each net the
local engine and the Spark engine run alternately ``--repeat`` times; medians and the paired ratio
(spark / local of the same round) are printed, and whether the numbers agree bit for bit.

    python scripts/bench_spark_engine.py                          # all three nets, local[2], batch 64
    python scripts/bench_spark_engine.py --nets lenet5 --master local[4] --threads 1 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

import convertmodel  # noqa: E402
from convertmodel.data.datasets import open_dataset  # noqa: E402
from convertmodel.data.preprocess import preset  # noqa: E402
from convertmodel.engines import SparkEngine  # noqa: E402
from convertmodel.verify.runner import VerifyOptions, run_verify  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def numbers(r: object) -> tuple:
    return (r.fp32, r.int8, r.agreement, r.samples, r.data_hash)  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["lenet5", "vgg", "mobilenet"])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    t0 = time.perf_counter()
    eng = SparkEngine(a.master, a.partitions)
    eng.session()
    session = time.perf_counter() - t0
    out = {"master": a.master, "session_start_seconds": round(session, 2), "nets": {}}
    print(f"session start {session:.2f} s ({a.master})", flush=True)
    for net in a.nets:
        fp32 = convertmodel.load(os.path.join(REPO, "fixtures", "fmnist", f"{net}.onnx"))
        int8 = fp32.quantize()
        ds = open_dataset(a.data)
        opts = VerifyOptions(batch_size=a.batch_size, threads=a.threads)
        pre = preset("fmnist")
        run_verify(fp32, int8, ds, pre, opts, engine=eng)  # first job starts the Python workers: not timed
        loc, spk, same = [], [], True
        for _ in range(a.repeat):
            t = time.perf_counter()
            r1 = run_verify(fp32, int8, ds, pre, opts)
            loc.append(time.perf_counter() - t)
            t = time.perf_counter()
            r2 = run_verify(fp32, int8, ds, pre, opts, engine=eng)
            spk.append(time.perf_counter() - t)
            same = same and numbers(r1) == numbers(r2)
        ratios = [s / max(x, 1e-9) for s, x in zip(spk, loc, strict=True)]
        row = {
            "local_median_s": round(statistics.median(loc), 2),
            "spark_median_s": round(statistics.median(spk), 2),
            "paired_ratio_median": round(statistics.median(ratios), 2),
            "bit_identical": same,
            "partitions": eng.last_job.get("partitions"),
        }
        out["nets"][net] = row
        print(net, json.dumps(row), flush=True)
    print(json.dumps(out, indent=2))
    eng.stop()


if __name__ == "__main__":
    main()
