#!/usr/bin/env python3
"""``convertmodel verify`` on the 10,000 Fashion-MNIST test images against one onnxruntime fp32 pass over them.

Issue 10's target: verify's wall time <= 3x one onnxruntime fp32 pass (batches of 64, verify's default).
Each round runs the onnxruntime pass in this process, then ``convertmodel verify`` as a subprocess (so
the process figure includes interpreter start and imports); medians of ``--rounds`` rounds, and the
per-phase timing verify reports in its JSON (load, quantize, data, fp32, int8, metrics).

    python scripts/bench_verify_vs_ort.py [--nets lenet5,mobilenet,vgg] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"  # apt-get install dataset-fashion-mnist
LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="lenet5,mobilenet,vgg")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    with gzip.open(DATA) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rep = os.path.join(tmp, "verify.json")
        for net in args.nets.split(","):
            model = os.path.join(REPO, "fixtures", "fmnist", f"{net}.onnx")
            sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            rows = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                for i in range(0, len(x), 64):
                    sess.run(None, {name: x[i : i + 64]})
                t_ort = time.perf_counter() - t0
                cmd = ["convertmodel", "verify", model, "--data", DATA, "--labels", LABELS, "--preset", "fmnist"]
                t0 = time.perf_counter()
                subprocess.run([*cmd, "--json", rep], check=True, capture_output=True)
                t_proc = time.perf_counter() - t0
                with open(rep) as f:
                    timing = json.load(f)["timing"]
                rows.append({"ort_pass_s": t_ort, "verify_process_s": t_proc, **timing})
            med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
            med["wall_over_ort"] = float(np.median([r["wall_seconds"] / r["ort_pass_s"] for r in rows]))
            med["process_over_ort"] = float(np.median([r["verify_process_s"] / r["ort_pass_s"] for r in rows]))
            out[net] = med
            print(net, {k: round(v, 3) for k, v in med.items()}, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
