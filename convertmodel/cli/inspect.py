"""``convertmodel inspect``: ops, parameters, sizes, quantization state and unsupported ops."""

from __future__ import annotations

import os
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
from convertmodel.cli.reports import int8_backend
from convertmodel.errors import UnsupportedOpError


@click.command("inspect")
@model_argument("model_path")
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside MODEL).")
@click.option("--graph", "show_graph", is_flag=True, help="Also print the IR, one line per node.")
@click.option(
    "--check",
    "check_crc",
    is_flag=True,
    help="Verify the CRC-32 of every tensor of a .q8 (exit 5 naming the first corrupt tensor).",
)
@reader_options
def command(model_path: str, prototxt: str | None, show_graph: bool, check_crc: bool = False) -> None:
    """Show what MODEL contains: inputs, outputs, ops, parameters, size, int8 layers, unsupported ops.

    Exits 3 (listing every unsupported op type) when the model cannot be converted.
    """
    try:
        model = load_model(model_path, prototxt)
    except UnsupportedOpError as e:
        finish({"model": model_path, "supported": False, "unsupported": e.unsupported}, _print_unsupported)
        raise
    crc_checked = _check_crcs(model_path) if check_crc else None
    g = model.graph
    size = model_bytes(model_path)
    breakdown = None
    if model.is_quantized:
        from convertmodel.serialize.breakdown import size_breakdown

        breakdown = size_breakdown(g)
    fmt = _file_format(model_path, g)
    params, window = _param_counts(g)
    report: dict[str, Any] = {
        "model": model_path,
        "supported": True,
        "format": fmt,
        "source_format": g.metadata.get("source_format"),
        "name": g.name,
        "file_bytes": size,
        "parameters": params,
        "window_parameters": window,
        "nodes": len(g.nodes),
        "quantized": model.is_quantized,
        "int8_kernels": int8_backend(),
        "inputs": [{"name": n, "type": t} for k, n, t in io_rows(g) if k == "input"],
        "outputs": [{"name": n, "type": t} for k, n, t in io_rows(g) if k == "output"],
        "ops": [{"op": op, "count": c, "parameters": p} for op, c, p in ops_rows(g)],
        "metadata": dict(g.metadata),
    }
    if breakdown is not None:
        report["size_breakdown"] = breakdown
    if crc_checked is not None:
        report["crc_checked"] = crc_checked
    levels = _layer_levels(model)
    if levels:
        report["layer_levels"] = levels
    finish(report, lambda r: _print(r, g if show_graph else None))


def _check_crcs(path: str) -> int:
    """--check: every tensor's CRC-32 (FormatError, exit 5, naming the tensor); .q8 files only."""
    from convertmodel.readers import detect_format
    from convertmodel.serialize.reader import check_crcs

    if detect_format(path) != "q8":
        raise click.BadParameter(f"{path}: only .q8 files carry tensor checksums", param_hint="--check")

    return check_crcs(path)


def _file_format(path: str, g: Any) -> str:
    """The format of the file itself (q8 for a .q8, whatever it was converted from)."""
    from convertmodel.readers import detect_format

    try:
        return detect_format(path)
    except Exception:
        return str(g.metadata.get("source_format", "?"))


def _param_counts(g: Any) -> tuple[int, int]:
    """(parameters of the original model, window parameters): a .q8's per-layer window vectors (inputs 2 and 3
    of QConv/QGemm) are the scheme's, not the model's."""
    from convertmodel.quant.ops import is_quantized_node

    window = {n.inputs[i] for n in g.nodes if is_quantized_node(n) for i in (2, 3) if len(n.inputs) > i and n.inputs[i]}
    w = sum(int(g.constants[k].size) for k in window if k in g.constants)
    return int(g.param_count()) - w, w


