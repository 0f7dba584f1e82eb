"""``convertmodel quantize``: any supported model -> int8 .q8 (BigDL 0.3 local-window scheme)."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from convertmodel.cli.common import (
    BUDGET,
    console,
    finish,
    human_bytes,
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
from convertmodel.cli.levels import check_levels_args, levels_options
from convertmodel.fsutil import refuse_overwrite


def _fp32_bytes(graph: Any) -> int:
    return int(sum(a.nbytes for a in graph.constants.values()))


@click.command("quantize")
@model_argument("src", in_alias=True)
@click.option(
    "--out", "dst", required=True, type=click.Path(dir_okay=False), help="Output .q8 (or BigDL-quantized .bigdl) file."
)
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside --in).")
@quantize_options
@click.option(
    "--calib",
    type=click.Path(exists=True),
    help="Accuracy-aware quantization: data (any `verify --data` form) on which layers that cost accuracy fall "
    "back to fp32, one at a time, until --max-drop holds.",
)
@click.option("--calib-labels", type=click.Path(dir_okay=False), help="Labels for --calib (as `verify --labels`).")
@click.option("--max-drop", type=BUDGET, help="With --calib: the accuracy budget in percentage points.")
@click.option("--preset", "preset_name", help="With --calib: preprocessing preset (see `verify --help`).")
@click.option(
    "--min-int8",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="With --calib: the budget only counts as met with at least this share of the int8 weights left int8 "
    "(else exit 6); 0 accepts any fallback.",
)
@levels_options
@threads_option
@reader_options
def command(
    src: str,
    dst: str,
    prototxt: str | None,
    exclude: tuple[str, ...],
    compat: str | None,
    input_levels: int | None,
    calib: str | None,
    calib_labels: str | None,
    max_drop: float | None,
    preset_name: str | None,
    threads: int,
    min_int8: float = 0.5,
    levels_mode: str = "uniform",
    sqnr_floor: float | None = None,
) -> None:
    """Quantize a model to int8 and write it as .q8.

    Conv and fully connected layers with constant weights get int8 weights (one symmetric
    scale per output channel) and per-patch input windows computed at run time; everything
    else stays fp32 (`convertmodel inspect OUT` shows what and why).

    \b
    convertmodel quantize vgg16.onnx --out vgg16.q8
    convertmodel quantize net.caffemodel --out net.q8 --exclude fc8 --compat bigdl
    convertmodel quantize lenet5.onnx --out lenet5.q8 --calib t10k-images-idx3-ubyte.gz --max-drop 0.1
    convertmodel quantize lenet5.onnx --out lenet5.q8 --calib t10k-images-idx3-ubyte.gz --levels auto

    With --calib the best model found is always written, and the exit code is 6 when even that
    misses the budget (the report says which layers fell back and what it cost).
    """
    if not dst.lower().endswith((".q8", ".bigdl")):
        raise click.BadParameter(
            f"{dst}: the quantized model is written as .q8 or as a BigDL-quantized .bigdl; use an OUT ending in "
            ".q8 or .bigdl",
            param_hint="--out",
        )
    check_levels_args(levels_mode, sqnr_floor, calib, compat, input_levels, dst)
    if levels_mode != "auto" and (calib is None) != (max_drop is None):
        raise click.BadParameter("--calib and --max-drop go together", param_hint="--calib/--max-drop")
    refuse_overwrite(dst, [src, prototxt, calib, calib_labels], "quantized model")
    qopts = make_quantize_options(exclude, compat, input_levels)
    if levels_mode == "auto" and calib is not None:
        from convertmodel.cli.levels import auto_levels_quantize

        auto_levels_quantize(
            src, dst, prototxt, qopts, calib, calib_labels, preset_name, max_drop, sqnr_floor, threads, min_int8
        )
        return
    if calib is not None and max_drop is not None:
        from convertmodel.cli.verify import calibrated_quantize

        calibrated_quantize(src, dst, prototxt, qopts, calib, calib_labels, preset_name, max_drop, threads, min_int8)
        return
    t0 = time.perf_counter()
    model = load_model(src, prototxt)
    t_read = time.perf_counter() - t0
    g = model.graph
    n_layers = sum(1 for n in g.nodes if n.domain == "" and n.op_type in ("Conv", "Gemm", "MatMul"))
    t1 = time.perf_counter()
    with progress(shows_progress() and n_layers >= 8) as bar:
        task = bar.add_task("quantizing", total=n_layers)

        def step(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=f"quantizing {name}")

        qmodel = model.quantize(qopts, progress=step)
    t_quant = time.perf_counter() - t1
    t2 = time.perf_counter()
    qmodel.save(dst)  # atomic: the .q8 writer writes a temp file and renames it
    t_write = time.perf_counter() - t2
    finish(_report(src, dst, g, qmodel, t_read, t_quant, t_write), _print)


def _report(src: str, dst: str, g: Any, q: Any, t_read: float, t_quant: float, t_write: float) -> dict[str, Any]:
    info = q.quantization
    out_bytes = os.path.getsize(dst)
    fp32 = _fp32_bytes(g)
    return {
        "input": src,
        "output": dst,
        "scheme": info.scheme,
        "compat": info.compat,
        "input_levels": info.input_levels,
        "weight_levels": info.weight_levels,
        "excluded": list(info.excluded),
        "layers_quantized": info.layers_quantized,
        "quantized_by_op": dict(info.quantized),
        "layers_kept_fp32": {k: {"op": v.op, "reason": v.reason} for k, v in info.kept.items()},
        "fused_relu": info.fused_relu,
        "folded_norm": info.folded,
        "fp32_weight_bytes": fp32,
        "input_bytes": model_bytes(src),
        "output_bytes": out_bytes,
        "ratio": round(fp32 / out_bytes, 3) if out_bytes else None,
        "read_seconds": round(t_read, 3),
        "quantize_seconds": round(t_quant, 3),
        "write_seconds": round(t_write, 3),
    }


def _print(r: dict[str, Any]) -> None:
    from rich.table import Table

    c = console()
    t = Table(title=f"{os.path.basename(r['input'])} -> {os.path.basename(r['output'])}", show_header=False)
    mode = f"{r['scheme']}, inputs {r['input_levels']} levels, weights {r['weight_levels']} levels"
    t.add_row("scheme", mode + (f" (compat {r['compat']})" if r["compat"] else ""))
    by_op = ", ".join(f"{k} {v}" for k, v in sorted(r["quantized_by_op"].items()))
    t.add_row("layers quantized", f"{r['layers_quantized']}" + (f" ({by_op})" if by_op else ""))
    t.add_row("layers kept fp32", str(len(r["layers_kept_fp32"])))
    t.add_row("fused ReLU / folded norms", f"{r['fused_relu']} / {r['folded_norm']}")
    t.add_row(
        "size",
        f"{human_bytes(r['fp32_weight_bytes'])} fp32 weights -> {human_bytes(r['output_bytes'])} "
        f"({os.path.splitext(r['output'])[1]}, {r['ratio']}x smaller)",
    )
    t.add_row(
        "time",
        f"read {r['read_seconds']:.2f} s, quantize {r['quantize_seconds']:.2f} s, write {r['write_seconds']:.2f} s",
    )
    c.print(t)
    if r["layers_kept_fp32"]:
        k = Table(title="layers kept fp32")
        k.add_column("layer")
        k.add_column("op")
        k.add_column("why")
        for name, v in r["layers_kept_fp32"].items():
            k.add_row(name, str(v.get("op", "")), str(v.get("reason", "")))
        c.print(k)
