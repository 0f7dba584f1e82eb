"""The verify report: a JSON document (schema below) and the rich tables the CLI prints.

JSON keys (``report_version`` 1): ``tool`` {name, version}; ``model`` and ``reference`` {path, sha256,
format, quantized}; ``data`` {path, kind, samples, sha256 of the samples used, batch_size, limit};
``preprocessing``; ``metric``; ``fp32`` and ``int8`` (metric values, per-class counts);
``data.unreadable`` lists the samples that could not be read ({index, id, error}); ``engine`` {name, and
for Spark: master, partitions, tasks_completed, task_attempts_failed};
``agreement`` (top-1 agreement, cosine, SQNR); ``threads`` {blas: the BLAS threads the fp32 side ran with}; ``drop`` {value, unit, relative_percent, max_drop,
relative_gate, passed}; ``timing`` (wall, fp32, int8, data, metrics seconds); ``per_layer`` (worst
first) and ``fallback`` when asked for; ``created`` (UTC, ISO 8601).
"""

from __future__ import annotations

import datetime
import math
import os
from typing import Any

from convertmodel.verify.runner import HEADLINE_KEY, VerifyResult

REPORT_VERSION = 1

_LABELS = {
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
    "agreement": "top-1 agreement with fp32",
    "det-agreement": "fp32 boxes matched by int8 (IoU >= 0.5)",
    "map-voc": "mAP@0.5 (VOC 11-point)",
    "map-coco": "mAP@[.5:.95] (COCO)",
}


def file_info(path: str | None, model: Any = None) -> dict[str, Any] | None:
    if path is None:
        return None
    from convertmodel.fsutil import file_sha256

    info: dict[str, Any] = {"path": path}
    info["sha256"] = file_sha256(path) if os.path.isfile(path) else None
    if model is not None:
        info["quantized"] = bool(model.is_quantized)
        info["graph"] = model.graph.name
    return info


#: Accuracies are k / N * 100, so fp32 - int8 carries float rounding (89.8 - 89.7 = 0.09999999999999432);
#: a drop equal to the budget up to this tolerance passes.
GATE_TOLERANCE = 1e-9


def within_budget(drop: float, max_drop: float) -> bool:
    """Is ``drop`` within ``max_drop`` (inclusive, up to float rounding)?"""
    return drop <= max_drop + GATE_TOLERANCE


def gate(result: VerifyResult, max_drop: float | None, relative: bool) -> dict[str, Any]:
    """The drop and the verdict; ``passed`` is None (no verdict) when no budget was given."""
    value = result.drop
    rel = result.relative_drop
    passed = None if max_drop is None else within_budget(rel if relative else value, max_drop)
    return {
        "value": value,
        "unit": "pp",
        "relative_percent": rel,
        "max_drop": max_drop,
        "relative_gate": relative,
        "passed": None if passed is None else bool(passed),
    }


