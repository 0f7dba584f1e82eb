"""Helpers shared by the CLI commands: output (rich tables or JSON), atomic output paths."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def state(ctx: click.Context | None = None) -> Any:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    return root.obj


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=_default)
    sys.stdout.write("\n")


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def progress(enabled: bool) -> Any:
    """A rich progress bar on stderr (disabled by --quiet/--json or when stderr is not a TTY)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        disable=not enabled,
        transient=True,
    )


def load_model(path: str, prototxt: str | None = None) -> Any:
    """convertmodel.load with the reader options the CLI exposes."""
    from convertmodel.model import load

    opts: dict[str, Any] = {}
    if prototxt:
        opts["prototxt"] = prototxt
    return load(path, **opts)


def ops_rows(graph: Any) -> list[tuple[str, int, int]]:
    """(op type, count, parameters) per op type, most parameters first."""
    params: dict[str, int] = {}
    counts: dict[str, int] = {}
    for n in graph.nodes:
        key = f"{n.domain}.{n.op_type}" if n.domain else n.op_type
        counts[key] = counts.get(key, 0) + 1
        params[key] = params.get(key, 0) + sum(int(graph.constants[i].size) for i in n.inputs if i in graph.constants)
    return sorted(((k, counts[k], params[k]) for k in counts), key=lambda r: (-r[2], -r[1], r[0]))


def io_rows(graph: Any) -> list[tuple[str, str, str]]:
    rows = [("input", vi.name, str(vi.type)) for vi in graph.inputs]
    rows += [("output", vi.name, str(vi.type)) for vi in graph.outputs]
    return rows
