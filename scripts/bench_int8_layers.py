#!/usr/bin/env python
"""VGG16's 13 int8 convolutions one at a time through the native kernel, CPU time of the calling thread.

Each layer runs alone through ``_native.qconv`` (random input after a ReLU, random 255x127 weights, output
buffer reused as the executor does, one thread), then again with 12 output channels: one channel block of
the GEMM, so its share of the full layer's time is what stays without the GEMM (padding, channel min/max
maps, window quantization, one block's GEMM and epilogue). With ``--baseline SO`` (another build of
``_native*.so``, e.g. from a checkout of an older commit) both builds run alternately in this process and
their outputs are checked equal bit for bit.

    python scripts/bench_int8_layers.py --repeat 7
    python scripts/bench_int8_layers.py --baseline /tmp/old/_native.cpython-311-x86_64-linux-gnu.so
    CONVERTMODEL_ISA=avx2 python scripts/bench_int8_layers.py --layers conv1_2,conv3_2
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: name: (input channels, output channels, spatial size); 3x3 kernels, stride 1, pads 1.
VGG16 = {
    "conv1_1": (3, 64, 224),
    "conv1_2": (64, 64, 224),
    "conv2_1": (64, 128, 112),
    "conv2_2": (128, 128, 112),
    "conv3_1": (128, 256, 56),
    "conv3_2": (256, 256, 56),
    "conv3_3": (256, 256, 56),
    "conv4_1": (256, 512, 28),
    "conv4_2": (512, 512, 28),
    "conv4_3": (512, 512, 28),
    "conv5_1": (512, 512, 14),
    "conv5_2": (512, 512, 14),
    "conv5_3": (512, 512, 14),
}


def load_extension(path: str, name: str) -> Any:
    """An extension module from a given .so file (a second build can sit next to the installed one)."""
    spec = importlib.util.spec_from_file_location(f"{name}._native", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def layer(ext: Any, c: int, m: int, h: int, isa: str) -> tuple[Callable[[], Any], np.ndarray]:
    rng = np.random.default_rng(1)
    x = np.maximum(rng.standard_normal((1, c, h, h), dtype=np.float32), 0)
    wq = rng.integers(-127, 128, (m, c * 9), dtype=np.int8)
    packed = ext.pack_weights(wq, 1, isa, 255.0)
    ws = np.full(m, 1e-3, np.float32)
    wsum = rng.standard_normal(m).astype(np.float32)
    b = np.zeros(m, np.float32)
    out = np.empty((1, m, h, h), np.float32)
    geom = ([3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 255.0, True, 1, out)
    return (lambda: ext.qconv(x, packed, ws, wsum, b, *geom)), out


def cpu_ms(fn: Callable[[], Any]) -> float:
    t = time.thread_time()
    fn()
    return (time.thread_time() - t) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=",".join(VGG16), help="comma-separated VGG16 layer names")
    ap.add_argument("--repeat", type=int, default=7, help="alternating rounds (medians are printed)")
    ap.add_argument("--baseline", help="another build of the extension (.so) to compare with")
    args = ap.parse_args()
    from convertmodel.runtime import native

    if not native.available():
        raise SystemExit("the native extension is not built (pip install -e .)")
    isa = os.environ.get(native.ISA_ENV, "")
    builds = {"this": native._ext}
    if args.baseline:
        builds = {"baseline": load_extension(args.baseline, "baseline"), **builds}
    print(f"isa {native.isa()}; ms of thread CPU time, medians of {args.repeat} alternating rounds")
    head = " | ".join(f"{b} ms | {b} GMAC/s | {b} 12-ch share" for b in builds)
    print(f"| layer | {head} |" + (" speed-up (paired) |" if args.baseline else ""))
    total = dict.fromkeys(builds, 0.0)
    macs = 0
    for name in args.layers.split(","):
        c, m, h = VGG16[name]
        runs = {b: (layer(e, c, m, h, isa), layer(e, c, 12, h, isa)[0]) for b, e in builds.items()}
        times: dict[str, list[float]] = {b: [] for b in builds}
        times12: dict[str, list[float]] = {b: [] for b in builds}
        for (full, _), small in runs.values():
            full()
            small()
        outs = [out for (_, out), _ in runs.values()]
        if len(outs) == 2 and not np.array_equal(outs[0], outs[1]):
            raise SystemExit(f"{name}: the two builds' outputs differ")
        for _ in range(args.repeat):
            for b, ((full, _), small) in runs.items():
                times[b].append(cpu_ms(full))
                times12[b].append(cpu_ms(small))
        mac = c * 9 * m * h * h
        macs += mac
        cells = []
        for b in builds:
            t, t12 = float(np.median(times[b])), float(np.median(times12[b]))
            total[b] += t
            cells.append(f"{t:.2f} | {mac / t / 1e6:.0f} | {t12 / t * 100:.0f}%")
        row = f"| {name} | {' | '.join(cells)} |"
        if args.baseline:
            ratio = np.median(np.array(times["baseline"]) / np.array(times["this"]))
            row += f" {ratio:.2f}x |"
        print(row, flush=True)
    cells = [f"{total[b]:.1f} | {macs / total[b] / 1e6:.0f} | " for b in builds]
    tail = f" {total['baseline'] / total['this']:.2f}x |" if args.baseline else ""
    print(f"| all | {' | '.join(cells)} |{tail}")


if __name__ == "__main__":
    main()
