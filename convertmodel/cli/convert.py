"""``convertmodel convert``: read any supported model, write .q8 (fp32) or Caffe."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from convertmodel.cli.common import (
    console,
    finish,
    human_bytes,
    io_rows,
    load_model,
    model_argument,
    model_bytes,
    ops_rows,
    reader_options,
)
from convertmodel.fsutil import refuse_overwrite


@click.command("convert")
@model_argument("src", in_alias=True)
@click.option("--out", "dst", required=True, type=click.Path(dir_okay=False), help="Output: .q8 or .caffemodel.")
@click.option(
    "--prototxt",
    type=click.Path(dir_okay=False),
    help="Caffe: the deploy .prototxt (found beside the .caffemodel when omitted).",
)
@click.option(
    "--prototxt-out",
    type=click.Path(dir_okay=False),
    help="Caffe output: where to write the .prototxt (default: OUT with .prototxt).",
)
@reader_options
def command(src: str, dst: str, prototxt: str | None, prototxt_out: str | None) -> None:
    """Convert a model to convertmodel's .q8 file (fp32 weights) or to Caffe.

    \b
    convertmodel convert model.onnx --out model.q8
    convertmodel convert net.caffemodel --prototxt deploy.prototxt --out net.q8
    convertmodel convert model.onnx --out model.caffemodel
    """
    for out in (dst, prototxt_out):
        if out:
            refuse_overwrite(out, [src, prototxt], "converted model")
    t0 = time.perf_counter()
    model = load_model(src, prototxt)
    from convertmodel.serialize.reader import check_crcs_if_q8

    check_crcs_if_q8(src)  # a .q8 input: every tensor's CRC-32 before writing it anywhere (exit 5)
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.save(dst, **({"prototxt_out": prototxt_out} if prototxt_out else {}))
    t_write = time.perf_counter() - t1
    g = model.graph
    report = {
        "input": src,
        "output": dst,
        "format": g.metadata.get("source_format", "?"),
        "nodes": len(g.nodes),
        "parameters": g.param_count(),
        "input_bytes": model_bytes(src),
        "output_bytes": os.path.getsize(dst),
        "read_seconds": round(t_read, 3),
        "write_seconds": round(t_write, 3),
        "ops": {k: c for k, c, _ in ops_rows(g)},
        "inputs": [{"name": n, "type": t} for kind, n, t in io_rows(g) if kind == "input"],
        "outputs": [{"name": n, "type": t} for kind, n, t in io_rows(g) if kind == "output"],
    }
    finish(report, _print)


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"{os.path.basename(report['input'])} -> {os.path.basename(report['output'])}", show_header=False)
    t.add_row("source format", report["format"])
    t.add_row("nodes", str(report["nodes"]))
    t.add_row("parameters", f"{report['parameters']:,}")
    for kind in ("input", "output"):
        for v in report[f"{kind}s"]:
            t.add_row(kind, f"{v['name']}: {v['type']}")
    t.add_row("size", f"{human_bytes(report['input_bytes'])} -> {human_bytes(report['output_bytes'])}")
    t.add_row("time", f"read {report['read_seconds']:.2f} s, write {report['write_seconds']:.2f} s")
    console().print(t)
