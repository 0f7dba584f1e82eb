"""``convertmodel convert``: read any supported model, write .q8 (fp32) or Caffe."""

from __future__ import annotations

import os
import time

import click

from convertmodel.cli.common import console, emit_json, human_bytes, io_rows, load_model, ops_rows, state


@click.command("convert")
@click.option("--in", "src", required=True, type=click.Path(), help="Source model file (or SavedModel directory).")
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
def command(src: str, dst: str, prototxt: str | None, prototxt_out: str | None) -> None:
    """Convert a model to convertmodel's .q8 file (fp32 weights) or to Caffe.

    \b
    convertmodel convert --in model.onnx --out model.q8
    convertmodel convert --in net.caffemodel --prototxt deploy.prototxt --out net.q8
    convertmodel convert --in model.onnx --out model.caffemodel
    """
    st = state()
    t0 = time.perf_counter()
    model = load_model(src, prototxt)
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    if dst.lower().endswith(".caffemodel"):
        from convertmodel.writers import write_model

        write_model(model.graph, dst, prototxt_out=prototxt_out)
    else:
        model.save(dst)
    t_write = time.perf_counter() - t1
    g = model.graph
    report = {
        "input": src,
        "output": dst,
        "format": g.metadata.get("source_format", "?"),
        "nodes": len(g.nodes),
        "parameters": g.param_count(),
        "input_bytes": os.path.getsize(src),
        "output_bytes": os.path.getsize(dst),
        "read_seconds": round(t_read, 3),
        "write_seconds": round(t_write, 3),
        "ops": {k: c for k, c, _ in ops_rows(g)},
        "inputs": [{"name": n, "type": t} for kind, n, t in io_rows(g) if kind == "input"],
        "outputs": [{"name": n, "type": t} for kind, n, t in io_rows(g) if kind == "output"],
    }
    if st.json:
        emit_json(report)
        return
    if st.quiet:
        return
    from rich.table import Table

    c = console()
    t = Table(title=f"{os.path.basename(src)} -> {os.path.basename(dst)}", show_header=False)
    t.add_row("source format", report["format"])
    t.add_row("nodes", str(report["nodes"]))
    t.add_row("parameters", f"{report['parameters']:,}")
    for kind, n, ty in io_rows(g):
        t.add_row(kind, f"{n}: {ty}")
    t.add_row("size", f"{human_bytes(report['input_bytes'])} -> {human_bytes(report['output_bytes'])}")
    t.add_row("time", f"read {t_read:.2f} s, write {t_write:.2f} s")
    c.print(t)
