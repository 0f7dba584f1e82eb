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
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console(stderr=True), disable=not enabled, transient=True,
    )
