"""``convertmodel verify``: the fp32 -> int8 accuracy drop on real data, as a CI gate (exit 6 when over budget)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import click

from convertmodel.cli.common import (
    BUDGET,
    console,
    finish,
    load_model,
    make_quantize_options,
    model_argument,
    model_bytes,
    progress,
    quantize_options,
    reader_options,
    shows_progress,
    threads_option,
)
from convertmodel.cli.engine_options import engine_options, fail_on_unreadable, make_engine, model_refs, stopping
from convertmodel.errors import AccuracyGateError, UsageError
from convertmodel.fsutil import refuse_overwrite


@click.command("verify")
@model_argument("model")
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
    type=click.Choice(["auto", "top1", "top5", "agreement", "det-agreement", "map-voc", "map-coco"]),
    default="auto",
    show_default=True,
    help="Gated metric; auto: top1 with labels, map-voc with boxes, a detector's box agreement "
    "(det-agreement), else fp32-vs-int8 top-1 agreement.",
)
@click.option(
    "--max-drop",
    type=BUDGET,
    default=None,
    help="Fail (exit 6) when fp32 - int8 exceeds this many percentage points (percent with --relative).",
)
@click.option("--relative", is_flag=True, help="--max-drop is a percentage of the fp32 value, not points.")
@click.option("--per-layer", is_flag=True, help="Report SQNR and cosine of every int8 layer vs fp32, worst first.")
@click.option("--strict", is_flag=True, help="Refuse data with NaN/Inf input values (default: a warning with counts).")
@click.option(
    "--batch",
    "--batch-size",
    "batch_size",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Samples per run (--batch-size: the older name); a model declared with a fixed batch runs them in pieces "
    "unless --input-shape makes its batch N.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N samples.")
@threads_option
@engine_options
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
@click.option(
    "--min-int8",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="--fallback-out: the budget only counts as met with at least this share of the int8 weights left int8 "
    "(else exit 6); 0 accepts any fallback.",
)
@quantize_options
@reader_options
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
    min_int8: float,
    exclude: tuple[str, ...],
    compat: str | None,
    input_levels: int | None,
    strict: bool = False,
    engine: str = "local",
    master: str | None = None,
    partitions: int | None = None,
    spark_conf: tuple[str, ...] = (),
) -> None:
    """Measure the fp32 -> int8 accuracy drop of MODEL on real data.

    MODEL is an int8 .q8 (compared with --reference, or the source it was made from) or a source
    model (quantized on the fly). Exit code 6 when the drop exceeds --max-drop, after the report.

    \b
    convertmodel verify lenet5.q8 --data t10k-images-idx3-ubyte.gz --max-drop 0.1
    convertmodel verify vgg16.caffemodel --data val/ --labels synsets.txt --preset caffe-vgg --per-layer
    convertmodel verify lenet5.q8 --data t10k-images-idx3-ubyte.gz --engine spark --master spark://host:7077
    """
    from convertmodel.runtime.threads import limit_threads
    from convertmodel.serialize.reader import check_crcs_if_q8
    from convertmodel.verify.inputs import open_verify_data
    from convertmodel.verify.reference import find_reference
    from convertmodel.verify.runner import VerifyOptions, run_verify

    if fallback_out:  # before any work: never write a model over an input (--report is checked likewise)
        refuse_overwrite(fallback_out, [model, data, labels, reference, prototxt], "output")
    eng = make_engine(engine, master, partitions, spark_conf)
    if fallback_out is not None and eng.name != "local":
        raise UsageError("--fallback-out runs on the local engine only; drop --engine spark")
    t0 = time.perf_counter()
    m = load_model(model, prototxt)
    check_crcs_if_q8(model)  # a flipped byte in a .q8's tensors: exit 5 naming the tensor, before any work
    qopts = make_quantize_options(exclude, compat, input_levels)
    ref_info = None
    if m.is_quantized:
        ref_info = find_reference(model, m.metadata, reference)
        ref_path: str = ref_info.path
        if ref_info.warning():
            click.echo(ref_info.warning(), err=True)
        fp32, int8 = load_model(ref_path, prototxt), m
        check_crcs_if_q8(ref_path)
        t_quant = 0.0
    else:
        ref_path, fp32 = model, m
        t1 = time.perf_counter()
        int8 = fp32.quantize(qopts) if fallback_out is None else None
        t_quant = time.perf_counter() - t1
    t_load = time.perf_counter() - t0 - t_quant
    pre_from: list[str] = []
    flags = {"resize": resize, "crop": crop, "mean": mean, "std": std, "scale": scale, "color": color, "layout": layout}
    ds, pre = open_verify_data(
        data,
        fp32,
        labels=labels,
        images=images,
        preset_name=preset_name,
        flags=flags,
        model_meta=m.metadata,
        strict=strict,
        require_known=True,
        origin=pre_from,
    )
    opts = VerifyOptions(batch_size=batch_size, limit=limit, metric=metric, threads=threads, per_layer=per_layer)
    if fallback_out is not None and max_drop is None:
        raise click.BadParameter(
            "--fallback-out needs --max-drop (the budget to fall back to)", param_hint="--max-drop"
        )
    with limit_threads(threads):
        if fallback_out is not None and max_drop is not None:
            fb, result = _fallback(fp32, ds, pre, opts, max_drop, relative, qopts, fallback_out, min_int8, ref_path)
            int8 = fb.model
        else:
            total = len(ds) if limit is None else min(limit, len(ds))
            with progress(shows_progress()) as bar, stopping(eng):
                task = bar.add_task(f"verify fp32 vs int8 ({eng.name})", total=total)
                refs = model_refs(fp32, ref_path, int8, model if m.is_quantized else None)
                result = run_verify(*refs, ds, pre, opts, lambda done, n: bar.update(task, completed=done), engine=eng)
            fb = None
    where = Where(fallback_out or model, ref_path, data, ds.kind, pre, batch_size, limit, max_drop, relative)
    rep = build_verify_report(result, where, int8, fp32, fb, {"load_seconds": t_load, "quantize_seconds": t_quant})
    rep["preprocessing_from"] = pre_from[0]
    if ref_info is not None and rep.get("reference"):
        rep["reference"].update(ref_info.to_dict())
    _end(rep)
    if save_preprocessing:
        _store_preprocessing(model, m, pre.to_json())
    gate(rep, model, data, result, max_drop, relative)
    fallback_gate(rep, fallback_out)
    fail_on_unreadable(result.unreadable, result.samples + len(result.unreadable), data)


@dataclass(frozen=True)
class Where:
    """What a verify report says it measured: which files, which data, which budget."""

    model_path: str
    reference_path: str | None
    data: str
    data_kind: str
    pre: Any
    batch_size: int
    limit: int | None
    max_drop: float | None
    relative: bool


def build_verify_report(
    result: Any, w: Where, int8: Any, fp32: Any, fb: Any, timing: dict[str, float]
) -> dict[str, Any]:
    from convertmodel.verify.report import build_report, json_safe

    rep = build_report(
        result,
        model_path=w.model_path,
        model=int8,
        reference_path=w.reference_path,
        reference=fp32,
        data_path=w.data,
        data_kind=w.data_kind,
        preprocessing=w.pre.to_dict(),
        batch_size=w.batch_size,
        limit=w.limit,
        max_drop=w.max_drop,
        relative=w.relative,
        extra_timing=timing,
    )
    if fb is not None:
        rep["fallback"] = fb.as_dict()
    return json_safe(rep)  # type: ignore[no-any-return]


def _end(rep: dict[str, Any]) -> None:
    """The table, --json and --report FILE (written by finish, atomically), before any gate exit."""
    from convertmodel.verify.report import print_report

    finish(rep, lambda r: print_report(r, console()))


def gate(rep: dict[str, Any], model: str, data: str, result: Any, max_drop: float | None, relative: bool) -> None:
    """AccuracyGateError (exit 6) when the report's drop is over budget; after the report was printed."""
    d = rep["drop"]
    if d["passed"] is False:
        unit = "%" if relative else " pp"
        value = d["relative_percent"] if relative else d["value"]
        raise AccuracyGateError(
            f"{model}: {result.metric} drop {value:.3f}{unit} on {result.samples} samples of "
            f"{data} exceeds --max-drop {max_drop}{unit}"
        )


