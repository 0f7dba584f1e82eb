"""``--levels auto`` (verify/levels.py) on the trained LeNet-5 fixture and real Fashion-MNIST test images."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import convertmodel
from convertmodel.data.datasets import open_dataset
from convertmodel.data.preprocess import preset
from convertmodel.errors import UsageError
from convertmodel.quant.ops import quantized_nodes
from convertmodel.quant.options import Levels, QuantizationInfo, QuantizeOptions
from convertmodel.verify.levels import (
    LADDER,
    choose_levels,
    layer_sensitivity,
    levels_options,
    promotion_order,
)
from convertmodel.verify.runner import VerifyOptions, run_verify
from tests.helpers import SUBSET_IMAGES, SUBSET_LABELS, fixture_model

N = 200
OPTS = VerifyOptions(batch_size=50, limit=N, threads=1)


@pytest.fixture(scope="module")
def fp32() -> convertmodel.Model:
    return convertmodel.load(fixture_model("lenet5"))


@pytest.fixture(scope="module")
def data() -> object:
    return open_dataset(SUBSET_IMAGES, SUBSET_LABELS)


@pytest.fixture(scope="module")
def sens(fp32: convertmodel.Model, data: object) -> list[dict]:
    return layer_sensitivity(fp32, data, preset("fmnist"), OPTS, QuantizeOptions(), LADDER, samples=N)


def test_isolated_sqnr_equals_a_model_with_only_that_layer_int8(fp32, data, sens):
    """Each layer's isolated SQNR is what verify --per-layer measures when every other layer stays fp32."""
    names = [r["layer"] for r in sens]
    assert len(names) == len(quantized_nodes(fp32.quantize().graph)) >= 4
    for k in (0, len(names) // 2, len(names) - 1):
        only = QuantizeOptions(fp32_layers=tuple(n for n in names if n != names[k]), layer_levels=(("*", LADDER[0]),))
        res = run_verify(
            fp32, fp32.quantize(only), data, preset("fmnist"), VerifyOptions(**{**OPTS.__dict__, "per_layer": True})
        )
        (row,) = res.per_layer
        assert row["layer"] == names[k]
        assert row["sqnr_db"] == pytest.approx(sens[k]["sqnr_db"][0], abs=1e-6)


def test_more_levels_less_error(sens):
    for r in sens:
        a, b, c = r["sqnr_db"]
        assert math.isfinite(a) and a > 20.0, r
        # 64 -> 127 weight levels is worth about 6 dB, 127 -> 255 input levels about 1-2 dB.
        assert b > a + 3.0 and c > b, r


def test_promotion_order_always_raises_the_worst_rung():
    sens = [
        {"layer": "a", "sqnr_db": [30.0, 36.0, 40.0]},
        {"layer": "b", "sqnr_db": [33.0, 34.0, 45.0]},
        {"layer": "c", "sqnr_db": [50.0, 55.0, 60.0]},
    ]
    start = {"a": 0, "b": 0, "c": 2}
    # a@30 -> a@36? no: b@33 is worse than a@36, and b@34 too.
    assert promotion_order(sens, start, 2) == ["a", "b", "b", "a"]
    assert promotion_order(sens, {"a": 2, "b": 2, "c": 2}, 2) == []


def test_floor_sets_each_layer_to_the_fastest_rung_above_it(fp32, data, sens):
    floor = float(np.median([r["sqnr_db"][1] for r in sens]))  # some layers clear it at 127x127, some do not
    r = choose_levels(fp32, data, preset("fmnist"), OPTS, 100.0, floor_db=floor)  # a budget every model meets
    assert r.met and len(r.steps) == 1 and r.fallback is None
    for row in r.sensitivity:
        want = next((k for k, s in enumerate(row["sqnr_db"]) if s >= floor), len(LADDER) - 1)
        assert r.layer_levels[row["layer"]] == LADDER[want], row
    assert len({r.layer_levels[x["layer"]] for x in r.sensitivity}) >= 2, "the floor must split the layers"
    # What the quantized model holds: each node's input levels, each layer's weights within its weight levels.
    info = r.model.quantization
    for n in quantized_nodes(r.model.graph):
        lv = r.layer_levels[n.name]
        assert n.attrs["input_levels"] == lv.input
        assert int(np.abs(r.model.graph.constants[n.inputs[1]]).max()) <= lv.weight
        assert info.layer_levels.get(n.name, Levels()) == lv


def test_levels_survive_the_q8_file(fp32, data, tmp_path):
    r = choose_levels(fp32, data, preset("fmnist"), OPTS, 100.0, floor_db=-math.inf)
    assert set(r.layer_levels.values()) == {LADDER[0]}
    path = os.path.join(str(tmp_path), "auto.q8")
    r.model.save(path)
    back = QuantizationInfo.of(convertmodel.load(path).metadata)
    assert back is not None and dict(back.layer_levels) == r.layer_levels


def test_infinite_floor_is_the_default_scheme(fp32, data):
    r = choose_levels(fp32, data, preset("fmnist"), OPTS, 100.0, floor_db=math.inf)
    assert set(r.layer_levels.values()) == {Levels(255, 127)}
    assert not r.model.quantization.layer_levels, "layers at the default levels are not listed"
    default = fp32.quantize()
    for k, v in default.graph.constants.items():
        np.testing.assert_array_equal(r.model.graph.constants[k], v)


def test_unmeetable_budget_promotes_everything_then_falls_back(fp32, data):
    r = choose_levels(fp32, data, preset("fmnist"), OPTS, -50.0, floor_db=-math.inf)
    assert not r.met
    assert set(r.layer_levels.values()) == {LADDER[-1]}
    assert [s.promotions for s in r.steps] == [0, len(r.sensitivity) * (len(LADDER) - 1)]
    assert r.fallback is not None and len(r.fallback.steps) > 1
    assert r.as_dict()["fp32_layers"] == r.fallback.fp32_layers


@pytest.mark.slow
def test_bisection_finds_the_shortest_prefix_that_meets_the_gate(fp32, data):
    """Gated on top-1 agreement with fp32 at the all-widest model's value: the chosen prefix of promotions
    meets it and, measured, the prefix one shorter does not."""
    opts = VerifyOptions(batch_size=250, limit=1000, threads=1, metric="agreement")
    lo = choose_levels(fp32, data, preset("fmnist"), opts, 100.0, floor_db=-math.inf).steps[0]
    hi = choose_levels(fp32, data, preset("fmnist"), opts, 100.0, floor_db=math.inf).steps[0]
    assert lo.drop > hi.drop, "127x64 everywhere must disagree with fp32 more often than 255x127"
    r = choose_levels(fp32, data, preset("fmnist"), opts, hi.drop, floor_db=-math.inf)
    assert r.met and r.fallback is None
    by_k = {s.promotions: s for s in r.steps}
    k = next(
        s.promotions for s in r.steps if s.levels == {n: f"{v.input}x{v.weight}" for n, v in r.layer_levels.items()}
    )
    assert by_k[k].drop <= hi.drop + 1e-9
    assert k > 0 and by_k[k - 1].drop > hi.drop
    assert len(r.steps) <= 2 + math.ceil(math.log2(max(by_k))), "bisection, not a linear search"


@pytest.mark.parametrize(
    ("opts", "word"),
    [
        (QuantizeOptions(compat="bigdl"), "compat"),
        (QuantizeOptions(input_levels=127), "input-levels"),
        (QuantizeOptions(layer_levels=(("*", Levels(127, 64)),)), "per-layer"),
    ],
)
def test_contradictory_options_are_usage_errors(fp32, data, opts, word):
    with pytest.raises(UsageError, match=word):
        choose_levels(fp32, data, preset("fmnist"), OPTS, 0.1, quantize_options=opts)


def test_exclude_composes(fp32, data, sens):
    first = sens[0]["layer"]
    r = choose_levels(fp32, data, preset("fmnist"), OPTS, 100.0, quantize_options=QuantizeOptions(exclude=(first,)))
    assert first not in r.layer_levels and first in r.model.quantization.kept
    assert set(r.layer_levels) == {x["layer"] for x in sens[1:]}


def test_levels_options_match_names_exactly():
    q = levels_options(QuantizeOptions(), {"a[1]": Levels(127, 64), "b*": Levels(127, 127)})
    assert q.levels_for("a[1]") == Levels(127, 64)
    assert q.levels_for("a1") == Levels()
    assert q.levels_for("b*") == Levels(127, 127) and q.levels_for("bx") == Levels()