def build_report(
    result: VerifyResult,
    *,
    model_path: str,
    model: Any,
    reference_path: str | None,
    reference: Any,
    data_path: str,
    data_kind: str,
    preprocessing: dict[str, Any],
    batch_size: int,
    limit: int | None,
    max_drop: float | None,
    relative: bool,
    extra_timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    from convertmodel import __version__

    timing = dict(result.timing)
    timing.update(extra_timing or {})
    rep: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "tool": {"name": "convertmodel", "version": __version__},
        "model": file_info(model_path, model),
        "reference": file_info(reference_path, reference),
        "data": {
            "path": data_path,
            "kind": data_kind,
            "samples": result.samples,
            "sha256": result.data_hash,
            "batch_size": batch_size,
            "limit": limit,
            "unreadable": result.unreadable,
        },
        "engine": {"name": result.engine, **result.engine_info},
        "threads": {"blas": result.blas_threads},
        "preprocessing": preprocessing,
        "metric": result.metric,
        "fp32": result.fp32,
        "int8": result.int8,
        "agreement": result.agreement,
        "drop": gate(result, max_drop, relative),
        "timing": {k: round(v, 4) for k, v in timing.items()},
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    if result.per_layer:
        rep["per_layer"] = result.per_layer
    return rep


def json_safe(obj: Any) -> Any:
    """inf/NaN are not JSON: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}f}"
    return str(v)


def print_report(rep: dict[str, Any], console: Any, top_layers: int = 15) -> None:
    """The tables a newcomer reads at a glance: metric fp32 / int8 / drop, verdict, timing, worst layers."""
    from rich.table import Table

    metric = rep["metric"]
    t = Table(
        title=f"verify {os.path.basename(rep['model']['path'])} on {rep['data']['samples']} samples "
        f"of {os.path.basename(rep['data']['path'].rstrip('/'))}"
    )
    t.add_column("metric")
    t.add_column("fp32", justify="right")
    t.add_column("int8", justify="right")
    t.add_column("drop (pp)", justify="right")
    keys = [
        ("top1", "top-1 %"),
        ("top5", "top-5 %"),
        ("top1_agreement", "top-1 agreement %"),
        ("box_agreement", "boxes matched %"),
        ("map_voc", "mAP@0.5 VOC %"),
        ("map_coco", "mAP@[.5:.95] COCO %"),
    ]
    headline = HEADLINE_KEY.get(metric)
    for key, label in keys:
        if key in rep["fp32"] and key in rep["int8"]:
            a, b = rep["fp32"][key], rep["int8"][key]
            shown = f"[bold]{label}[/bold]" if key == headline else label
            t.add_row(shown, _fmt(a), _fmt(b), _fmt(a - b, 3))
    if "detections" in rep["fp32"]:
        t.add_row("detections (all scores)", str(rep["fp32"]["detections"]), str(rep["int8"]["detections"]), "")
    ag = rep["agreement"]
    if "cosine_mean" in ag:
        t.add_row("output cosine (mean / min)", "", f"{_fmt(ag['cosine_mean'], 6)} / {_fmt(ag['cosine_min'], 4)}", "")
        t.add_row("output SQNR dB", "", _fmt(ag["sqnr_db"], 1), "")
    if "matched" in ag:
        t.add_row("boxes (score >= min)", str(ag["fp32_boxes"]), str(ag["int8_boxes"]), "")
        t.add_row("unmatched fp32 / int8", "", f"{ag['unmatched_fp32']} / {ag['unmatched_int8']}", "")
        t.add_row("matched IoU mean", "", _fmt(ag["mean_iou"], 4), "")
        t.add_row("score delta mean / max |d|", "", f"{_fmt(ag['score_delta_mean'], 4)} / "
                  f"{_fmt(ag['score_delta_abs_max'], 4)}", "")  # fmt: skip
    if "top1_agreement" in ag and metric != "agreement":
        t.add_row("top-1 agreement with fp32 %", "", _fmt(ag["top1_agreement"]), "")
    console.print(preprocessing_line(rep), highlight=False)
    ref = rep.get("reference") or {}
    if ref.get("sha256_matches") is False:
        console.print(f"[red]reference {ref['path']} is not the recorded source of the .q8 (sha256 differs)[/red]")
    console.print(t)
    d = rep["drop"]
    budget = "" if d["max_drop"] is None else (f" (budget {d['max_drop']}{'%' if d['relative_gate'] else ' pp'})")
    if d["passed"] is None:
        verdict, budget = "[yellow]NOT GATED[/yellow]", " (no --max-drop given: no pass/fail verdict)"
    else:
        verdict = "[green]PASS[/green]" if d["passed"] else "[red]FAIL[/red]"
    console.print(
        f"{verdict} {_LABELS.get(metric, metric)} drop {_fmt(d['value'], 3)} pp "
        f"({_fmt(d['relative_percent'], 3)}% relative){budget}"
    )
    eng = rep.get("engine") or {}
    if eng.get("name", "local") != "local":
        console.print(
            f"engine {eng['name']} on {eng.get('master')}: {eng.get('partitions')} partitions, "
            f"{eng.get('task_attempts_failed', 0)} failed task attempt(s) retried"
        )
    bad = rep["data"].get("unreadable") or []
    if bad:
        console.print(f"[red]{len(bad)} sample(s) could not be read[/red], first: {bad[0]['error']}")
    tm = rep["timing"]
    console.print(
        f"time {tm['wall_seconds']:.2f} s: fp32 {tm['fp32_seconds']:.2f} s, int8 {tm['int8_seconds']:.2f} s, "
        f"data {tm['data_seconds']:.2f} s, metrics {tm['metrics_seconds']:.2f} s"
    )
    if rep.get("per_layer"):
        print_per_layer(rep["per_layer"], console, top_layers)
    if rep.get("fallback"):
        print_fallback(rep["fallback"], console)


def preprocessing_line(rep: dict[str, Any]) -> str:
    """One line: the preprocessing the numbers were measured with, and where it came from."""
    p = rep.get("preprocessing") or {}
    parts = [f"{p.get('color', '?')}, {p.get('layout', '?')}"]
    if p.get("resize") is not None:
        r = p["resize"]
        parts.append(f"resize {r[0]}x{r[1]}" if isinstance(r, list) else f"resize shorter side {r}")
    if p.get("crop") is not None:
        parts.append(f"crop {p['crop'][0]}x{p['crop'][1]}")
    if p.get("scale") not in (None, 1, 1.0):
        s = p["scale"]
        parts.append("x/255" if abs(s - 1 / 255) < 1e-9 else f"x*{s:g}")
    if p.get("mean") is not None:
        parts.append("mean " + ",".join(f"{v:g}" for v in p["mean"]))
    if p.get("std") is not None:
        parts.append("std " + ",".join(f"{v:g}" for v in p["std"]))
    origin = rep.get("preprocessing_from")
    return "preprocessing: " + ", ".join(parts) + (f" (from {origin})" if origin else "")


def print_per_layer(rows: list[dict[str, Any]], console: Any, top: int = 15) -> None:
    from rich.table import Table

    t = Table(title=f"per-layer int8 vs fp32, worst first ({min(top, len(rows))} of {len(rows)})")
    for c in ("layer", "op", "SQNR dB", "cosine", "max |diff|"):
        t.add_column(c, justify="left" if c in ("layer", "op") else "right")
    for r in rows[:top]:
        t.add_row(r["layer"], r["op"], _fmt(r["sqnr_db"], 1), _fmt(r["cosine"], 6), _fmt(r["max_abs_diff"], 4))
    console.print(t)


def print_fallback(fb: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title="accuracy-aware fallback: layers kept fp32, one more per step")
    for c in ("step", "fp32 layers", "int8", "drop (pp)", "weights"):
        t.add_column(c, justify="left" if c == "fp32 layers" else "right")
    for k, s in enumerate(fb["steps"]):
        names = ", ".join(s["fp32_layers"][-1:]) if s["fp32_layers"] else "(none)"
        extra = f" (+{len(s['fp32_layers']) - 1} before)" if len(s["fp32_layers"]) > 1 else ""
        t.add_row(str(k), names + extra, _fmt(s["int8_value"]), _fmt(s["drop"], 3), f"{s['weight_bytes']:,} B")
    console.print(t)
    if not fb["budget_met"]:
        met = "[red]budget not met[/red]"
    elif not fb.get("enough_int8", True):
        met = "[red]budget met only by giving up on int8[/red]"
    else:
        met = "[green]budget met[/green]"
    frac = fb.get("int8_weight_fraction")
    share = "" if frac is None else f" ({100 * frac:.1f}% of the int8 weights stay int8)"
    console.print(
        f"{met}; best: {len(fb['fp32_layers'])} of {fb.get('layers', '?')} layer(s) fp32 {fb['fp32_layers']}{share}; "
        f"weights {fb['weight_bytes_all_int8']:,} B all-int8 -> {fb['weight_bytes']:,} B; int8 run "
        f"{fb['int8_seconds_all_int8']:.2f} s all-int8 -> {fb['int8_seconds']:.2f} s",
        highlight=False,
    )
    if fb.get("file_bytes") and fb.get("source_bytes") and fb["file_bytes"] >= fb["source_bytes"]:
        console.print(
            f"[red]warning: the fallback model ({fb['file_bytes']:,} B) is not smaller than its source "
            f"({fb['source_bytes']:,} B)[/red]"
        )
