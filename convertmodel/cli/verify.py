"""``convertmodel verify``: the fp32 -> int8 accuracy drop on real data, as a CI gate (exit 6 when over budget)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from convertmodel.cli.common import console, emit_json, load_model, progress, state
from convertmodel.errors import AccuracyGateError, ModelIOError

PREPROCESS_KEY = "preprocessing"


def resolve_preprocess(preset_name: str | None, flags: dict[str, Any], model_meta: Any, dataset: Any) -> Any:
    """--preset and flags > the model's stored metadata["preprocessing"] > the data's default > plain.

    Returns (spec, explicit) where explicit tells whether the user or the model fixed it.
    """
    from convertmodel.data.preprocess import Preprocess, parse_floats, parse_size, preset

    given = {k: v for k, v in flags.items() if v is not None}
    if preset_name:
        base, explicit = preset(preset_name), True
    elif model_meta.get(PREPROCESS_KEY):
        base, explicit = Preprocess.from_json(model_meta[PREPROCESS_KEY]), True
    else:
        base, explicit = (dataset.default_preprocess or Preprocess()), False
    changes: dict[str, Any] = {}
    if "resize" in given:
        changes["resize"] = parse_size(given["resize"], "--resize")
    if "crop" in given:
        changes["crop"] = parse_size(given["crop"], "--crop")
    for k in ("mean", "std"):
        if k in given:
            changes[k] = parse_floats(given[k], f"--{k}")
    for k in ("scale", "color", "layout"):
        if k in given:
            changes[k] = given[k]
    if changes:
        explicit = True
    return (base.with_(**changes) if changes else base), explicit


def _reference_path(model_path: str, model: Any, reference: str | None) -> str:
    if reference:
        return reference
    src = model.metadata.get("source_file")
    cands = [] if not src else [src, os.path.join(os.path.dirname(os.path.abspath(model_path)), src)]
    for c in cands:
        if os.path.isfile(c):
            return c
    hint = f" (its metadata names source_file {src!r}, not found)" if src else ""
    raise ModelIOError(
        f"{model_path}: an int8 model needs its fp32 source to compare with; pass --reference SOURCE_MODEL{hint}"
    )


@click.command("verify")
@click.argument("model", type=click.Path())
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(),
    help="Image folder (class subfolders), 'path label' list, IDX file, .npy/.npz, VOC folder or COCO .json.",
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False),
    help="Labels: IDX labels file, .npy, or a class list (one name per line) for folders / VOC.",
)
@click.option("--images", type=click.Path(file_okay=False), help="Image root for a list file or COCO .json.")
@click.option(
    "--reference",
    type=click.Path(),
    help="fp32 source model to compare an int8 .q8 with (default: the .q8's recorded source_file).",
)
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside MODEL).")
@click.option(
    "--metric",
    type=click.Choice(["auto", "top1", "top5", "agreement", "map-voc", "map-coco"]),
    default="auto",
    show_default=True,
    help="Gated metric; auto: top1 with labels, map-voc with boxes, else fp32-vs-int8 top-1 agreement.",
)
@click.option(
    "--max-drop",
    type=float,
    default=None,
    help="Fail (exit 6) when fp32 - int8 exceeds this many percentage points (percent with --relative).",
)
@click.option("--relative", is_flag=True, help="--max-drop is a percentage of the fp32 value, not points.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the JSON report here.")
@click.option("--per-layer", is_flag=True, help="Report SQNR and cosine of every int8 layer vs fp32, worst first.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N samples.")
@click.option("--threads", type=click.IntRange(0), default=0, help="Runtime threads (0: default).")
@click.option(
    "--preset",
    "preset_name",
    default=None,
    help="Preprocessing preset: imagenet-torch, imagenet-tf, caffe-vgg, caffe-imagenet, caffe-ssd-300, fmnist, mnist.",
)
@click.option("--resize", default=None, help="N (shorter side) or HxW.")
@click.option("--crop", default=None, help="Centre crop N or HxW.")
@click.option("--mean", default=None, help="Per-channel mean, output channel order, e.g. 104,117,123.")
@click.option("--std", default=None, help="Per-channel std; for Caffe's (x - mean) * s pass the number 1/s.")
@click.option("--scale", type=float, default=None, help="Multiply pixels (0..255) first, e.g. 0.00392157.")
@click.option("--color", type=click.Choice(["rgb", "bgr", "gray"]), default=None, help="Channel order.")
@click.option("--layout", type=click.Choice(["NCHW", "NHWC"]), default=None)
@click.option(
    "--save-preprocessing",
    is_flag=True,
    help="Store the preprocessing in MODEL's .q8 metadata so later commands reuse it.",
)
@click.option(
    "--fallback-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Accuracy-aware quantization: keep the most harmful layers fp32 until --max-drop holds; "
    "write the best model found here (.q8).",
)
@click.option("--exclude", multiple=True, help="Layers/op types kept fp32 when MODEL is quantized on the fly.")
def command(
    model: str,
    data: str,
    labels: str | None,
    images: str | None,
    reference: str | None,
    prototxt: str | None,
    metric: str,
    max_drop: float | None,
    relative: bool,
    json_path: str | None,
    per_layer: bool,
    batch_size: int,
    limit: int | None,
    threads: int,
    preset_name: str | None,
    resize: str | None,
    crop: str | None,
    mean: str | None,
    std: str | None,
    scale: float | None,
    color: str | None,
    layout: str | None,
    save_preprocessing: bool,
    fallback_out: str | None,
    exclude: tuple[str, ...],
) -> None:
    """Measure the fp32 -> int8 accuracy drop of MODEL on real data.

    MODEL is an int8 .q8 (compared with --reference, or the source it was made from) or a source
    model (quantized on the fly). Exit code 6 when the drop exceeds --max-drop, after the report.

    \b
    convertmodel verify lenet5.q8 --data t10k-images-idx3-ubyte.gz --max-drop 0.1
    convertmodel verify vgg16.caffemodel --data val/ --labels synsets.txt --preset caffe-vgg --per-layer
    """
    from convertmodel.data.datasets import open_dataset
    from convertmodel.verify.report import build_report, json_safe, print_report
    from convertmodel.verify.runner import VerifyOptions, fit_preprocess, run_verify

    st = state()
    t0 = time.perf_counter()
    m = load_model(model, prototxt)
    if m.is_quantized:
        found = _reference_path(model, m, reference)
        ref_path: str | None = found
        fp32, int8 = load_model(found, prototxt), m
        t_quant = 0.0
    else:
        ref_path, fp32 = model, m
        t1 = time.perf_counter()
        int8 = fp32.quantize(exclude=exclude) if fallback_out is None else None
        t_quant = time.perf_counter() - t1
    t_load = time.perf_counter() - t0 - t_quant

    ds = open_dataset(data, labels=labels, images=images)
    flags = {"resize": resize, "crop": crop, "mean": mean, "std": std, "scale": scale, "color": color, "layout": layout}
    pre, explicit = resolve_preprocess(preset_name, flags, m.metadata, ds)
    if not explicit:
        pre = fit_preprocess(pre, fp32.graph.inputs[0].type.shape if fp32.graph.inputs else None, ds)
    opts = VerifyOptions(batch_size=batch_size, limit=limit, metric=metric, threads=threads, per_layer=per_layer)
    show = not (st.quiet or st.json)
    total = len(ds) if limit is None else min(limit, len(ds))
    fb = None
    with progress(show) as bar:
        task = bar.add_task("verify fp32 vs int8", total=total)

        def step(done: int, n: int) -> None:
            bar.update(task, completed=done)

        if fallback_out is not None:
            fb = _fallback(fp32, ds, pre, opts, max_drop, relative, exclude, fallback_out, bar, task)
            int8, result = fb.model, fb.result
        else:
            result = run_verify(fp32, int8, ds, pre, opts, step)
    rep = build_report(
        result,
        model_path=fallback_out or model,
        model=int8,
        reference_path=ref_path,
        reference=fp32,
        data_path=data,
        data_kind=ds.kind,
        preprocessing=pre.to_dict(),
        batch_size=batch_size,
        limit=limit,
        max_drop=max_drop,
        relative=relative,
        extra_timing={"load_seconds": t_load, "quantize_seconds": t_quant},
    )
    if fb is not None:
        rep["fallback"] = fb.as_dict()
    rep = json_safe(rep)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(rep, f, indent=2, sort_keys=True)
            f.write("\n")
    if st.json:
        emit_json(rep)
    elif not st.quiet:
        print_report(rep, console())
    if save_preprocessing:
        _store_preprocessing(model, m, pre.to_json())
    d = rep["drop"]
    if not d["passed"]:
        unit = "%" if relative else " pp"
        value = d["relative_percent"] if relative else d["value"]
        raise AccuracyGateError(
            f"{model}: {result.metric} drop {value:.3f}{unit} on {result.samples} samples of "
            f"{data} exceeds --max-drop {max_drop}{unit}"
        )


def _fallback(
    fp32: Any,
    ds: Any,
    pre: Any,
    opts: Any,
    max_drop: float | None,
    relative: bool,
    exclude: tuple[str, ...],
    out: str,
    bar: Any,
    task: Any,
) -> Any:
    from convertmodel.verify.fallback import accuracy_aware_quantize

    if max_drop is None:
        raise click.BadParameter(
            "--fallback-out needs --max-drop (the budget to fall back to)", param_hint="--max-drop"
        )
    if not out.lower().endswith(".q8"):
        raise click.BadParameter(f"{out}: the fallback model is written as .q8", param_hint="--fallback-out")

    def on_step(s: Any) -> None:
        bar.update(task, description=f"fallback: {len(s.fp32_layers)} fp32 layer(s), drop {s.drop:.3f}")

    fb = accuracy_aware_quantize(
        fp32, ds, pre, opts, max_drop, relative=relative, quantize_options={"exclude": list(exclude)}, on_step=on_step
    )
    meta = dict(fb.model.graph.metadata)
    meta[PREPROCESS_KEY] = pre.to_json()
    meta["fallback_fp32_layers"] = json.dumps(fb.fp32_layers)
    from convertmodel.model import Model

    best = Model(fb.model.graph.replace(metadata=meta, infer=False), fb.model.source)
    best.save(out)  # saved even when the budget is not met: the best model found
    fb.model = best
    return fb


def _store_preprocessing(path: str, model: Any, spec: str) -> None:
    from convertmodel.model import Model

    if not path.lower().endswith(".q8"):
        raise click.BadParameter(
            f"{path}: preprocessing is stored in .q8 files only", param_hint="--save-preprocessing"
        )
    meta = dict(model.graph.metadata)
    meta[PREPROCESS_KEY] = spec
    Model(model.graph.replace(metadata=meta, infer=False), path).save(path)
