#!/usr/bin/env python3
"""Accuracy and speed of the int8 level schemes (input levels x weight levels), to choose the default.

Schemes: 255x127 (the stored 127-level weights, 255 input levels), 127x127, 255x64 and BigDL's 127x64
(weights re-quantized to 64 levels as BigDL did at load time), plus ``auto F dB`` (``--floors``): the
product's ``quantize --levels auto`` (convertmodel/verify/levels.py) at a per-layer SQNR floor of F dB,
calibrated on the first ``--calib`` training images (disjoint from the test images), drop gate 0.1 pt.

Fashion-MNIST nets (fixtures/fmnist) over the 10,000 test images of Debian's dataset-fashion-mnist:
fp32 top-1, int8 top-1 and drop (percentage points), top-1 agreement with fp32, mean cosine and SQNR of the
logits, and onnxruntime's static int8 (QDQ, per-channel u8s8, 512 calibration images) for comparison.
Speed: one 1-thread pass over the images per scheme and per ISA path (``CONVERTMODEL_ISA`` forced per
run), as CPU time of the calling thread (the machine is shared).

    python scripts/scheme_levels.py --nets lenet5,vgg,mobilenet --json fixtures/fmnist/scheme_levels.json
    python scripts/scheme_levels.py --schemes 255x127,127x64 --floors 35,38,40,42 --isas avx2 --no-peers
    python scripts/scheme_levels.py --real-auto tumor_vgg16 --floors 35,40 --isas avx2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import convertmodel  # noqa: E402
from convertmodel.quant.error import cosine, sqnr_db  # noqa: E402
from convertmodel.quant.options import Levels, QuantizeOptions  # noqa: E402
from convertmodel.verify.levels import exact_pattern  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
TRAIN_LABELS = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
FIX = os.path.join(REPO, "fixtures", "fmnist")
SCHEMES = {"255x127": (255, 127), "127x127": (127, 127), "255x64": (255, 64), "127x64": (127, 64)}


def load_data(limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from convertmodel.data.datasets import open_dataset
    from convertmodel.data.preprocess import preset

    ds = open_dataset(DATA)
    xs, ys = [], []
    for b in ds.batches(500, preset("fmnist"), limit):
        xs.append(b.x)
        ys.append(np.asarray(b.labels))
    return np.concatenate(xs), np.concatenate(ys)


def logits_model(m: Any) -> Any:
    """The model with the input of its final Softmax as output (logits: a softmax hides their errors)."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from accuracy_real_models import logits_of  # type: ignore[import-not-found]

    from convertmodel.ir.graph import TensorType, ValueInfo, prune

    g = m.graph
    v = logits_of(g)
    outs = (ValueInfo(v, g.type_of(v) or TensorType("float32")),)
    return convertmodel.Model(prune(g.replace(outputs=outs, infer=False)).replace(), m.source)


def run(m: Any, x: np.ndarray, threads: int = 1, batch: int = 500) -> tuple[np.ndarray, float]:
    ex = m.executor(None, threads)
    name = m.graph.inputs[0].name
    ex.run({name: x[:batch]})
    t0 = time.thread_time()
    out = [next(iter(ex.run({name: x[i : i + batch]}).values())) for i in range(0, len(x), batch)]
    return np.concatenate(out).reshape(len(x), -1), time.thread_time() - t0


def alternating(models: dict[str, Any], x: np.ndarray, isa_name: str, rounds: int, batch: int) -> dict[str, float]:
    """Median thread CPU seconds of one pass over ``x`` per model, the models run in turn ``rounds`` times
    with one ISA path forced (a shared machine's noise falls on every model alike)."""
    from convertmodel.runtime import native

    os.environ[native.ISA_ENV] = isa_name
    try:
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(rounds):
            for k, q in models.items():
                times[k].append(run(q, x, batch=batch)[1])
    finally:
        os.environ.pop(native.ISA_ENV, None)
    return {k: float(np.median(v)) for k, v in times.items()}


def options(levels: dict[str, tuple[int, int]] | tuple[int, int]) -> QuantizeOptions:
    if isinstance(levels, tuple):
        return QuantizeOptions(layer_levels=(("*", Levels(*levels)),))
    return QuantizeOptions(layer_levels=tuple((exact_pattern(k), Levels(*v)) for k, v in levels.items()))