def _layer_levels(model: Any) -> list[dict[str, Any]]:
    """Each int8 layer's levels and AVX2 kernel, for a model whose layers do not all share the levels
    (``quantize --levels auto``); empty otherwise."""
    from convertmodel.quant.ops import quantized_nodes

    info = model.quantization
    if info is None or not info.layer_levels:
        return []
    rows = []
    for n in quantized_nodes(model.graph):
        lv = info.layer_levels.get(n.name)
        levels = int(n.attrs.get("input_levels", lv.input if lv else info.input_levels))
        weight = lv.weight if lv else info.weight_levels
        rows.append(
            {
                "layer": n.name,
                "op": n.op_type,
                "levels": f"{levels}x{weight}",
                "avx2_kernel": _avx2_kernel(model.graph.constants.get(n.inputs[1]), levels),
            }
        )
    return rows


def _avx2_kernel(wq: Any, levels: int) -> str | None:
    """The kernel the AVX2 path runs for these weights and levels (None without the native extension)."""
    from convertmodel.runtime import native

    if wq is None or not native.available():
        return None
    try:
        return native.kernel_name(wq, levels, "avx2")
    except Exception:  # an ISA this build lacks: nothing to show
        return None


def _print_unsupported(report: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"{report['model']}: unsupported op types")
    t.add_column("op type")
    t.add_column("count", justify="right")
    t.add_column("first nodes")
    for op, names in sorted(report["unsupported"].items()):
        t.add_row(op, str(len(names)), ", ".join(names[:3]))
    console().print(t)


def _print(report: dict[str, Any], graph: Any) -> None:
    """The tables; ``graph`` is given with --graph (its IR dump follows)."""
    from rich.table import Table

    c = console()
    meta = report["metadata"]
    head = Table(title=os.path.basename(report["model"]), show_header=False)
    src = report.get("source_format")
    head.add_row("format", report["format"] + (f" (source format {src})" if src and src != report["format"] else ""))
    head.add_row("file size", human_bytes(report["file_bytes"]))
    head.add_row("parameters", f"{report['parameters']:,}")
    if report.get("window_parameters"):
        head.add_row("window parameters", f"{report['window_parameters']:,} (int8 input windows, not model weights)")
    head.add_row("nodes", str(report["nodes"]))
    head.add_row("weights", "int8 (BigDL local-window)" if report["quantized"] else "fp32")
    head.add_row("int8 kernels", report["int8_kernels"])
    for kind in ("input", "output"):
        for v in report[f"{kind}s"]:
            head.add_row(kind, f"{v['name']}: {v['type']}")
    for k in ("producer", "source_file", "source_sha256", "opset"):
        if k in meta:
            head.add_row(k, meta[k])
    c.print(head)
    ops = Table(title="ops")
    ops.add_column("op type")
    ops.add_column("count", justify="right")
    ops.add_column("parameters", justify="right")
    for row in report["ops"]:
        ops.add_row(row["op"], str(row["count"]), f"{row['parameters']:,}")
    c.print(ops)
    if "size_breakdown" in report:
        _print_breakdown(c, report["size_breakdown"])
    if report.get("layer_levels"):
        lv = Table(title="levels per layer (input x weight)")
        for col in ("layer", "op", "levels", "AVX2 kernel"):
            lv.add_column(col)
        for row in report["layer_levels"]:
            lv.add_row(row["layer"], row["op"], row["levels"], row["avx2_kernel"] or "-")
        c.print(lv)
    if graph is not None:
        from convertmodel.ir.dump import dump

        if c.is_terminal:
            c.print(dump(graph), markup=False)
        else:  # piped: one line per node, never wrapped to a terminal width
            click.echo(dump(graph))


def _print_breakdown(c: Any, breakdown: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="size breakdown")
    t.add_column("part")
    t.add_column("bytes", justify="right")
    t.add_column("share", justify="right")
    parts = breakdown.get("parts", {})
    total = sum(int(v) for v in parts.values()) or 1
    for name, nbytes in parts.items():
        t.add_row(str(name), human_bytes(int(nbytes)), f"{100 * int(nbytes) / total:.1f}%")
    c.print(t)
    kept = breakdown.get("fp32_kept", [])
    if kept:
        k = Table(title="fp32 tensors left unquantized")
        k.add_column("tensor")
        k.add_column("bytes", justify="right")
        k.add_column("why")
        for row in kept:
            k.add_row(str(row.get("name")), human_bytes(int(row.get("bytes", 0))), str(row.get("reason", "")))
        c.print(k)
