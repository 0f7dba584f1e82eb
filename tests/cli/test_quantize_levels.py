"""`quantize --calib DATA --levels auto`: levels chosen per layer, recorded in the .q8, shown by inspect."""

from __future__ import annotations

import json
import os

import pytest

from convertmodel import errors, load
from convertmodel.cli.levels import DEFAULT_MAX_DROP
from convertmodel.quant.ops import quantized_nodes
from convertmodel.quant.options import Levels, QuantizationInfo
from convertmodel.runtime import native
from convertmodel.verify.levels import FLOOR_DB, LADDER
from tests.cli import run_cli
from tests.helpers import SUBSET_IMAGES, SUBSET_LABELS, fixture_model


def _auto(out: str, *extra: str) -> list[str]:
    lenet = fixture_model("lenet5")
    return ["quantize", lenet, "--out", out, "--calib", SUBSET_IMAGES, "--calib-labels", SUBSET_LABELS, *extra]


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--levels", "auto", "--compat", "bigdl"], "--compat"),
        (["--levels", "auto", "--input-levels", "127"], "--input-levels"),
        (["--sqnr-floor", "30"], "--sqnr-floor"),
        (["--levels", "auto", "--sqnr-floor", "nan"], "--sqnr-floor"),
    ],
)
def test_contradictions_are_usage_errors(tmp_path, capsys, extra, word):
    out = os.path.join(str(tmp_path), "x.q8")
    code, _, err = run_cli(_auto(out, *extra), capsys)
    assert code == errors.EXIT_USAGE, err
    assert word in err and "Traceback" not in err
    assert not os.path.exists(out)


def test_auto_writes_q8_only(tmp_path, capsys):
    out = os.path.join(str(tmp_path), "x.bigdl")
    code, _, err = run_cli(_auto(out, "--levels", "auto"), capsys)
    assert code == errors.EXIT_USAGE and ".q8" in err
    assert not os.path.exists(out)


def test_auto_needs_calib(tmp_path, capsys):
    out = os.path.join(str(tmp_path), "x.q8")
    code, _, err = run_cli(["quantize", fixture_model("lenet5"), "--out", out, "--levels", "auto"], capsys)
    assert code == errors.EXIT_USAGE and "--calib" in err
    assert not os.path.exists(out)


def test_help_states_the_default_floor():
    from convertmodel.cli.quantize import command

    opt = next(p for p in command.params if p.name == "sqnr_floor")
    assert f"(default {FLOOR_DB:g};" in str(getattr(opt, "help", "")), "the help must state verify/levels.py's FLOOR_DB"


def test_auto_levels_end_to_end(tmp_path, capsys):
    out = os.path.join(str(tmp_path), "auto.q8")
    code, stdout, err = run_cli(["--json", *_auto(out, "--levels", "auto", "--exclude", "fc2/MatMul")], capsys)
    assert code == 0, err
    rep = json.loads(stdout)
    lv = rep["levels"]
    assert lv["mode"] == "auto" and lv["floor_db"] == FLOOR_DB and lv["budget_met"]
    assert rep["drop"]["passed"] and rep["drop"]["max_drop"] == DEFAULT_MAX_DROP
    assert "fc2/MatMul" not in lv["layers"], "an excluded layer stays fp32, outside the choice"
    names = [f"{a.input}x{a.weight}" for a in LADDER]
    assert sum(lv["counts"].values()) == len(lv["layers"]) == 4
    chosen = next(s for s in lv["steps"] if s["levels"] == {k: r["levels"] for k, r in lv["layers"].items()})
    raised = 0
    for row in lv["layers"].values():
        sq = [row["isolated_sqnr_db"][n] for n in names]
        # Each layer starts at the fastest rung above the floor; the drop gate's promotions only raise it.
        want = next((n for n, s in zip(names, sq, strict=True) if s >= FLOOR_DB), names[-1])
        assert names.index(row["levels"]) >= names.index(want), row
        raised += names.index(row["levels"]) - names.index(want)
        if not chosen["promotions"]:  # nothing promoted (budget met at once on these images): exactly that rung
            assert row["levels"] == want, row
    assert raised == chosen["promotions"], (raised, chosen)
    # The .q8 holds the same levels, node by node.
    model = load(out)
    info = QuantizationInfo.of(model.metadata)
    assert info is not None and "fc2/MatMul" in info.kept
    for n in quantized_nodes(model.graph):
        want = lv["layers"][n.name]["levels"]
        got = info.layer_levels.get(n.name, Levels(info.input_levels, info.weight_levels))
        assert f"{got.input}x{got.weight}" == want and n.attrs["input_levels"] == got.input
    # inspect shows them, with the AVX2 kernel each layer's levels select.
    code, stdout, err = run_cli(["--json", "inspect", out], capsys)
    assert code == 0, err
    rows = {r["layer"]: r for r in json.loads(stdout)["layer_levels"]}
    assert {k: r["levels"] for k, r in rows.items()} == {k: r["levels"] for k, r in lv["layers"].items()}
    if "avx2" in native.available_isas():
        kernels = {"127x64": "avx2-pair", "127x127": "avx2-u8s8", "255x127": "avx2-int16"}
        for r in rows.values():
            assert r["avx2_kernel"] == kernels[r["levels"]], r


def test_auto_levels_table(tmp_path, capsys):
    out = os.path.join(str(tmp_path), "auto.q8")
    code, stdout, err = run_cli(_auto(out, "--levels", "auto", "--sqnr-floor", "1000"), capsys)
    assert code == 0, err
    assert "levels per layer" in stdout and "5 at 255x127" in stdout
    info = load(out).quantization
    assert info is not None and not info.layer_levels, "an unreachable floor leaves every layer at the default"


@pytest.mark.slow
def test_missed_budget_falls_back_to_fp32_on_top_of_the_levels(tmp_path, capsys):
    """A budget no int8 model meets: every layer promoted to 255x127, then the fp32 fallback; exit 6 with the
    best model written and both searches in the report."""
    out = os.path.join(str(tmp_path), "auto.q8")
    code, stdout, err = run_cli(["--json", *_auto(out, "--levels", "auto", "--max-drop", "-50")], capsys)
    assert code == errors.EXIT_ACCURACY_GATE, err
    assert os.path.exists(out), "the best model found is written even when the budget is missed"
    rep = json.loads(stdout)
    lv, fb = rep["levels"], rep["fallback"]
    assert not lv["budget_met"] and not fb["budget_met"]
    assert {r["levels"] for r in lv["layers"].values()} == {"255x127"}
    assert len(fb["steps"]) > 1 and lv["fp32_layers"] == fb["fp32_layers"]
    meta = load(out).metadata
    assert json.loads(meta["fallback_fp32_layers"]) == fb["fp32_layers"]


def test_infinite_floor_prints_the_table(tmp_path, capsys):
    """--sqnr-floor inf (every layer at 255x127) prints its table: the report holds the floor as "inf"."""
    out = os.path.join(str(tmp_path), "auto.q8")
    code, stdout, err = run_cli(_auto(out, "--levels", "auto", "--sqnr-floor", "inf"), capsys)
    assert code == 0, err
    assert "floor inf dB" in stdout and "5 at 255x127" in stdout and "internal error" not in err
