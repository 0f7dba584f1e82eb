"""``convertmodel predict MODEL --data DATA``: score a whole data set, one row per sample, on any engine.

``--out X.parquet`` is written by Spark's tasks (``--engine spark``); ``--out X.jsonl`` (JSON lines) by
either engine; without ``--out`` the first rows are printed (all of them with ``--json``). Samples that
cannot be read get a row with their error, and the command then exits 5 after writing everything.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from convertmodel.errors import FormatError, UsageError

#: Rows printed as a table when there is no --out.
SHOWN = 20


def resolve_data(model: Any, data: str, images: str | None, preset_name: str | None, strict: bool) -> tuple[Any, Any]:
    """The data set and its preprocessing, by verify's rule: --preset > the model's stored one > the data's
    default, fitted to the model input."""
    from convertmodel.verify.inputs import open_verify_data

    return open_verify_data(data, model, images=images, preset_name=preset_name, strict=strict)


def predict_data(
    model_path: str,
    model: Any,
    engine: Any,
    *,
    data: str,
    images: str | None,
    out: str | None,
    preset_name: str | None,
    top: int,
    raw: bool,
    batch_size: int,
    limit: int | None,
    threads: int,
    progress: Any,
    strict: bool = False,
) -> dict[str, Any]:
    """Run the scoring; returns the summary report (rows included when nothing was written)."""
    from convertmodel.engines import ModelRef
    from convertmodel.engines.predict import SCHEMA_RAW, SCHEMA_TOP, PredictBatch, batch_rows, make_job, predict_rows

    if out and out.lower().rstrip("/").endswith(".parquet") and engine.name != "spark":
        raise UsageError(f"{out}: Parquet is written by Spark; add --engine spark (or write .jsonl)")
    if out and not out.lower().rstrip("/").endswith((".parquet", ".jsonl")):
        raise UsageError(f"{out}: predict --data writes .parquet (with --engine spark) or .jsonl")
    ds, pre = resolve_data(model, data, images, preset_name, strict)
    ref = ModelRef(model, model_path if model_path.lower().endswith(".q8") else None)
    job = make_job(ref, ds, pre, batch_size, limit, PredictBatch(top, raw, None, threads))
    summary: dict[str, Any] = {"model": model_path, "data": data, "samples": job.total, "out": out}
    summary["preprocessing"] = pre.to_dict()
    if out and out.lower().rstrip("/").endswith(".parquet"):
        engine.write_parquet(job, out, SCHEMA_RAW if raw else SCHEMA_TOP, functools.partial(batch_rows, raw), progress)
        unreadable = int(engine.last_job.get("unreadable", 0))  # counted by the tasks (successful attempts)
        rows = None
    else:
        rows = predict_rows(engine, job, progress)
        unreadable = sum(1 for r in rows if r["error"])
        if out:
            _write_jsonl(out, rows, (model_path, data))
    summary["engine"] = {"name": engine.name, **(getattr(engine, "last_job", None) or {})}
    summary["unreadable"] = unreadable
    if rows is not None and not out:
        summary["rows"] = rows
    return summary


def _write_jsonl(out: str, rows: list[dict[str, Any]], inputs: tuple[str, ...]) -> None:
    from convertmodel.fsutil import atomic_open

    with atomic_open(out, "w", inputs=inputs) as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def check_unreadable(summary: dict[str, Any]) -> None:
    """After everything is written: samples that could not be read make the command fail (exit 5)."""
    n = summary.get("unreadable", 0)
    if n:
        first = next((r for r in summary.get("rows") or [] if r["error"]), None)
        hint = f" (first: {first['error']})" if first else ""
        raise FormatError(
            summary["data"], f"{n} of {summary['samples']} samples could not be read; their rows carry the error{hint}"
        )


def print_rows(summary: dict[str, Any], console: Any) -> None:
    rows = summary.get("rows")
    if rows:
        from rich.table import Table

        t = Table(title=f"predict {summary['model']} on {summary['samples']} samples of {summary['data']}")
        for c in ("index", "id", "prediction"):
            t.add_column(c)
        for r in rows[:SHOWN]:
            if r["error"]:
                shown = f"[red]{r['error']}[/red]"
            elif "top_classes" in r:
                shown = ", ".join(f"{c} ({s:.4f})" for c, s in zip(r["top_classes"], r["top_scores"], strict=True))
            else:
                shown = f"{len(r['output'])} values"
            t.add_row(str(r["index"]), r["id"], shown)
        console.print(t)
        if len(rows) > SHOWN:
            console.print(f"... {len(rows) - SHOWN} more rows (--out FILE.jsonl, or --json, for all)")
    if summary.get("out"):
        console.print(f"wrote {summary['samples']} rows to {summary['out']}")