def metrics(ref: np.ndarray, got: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "top1": float(np.mean(got.argmax(1) == labels) * 100),
        "agreement": float(np.mean(got.argmax(1) == ref.argmax(1)) * 100),
        "cosine": float(np.mean([cosine(a, b) for a, b in zip(ref, got, strict=True)])),
        "sqnr_db": float(sqnr_db(ref, got)),
    }


def auto_levels(fp32: Any, floor_db: float, calib: int) -> tuple[dict[str, tuple[int, int]], dict[str, Any]]:
    """``quantize --levels auto`` (convertmodel/verify/levels.py) calibrated on the first ``calib`` *training*
    images (disjoint from the test images every scheme is measured on), drop gate 0.1 pt."""
    from convertmodel.verify.inputs import open_verify_data
    from convertmodel.verify.levels import choose_levels
    from convertmodel.verify.runner import VerifyOptions

    ds, pre = open_verify_data(TRAIN, fp32, labels=TRAIN_LABELS, require_known=True)
    t0 = time.perf_counter()
    r = choose_levels(fp32, ds, pre, VerifyOptions(batch_size=256, threads=1, limit=calib), 0.1, floor_db=floor_db)
    info = r.as_dict()
    info["search_seconds"] = round(time.perf_counter() - t0, 2)
    return {k: (v.input, v.weight) for k, v in r.layer_levels.items()}, info


def ort_int8(path: str, x: np.ndarray, calib: np.ndarray, reduce_range: bool) -> np.ndarray:
    import tempfile

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"image": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "q.onnx")
        quantize_static(
            path,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=reduce_range,
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(dst, so, providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"image": x[i : i + 500]})[0] for i in range(0, len(x), 500)])


def bench_net(
    net: str,
    x: np.ndarray,
    labels: np.ndarray,
    isas: list[str],
    schemes: list[str],
    floors: list[float],
    calib: int,
    peers: bool = True,
    rounds: int = 3,
) -> dict[str, Any]:
    path = os.path.join(FIX, f"{net}.onnx")
    fp32 = convertmodel.load(path)
    ref, t32 = run(logits_model(fp32), x)
    base = float(np.mean(ref.argmax(1) == labels) * 100)
    out: dict[str, Any] = {"fp32_top1": base, "fp32_cpu_s": round(t32, 3), "schemes": {}}
    all_schemes: dict[str, Any] = {k: SCHEMES[k] for k in schemes}
    searches: dict[str, Any] = {}
    for f in floors:
        all_schemes[f"auto {f:g} dB"], searches[f"auto {f:g} dB"] = auto_levels(fp32, f, calib)
    qs = {name: logits_model(fp32.quantize(options(lv))) for name, lv in all_schemes.items()}
    for name, lv in all_schemes.items():
        got, _ = run(qs[name], x)
        r: dict[str, Any] = dict(metrics(ref, got, labels))
        r["drop_pp"] = base - r["top1"]
        if name in searches:
            r["levels"] = {k: f"{a}x{b}" for k, (a, b) in lv.items()}
            r["search"] = searches[name]
        out["schemes"][name] = r
    for isa_name in isas:
        for name, t in alternating(qs, x, isa_name, rounds, 500).items():
            out["schemes"][name][f"cpu_s_{isa_name}"] = round(t, 3)
    if not peers:
        return out
    probs = next(iter(fp32.executor(None, 1).run({"image": x}).values()))
    for rr in (False, True):
        got = ort_int8(path, x, x[-512:], rr)
        r = metrics(probs, got, labels)
        r["drop_pp"] = base - r["top1"]
        r.pop("cosine"), r.pop("sqnr_db")  # its output is the softmax, not comparable with our logits
        out["schemes"][f"onnxruntime{' reduce_range' if rr else ''}"] = r
    return out