def fallback_gate(rep: dict[str, Any], out: str | None) -> None:
    """AccuracyGateError (exit 6) when the budget was met only by giving up on int8 (below --min-int8)."""
    fb = rep.get("fallback")
    if fb and fb["budget_met"] and not fb["enough_int8"]:
        raise AccuracyGateError(
            f"{out}: the budget was met only by keeping {len(fb['fp32_layers'])} of {fb['layers']} layer(s) fp32: "
            f"{100 * fb['int8_weight_fraction']:.1f}% of the int8 weights stay int8, below --min-int8 "
            f"{fb['min_int8']} (pass --min-int8 0 to accept it)"
        )


def _fallback(
    fp32: Any,
    ds: Any,
    pre: Any,
    opts: Any,
    max_drop: float,
    relative: bool,
    qopts: Any,
    out: str,
    min_int8: float = 0.5,
    source: str | None = None,
) -> tuple[Any, Any]:
    """The accuracy-aware search; the best model found is saved to ``out`` even when the budget is missed."""
    from convertmodel.verify.fallback import accuracy_aware_quantize

    if not out.lower().endswith((".q8", ".bigdl")):
        raise click.BadParameter(f"{out}: the fallback model is written as .q8 or .bigdl", param_hint="--fallback-out")
    total = len(ds) if opts.limit is None else min(opts.limit, len(ds))
    with progress(shows_progress()) as bar:
        task = bar.add_task("verify fp32 vs int8", total=total)

        def on_step(s: Any) -> None:
            bar.update(task, description=f"fallback: {len(s.fp32_layers)} fp32 layer(s), drop {s.drop:.3f}")

        fb = accuracy_aware_quantize(
            fp32, ds, pre, opts, max_drop, relative=relative, quantize_options=qopts, on_step=on_step, min_int8=min_int8
        )
    fb.model = fb.model_with_record(pre)
    fb.model.save(out)
    fb.file_bytes = os.path.getsize(out)
    fb.source_bytes = model_bytes(source) if source and os.path.exists(source) else None
    return fb, fb.result


