"""``quantize --levels auto``: per-layer levels chosen on calibration data (convertmodel/verify/levels.py)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convertmodel.cli.common import console, finish, load_model, model_bytes, progress, shows_progress

F = TypeVar("F", bound=Callable[..., Any])

#: The drop gate of ``--levels auto`` when ``--max-drop`` is not given (percentage points).
DEFAULT_MAX_DROP = 0.1


def levels_options(fn: F) -> F:
    """``--levels`` and ``--sqnr-floor``."""
    fn = click.option(
        "--sqnr-floor",
        type=float,
        default=None,
        metavar="DB",
        help="With --levels auto: the isolated SQNR (dB) each layer must keep at its levels "
        "(default 40; docs/quantization.md section 8.4).",
    )(fn)
    return click.option(
        "--levels",
        "levels_mode",
        type=click.Choice(["uniform", "auto"]),
        default="uniform",
        show_default=True,
        help="auto (needs --calib): each layer gets the fastest levels on AVX2 (127x64, 127x127, 255x127) that "
        "keep its measured SQNR above --sqnr-floor and the model within --max-drop (default 0.1); recorded "
        "per layer in the .q8.",
    )(fn)


def check_levels_args(
    mode: str, floor: float | None, calib: str | None, compat: str | None, input_levels: int | None, dst: str = ""
) -> None:
    """UsageError (exit 2) for contradictory or incomplete --levels arguments, before any work."""
    if mode != "auto":
        if floor is not None:
            raise click.BadParameter("--sqnr-floor goes with --levels auto", param_hint="--sqnr-floor")
        return
    if floor is not None and math.isnan(floor):  # compares false with every SQNR: no floor at all
        raise click.BadParameter("the floor must be a number of dB (or inf), not nan", param_hint="--sqnr-floor")
    if calib is None:
        raise click.BadParameter(
            "--levels auto measures each layer on data: give --calib DATA", param_hint="--levels/--calib"
        )
    if compat is not None:
        raise click.BadParameter(
            f"--levels auto picks each layer's levels, --compat {compat} fixes them for every layer: drop one",
            param_hint="--levels/--compat",
        )
    if input_levels is not None:
        raise click.BadParameter(
            f"--levels auto picks each layer's levels, --input-levels {input_levels} fixes them: drop one",
            param_hint="--levels/--input-levels",
        )
    if dst.lower().endswith(".bigdl"):
        raise click.BadParameter(
            f"{dst}: BigDL runs every layer at its own 127x64 levels, so per-layer levels cannot be kept in a "
            ".bigdl file; write a .q8",
            param_hint="--levels/--out",
        )


def auto_levels_quantize(
    src: str,
    dst: str,
    prototxt: str | None,
    qopts: Any,
    data: str,
    labels: str | None,
    preset_name: str | None,
    max_drop: float | None,
    floor: float | None,
    threads: int,
    min_int8: float = 0.5,
) -> None:
    """The search, the model saved to ``dst`` (always: the best found), the report, then the gates (exit 6)."""
    from convertmodel.cli.verify import Where, build_verify_report, fallback_gate, gate
    from convertmodel.runtime.threads import limit_threads
    from convertmodel.verify.inputs import PREPROCESS_KEY, open_verify_data
    from convertmodel.verify.levels import FLOOR_DB, choose_levels
    from convertmodel.verify.runner import VerifyOptions

    budget = DEFAULT_MAX_DROP if max_drop is None else max_drop
    t0 = time.perf_counter()
    fp32 = load_model(src, prototxt)
    t_load = time.perf_counter() - t0
    pre_from: list[str] = []
    ds, pre = open_verify_data(data, fp32, labels=labels, preset_name=preset_name, require_known=True, origin=pre_from)
    opts = VerifyOptions(batch_size=64, threads=threads)
    with limit_threads(threads), progress(shows_progress()) as bar:
        task = bar.add_task("levels: measuring each layer", total=None)

        def on_step(s: Any) -> None:
            bar.update(task, description=f"levels: {s.promotions} promotion(s), drop {s.drop:.3f}")

        lr = choose_levels(
            fp32,
            ds,
            pre,
            opts,
            budget,
            quantize_options=qopts,
            floor_db=FLOOR_DB if floor is None else floor,
            min_int8=min_int8,
            on_step=on_step,
        )
    fb = lr.fallback
    model = fb.model_with_record(pre) if fb else lr.model.with_metadata({PREPROCESS_KEY: pre.to_json()})
    model.save(dst)
    if fb:
        fb.file_bytes = os.path.getsize(dst)
        fb.source_bytes = model_bytes(src) if os.path.exists(src) else None
    where = Where(dst, src, data, ds.kind, pre, opts.batch_size, None, budget, False)
    rep = build_verify_report(lr.result, where, model, fp32, fb, {"load_seconds": t_load, "quantize_seconds": 0.0})
    rep["preprocessing_from"] = pre_from[0]
    rep["levels"] = _json_safe(lr.as_dict())
    finish(rep, _print)
    gate(rep, src, data, lr.result, budget, False)
    fallback_gate(rep, dst)


def _json_safe(d: Any) -> Any:
    from convertmodel.verify.report import json_safe

    return json_safe(d)


def _print(rep: dict[str, Any]) -> None:
    from rich.table import Table

    from convertmodel.verify.report import print_report

    c = console()
    print_report(rep, c)
    lv = rep["levels"]
    floor = lv["floor_db"]  # a float, or json_safe's "inf" / "-inf" for an infinite --sqnr-floor
    floor_text = f"{floor:g}" if isinstance(floor, (int, float)) else str(floor)
    t = Table(title=f"levels per layer (floor {floor_text} dB isolated SQNR; {_counts(lv['counts'])})")
    t.add_column("layer")
    t.add_column("op")
    t.add_column("levels")
    for name in lv["ladder"]:
        t.add_column(f"SQNR {name}", justify="right")
    fp32 = set(lv["fp32_layers"])
    for layer, row in lv["layers"].items():
        sq = [row["isolated_sqnr_db"][n] for n in lv["ladder"]]
        shown = "fp32 (fallback)" if layer in fp32 else row["levels"]
        t.add_row(layer, row["op"], shown, *(f"{s:.1f} dB" if isinstance(s, float) else str(s) for s in sq))
    c.print(t)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} at {k}" for k, v in counts.items() if v)