def real_models(names: list[str], n_images: int) -> dict[str, Any]:
    """Top-1 agreement, cosine and SQNR of each scheme on the real models of scripts/accuracy_real_models.py."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import accuracy_real_models as arm  # type: ignore[import-not-found]

    out: dict[str, Any] = {}
    for name in names:
        spec = arm.MODELS[name]
        if not os.path.exists(spec.path()):
            out[name] = {"skipped": f"{spec.path()} missing (run scripts/fetch_models.py)"}
            continue
        model = arm.load_spec(spec)
        xs = [arm.prepare(spec, im) for im in (arm.face_images() if spec.faces else arm.natural_images())[:n_images]]
        in_name, outs = model.graph.inputs[0].name, [o.name for o in model.graph.outputs]

        def run_all(m: Any, xs: list[np.ndarray] = xs, in_name: str = in_name, outs: list[str] = outs) -> list[Any]:
            ex = m.executor(None, 1)
            return [[np.asarray(ex.run({in_name: x})[o], np.float64).reshape(-1) for o in outs] for x in xs]

        ref = run_all(model)
        res: dict[str, Any] = {"images": len(xs)}
        for sch, lv in SCHEMES.items():
            got = run_all(model.quantize(options(lv)))
            cos = [min(cosine(r, g) for r, g in zip(rr, gg, strict=True)) for rr, gg in zip(ref, got, strict=True)]
            sq = [min(sqnr_db(r, g) for r, g in zip(rr, gg, strict=True)) for rr, gg in zip(ref, got, strict=True)]
            if spec.kind == "detect":
                top = [
                    int(np.argmax(rr[1].reshape(-1, 2)[:, 1])) == int(np.argmax(gg[1].reshape(-1, 2)[:, 1]))
                    for rr, gg in zip(ref, got, strict=True)
                ]
            else:
                top = [
                    int(np.argmax(rr[0])) == int(np.argmax(gg[0]))
                    for rr, gg in zip(ref, got, strict=True)
                    if arm._decisive(rr[0])
                ]
            res[sch] = {
                "top1_agreement": float(np.mean(top)) if top else None,
                "cosine_mean": float(np.mean(cos)),
                "cosine_min": float(np.min(cos)),
                "sqnr_db_median": float(np.median(sq)),
            }
            print(
                f"{name:<14} {sch:<8} top-1 agreement {res[sch]['top1_agreement']} cosine mean "
                f"{res[sch]['cosine_mean']:.5f} min {res[sch]['cosine_min']:.5f} SQNR {res[sch]['sqnr_db_median']:.1f} dB",
                flush=True,
            )
        out[name] = res
    return out


def real_auto(name: str, floors: list[float], isas: list[str], tmp: str, rounds: int = 3) -> dict[str, Any]:
    """``--levels auto`` on a real model: calibrated on the first ten bundled photographs and their mirror
    images, measured (against fp32: top-1 agreement, cosine, SQNR of the logits) on the other photographs
    and their mirrors; AVX2 CPU time per image at batch 1, next to uniform 255x127, 127x127 and 127x64."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import accuracy_real_models as arm  # type: ignore[import-not-found]

    from convertmodel.data.datasets import open_dataset, write_idx
    from convertmodel.data.preprocess import Preprocess
    from convertmodel.verify.levels import choose_levels
    from convertmodel.verify.runner import VerifyOptions

    spec = arm.MODELS[name]
    if spec.prep != "unit" or spec.layout != "NHWC":
        raise SystemExit(f"{name}: --real-auto handles x/255 NHWC models (tumor_vgg16)")
    fp32 = logits_model(arm.load_spec(spec))
    imgs = arm.natural_images()
    half = len(imgs) // 2
    u8 = [np.clip(np.rint(arm.prepare(spec, im)[0] * 255), 0, 255).astype(np.uint8) for im in imgs]
    calib_idx = [i for i in range(len(imgs)) if i % half < 10]
    eval_idx = [i for i in range(len(imgs)) if i % half >= 10]
    path = os.path.join(tmp, f"{name}-calib-idx3-ubyte")
    write_idx(path, np.stack([u8[i] for i in calib_idx]))
    pre = Preprocess(color="rgb", scale=1 / 255, layout="NHWC")
    x = pre.normalize(np.stack([u8[i] for i in eval_idx]))
    ref, _ = run(fp32, x, batch=1)
    out: dict[str, Any] = {"calib_images": len(calib_idx), "eval_images": len(eval_idx), "schemes": {}}
    all_schemes: dict[str, Any] = {k: SCHEMES[k] for k in ("255x127", "127x127", "127x64")}
    searches: dict[str, Any] = {}
    for f in floors:
        t0 = time.perf_counter()
        r = choose_levels(fp32, open_dataset(path), pre, VerifyOptions(batch_size=4, threads=1), 0.1, floor_db=f)
        searches[f"auto {f:g} dB"] = dict(r.as_dict(), search_seconds=round(time.perf_counter() - t0, 1))
        all_schemes[f"auto {f:g} dB"] = {k: (v.input, v.weight) for k, v in r.layer_levels.items()}
    qs = {sch: fp32.quantize(options(lv)) for sch, lv in all_schemes.items()}
    times = {i: alternating(qs, x[:4], i, rounds, 1) for i in isas}
    for sch, lv in all_schemes.items():
        got, _ = run(qs[sch], x, batch=1)
        res: dict[str, Any] = {
            "agreement": float(np.mean(got.argmax(1) == ref.argmax(1)) * 100),
            "cosine_min": float(min(cosine(a, b) for a, b in zip(ref, got, strict=True))),
            "sqnr_db": float(sqnr_db(ref, got)),
        }
        for isa_name in isas:
            res[f"cpu_ms_{isa_name}"] = round(1000 * times[isa_name][sch] / 4, 1)
        if sch in searches:
            res["levels"] = {k: f"{a}x{b}" for k, (a, b) in lv.items()}
            res["search"] = searches[sch]
        out["schemes"][sch] = res
        extra = " ".join(f"{k[7:]} {v:.1f} ms" for k, v in res.items() if k.startswith("cpu_ms_"))
        print(
            f"{name} {sch:<12} agreement {res['agreement']:.1f}% cosine min {res['cosine_min']:.5f} "
            f"SQNR {res['sqnr_db']:.1f} dB {extra}" + (f" levels {res['levels']}" if "levels" in res else ""),
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="lenet5,vgg,mobilenet")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--isas", default="", help="ISA paths to time (default: every available one)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--schemes", default=",".join(SCHEMES), help="uniform schemes to measure")
    ap.add_argument("--floors", default="", help="also `--levels auto` at these per-layer SQNR floors (dB)")
    ap.add_argument("--calib", type=int, default=2048, help="training images --levels auto calibrates on")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (median)")
    ap.add_argument("--no-peers", action="store_true", help="skip onnxruntime's static int8")
    ap.add_argument(
        "--real", default="", help="real models of scripts/accuracy_real_models.py instead (comma-separated)"
    )
    ap.add_argument("--images", type=int, default=8, help="images per real model")
    ap.add_argument("--real-auto", default="", help="a real model for --levels auto (tumor_vgg16), with --floors")
    args = ap.parse_args()
    if args.real_auto:
        import tempfile

        from convertmodel.runtime import native

        isas = [i for i in args.isas.split(",") if i] or [i for i in native.available_isas() if i != "portable"]
        with tempfile.TemporaryDirectory() as tmp:
            res = real_auto(args.real_auto, [float(f) for f in args.floors.split(",") if f], isas, tmp, args.rounds)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2, sort_keys=True)
                f.write("\n")
        return
    if args.real:
        res = real_models(args.real.split(","), args.images)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2, sort_keys=True)
                f.write("\n")
        return
    from convertmodel.runtime import native

    isas = [i for i in args.isas.split(",") if i] or [i for i in native.available_isas() if i != "portable"]
    x, labels = load_data(args.limit)
    res = {}
    schemes = [k for k in args.schemes.split(",") if k]
    floors = [float(f) for f in args.floors.split(",") if f]
    for net in args.nets.split(","):
        res[net] = r = bench_net(net, x, labels, isas, schemes, floors, args.calib, not args.no_peers, args.rounds)
        print(f"{net}: fp32 top-1 {r['fp32_top1']:.2f}%")
        for name, s in r["schemes"].items():
            extra = " ".join(f"{k[6:]} {v:.2f}s" for k, v in s.items() if k.startswith("cpu_s_"))
            cs = f" cos {s['cosine']:.5f} SQNR {s['sqnr_db']:.1f} dB" if "cosine" in s else ""
            print(
                f"  {name:<24} top-1 {s['top1']:.2f}% drop {s['drop_pp']:+.2f} agree {s['agreement']:.2f}%{cs} {extra}"
                + (f" levels {s['levels']}" if "levels" in s else ""),
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
