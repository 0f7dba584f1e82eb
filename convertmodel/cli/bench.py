"""``convertmodel bench``: fp32 against int8 side by side (the logic is :mod:`convertmodel.bench`)."""

from __future__ import annotations

from typing import Any

import click

from convertmodel.cli.common import (
    console,
    finish,
    human_bytes,
    model_argument,
    reader_kwargs,
    reader_options,
    shows_progress,
    threads_option,
)


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    c = console()
    t = Table(
        title=f"{report['model']}: batch {report['batch']}, {report['threads']} threads, int8 ISA {report['isa']}"
    )
    for col in ("", "img/s", "p50 ms", "p90 ms", "p99 ms", "iterations", "weights"):
        t.add_column(col, justify="right" if col else "left")
    for k, r in report["results"].items():
        t.add_row(
            k,
            f"{r['img_per_s']:.2f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            str(r["iterations"]),
            human_bytes(report["param_bytes"][k]) if k in report["param_bytes"] else "",
        )
    c.print(t)
    if "speedup" in report:
        c.print(f"int8 speedup {report['speedup']:.2f}x (median latency); weights {report['size_ratio']:.2f}x smaller")
    for k, v in report.get("vs_onnxruntime", {}).items():
        c.print(f"ours / onnxruntime {k}: {v:.2f}x throughput (median latency, same alternating run)")
    against = report.get("against", {})
    if "int8_scheme" in against or "int8_error" in against:
        c.print(f"onnxruntime {against['version']} int8: {against.get('int8_scheme') or against['int8_error']}")
    for k, rows in report.get("per_layer", {}).items():
        lt = Table(title=f"per layer: {k} (median ms)")
        for col in ("node", "op", "ms", "%"):
            lt.add_column(col, justify="right" if col in ("ms", "%") else "left")
        total = sum(r["ms"] for r in rows) or 1.0
        for r in rows:
            lt.add_row(r["node"], r["op"], f"{r['ms']:.2f}", f"{100 * r['ms'] / total:.1f}")
        c.print(lt)
    if "note" in report:
        c.print(report["note"])


@click.command("bench")
@model_argument("model_path")
@threads_option
@click.option("--batch", default=1, show_default=True, help="Batch size (the model's symbolic batch dimension).")
@click.option("--warmup", default=2, show_default=True, help="Untimed iterations of each side first.")
@click.option("--iterations", type=int, help="Timed iterations of each side (default 10, or use --seconds).")
@click.option("--seconds", type=float, help="Time budget for the timed iterations instead of --iterations.")
@click.option("--per-layer", is_flag=True, help="Also time every node of both sides (a few extra runs).")
@click.option(
    "--reference",
    "reference",
    type=click.Path(),
    help="fp32 source model to compare an int8 .q8 MODEL against.",
)
@click.option("--image-size", default=224, show_default=True, help="Input size of zoo: models.")
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside MODEL).")
@click.option(
    "--against",
    type=click.Choice(["onnxruntime"]),
    help="Also run the same model in onnxruntime fp32 and static int8 (QDQ per-channel) in the same run.",
)
@reader_options
def command(
    model_path: str,
    threads: int,
    batch: int,
    warmup: int,
    iterations: int | None,
    seconds: float | None,
    per_layer: bool,
    reference: str | None,
    image_size: int,
    prototxt: str | None,
    against: str | None,
) -> None:
    """Benchmark MODEL in fp32 and int8 side by side (alternating runs, same input).

    MODEL is any readable source model (quantized on the fly, BigDL local-window scheme), a .q8
    file, or a zoo topology with random weights (zoo:vgg16, zoo:vgg19). An int8 .q8 file is
    benchmarked int8-only unless --reference gives its fp32 source. --input-shape fixes the inputs
    of both sides (a dynamic dimension other than the batch needs it). Reports throughput (img/s),
    latency p50/p90/p99, the int8 speedup, the weight size ratio, the ISA path and threads.
    """
    from convertmodel.bench import bench

    show = shows_progress()
    err = console(stderr=True)

    def say(msg: str) -> None:
        if show:
            err.print(f"[bench] {msg}", end="\r" if err.is_terminal else "\n", markup=False)

    report = bench(
        model_path,
        reference=reference,
        batch=batch,
        threads=threads,
        warmup=warmup,
        iterations=iterations,
        seconds=seconds,
        per_layer=per_layer,
        image_size=image_size,
        progress=say,
        against=against,
        # the TensorFlow flags reach the reference's reader as well (like verify's); --input-shape goes to both
        reference_options={k: v for k, v in reader_kwargs(reference).items() if k != "input_shapes"}
        if reference
        else None,
        **reader_kwargs(model_path, prototxt),
    )
    finish(report, _print)