def calibrated_quantize(
    src: str,
    dst: str,
    prototxt: str | None,
    qopts: Any,
    data: str,
    labels: str | None,
    preset_name: str | None,
    max_drop: float,
    threads: int,
    min_int8: float = 0.5,
) -> None:
    """``quantize --calib``: the accuracy-aware search with every quantize option, its report and gate."""
    from convertmodel.runtime.threads import limit_threads
    from convertmodel.verify.inputs import open_verify_data
    from convertmodel.verify.runner import VerifyOptions

    t0 = time.perf_counter()
    fp32 = load_model(src, prototxt)
    t_load = time.perf_counter() - t0
    pre_from: list[str] = []
    ds, pre = open_verify_data(data, fp32, labels=labels, preset_name=preset_name, require_known=True, origin=pre_from)
    opts = VerifyOptions(batch_size=64, threads=threads)
    with limit_threads(threads):
        fb, result = _fallback(fp32, ds, pre, opts, max_drop, False, qopts, dst, min_int8, src)
    where = Where(dst, src, data, ds.kind, pre, opts.batch_size, None, max_drop, False)
    rep = build_verify_report(result, where, fb.model, fp32, fb, {"load_seconds": t_load, "quantize_seconds": 0.0})
    rep["preprocessing_from"] = pre_from[0]
    _end(rep)
    gate(rep, src, data, result, max_drop, False)
    fallback_gate(rep, dst)


def _store_preprocessing(path: str, model: Any, spec: str) -> None:
    from convertmodel.verify.inputs import PREPROCESS_KEY

    if not path.lower().endswith(".q8"):
        raise click.BadParameter(
            f"{path}: preprocessing is stored in .q8 files only", param_hint="--save-preprocessing"
        )
    model.with_metadata({PREPROCESS_KEY: spec}).save(path)
