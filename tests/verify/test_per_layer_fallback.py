"""Per-layer report and accuracy-aware fallback on the trained LeNet-5 fixture."""

from __future__ import annotations

import numpy as np
import pytest

import convertmodel
from convertmodel.data.datasets import open_dataset
from convertmodel.data.preprocess import preset
from convertmodel.metrics.agreement import cosine, sqnr_db
from convertmodel.quant.ops import quantized_nodes
from convertmodel.quant.options import QuantizeOptions
from convertmodel.verify.fallback import accuracy_aware_quantize, weight_bytes
from convertmodel.verify.runner import VerifyOptions, run_verify
from tests.helpers import SUBSET_IMAGES

N = 120


def _value(model, x, name):
    """The value ``name`` inside ``model`` on input ``x`` (captured by a node hook: the executor frees it)."""
    seen = {}

    def hook(node, outs, seconds):
        for o, a in zip(node.outputs, outs, strict=False):
            if o == name:
                seen[o] = a

    model.executor().run({model.graph.inputs[0].name: x}, hook=hook)
    return seen[name]


def test_per_layer_matches_direct_comparison(lenet):
    fp32 = convertmodel.load(lenet)
    int8 = fp32.quantize()
    ds = open_dataset(SUBSET_IMAGES)
    res = run_verify(fp32, int8, ds, preset("fmnist"), VerifyOptions(batch_size=40, limit=N, per_layer=True))
    rows = {r["layer"]: r for r in res.per_layer}
    assert set(rows) == {n.name for n in quantized_nodes(int8.graph)}
    # Independent check for every layer: capture the value in each model on the same batches, then apply
    # the formulas to all N samples at once.
    xs = [b.x for b in ds.batches(40, preset("fmnist"), N)]
    for n in quantized_nodes(int8.graph):
        v = n.outputs[0]
        ref = np.concatenate([_value(fp32, x, v) for x in xs])
        got = np.concatenate([_value(int8, x, v) for x in xs])
        assert rows[n.name]["sqnr_db"] == pytest.approx(sqnr_db(ref, got), rel=1e-6)
        assert rows[n.name]["cosine"] == pytest.approx(cosine(ref, got), rel=1e-9)
        assert rows[n.name]["max_abs_diff"] == pytest.approx(
            float(np.abs(ref.astype(np.float64) - got).max()), rel=1e-9
        )
    assert [r["sqnr_db"] for r in res.per_layer] == sorted(r["sqnr_db"] for r in res.per_layer)


def test_fallback_reaches_budget_and_keeps_best(lenet):
    fp32 = convertmodel.load(lenet)
    ds = open_dataset(SUBSET_IMAGES)
    opts = VerifyOptions(batch_size=60, limit=N)
    # 1-level (binary) input windows make a real, large drop that falling back layers repairs.
    fb = accuracy_aware_quantize(
        fp32, ds, preset("fmnist"), opts, max_drop=0.0, quantize_options=QuantizeOptions(input_levels=1)
    )
    first = fb.steps[0]
    assert first.fp32_layers == [] and first.drop > 0.0
    assert fb.met and fb.result.drop <= 0.0
    ranking = [r["layer"] for r in fb.ranking]
    # Layers fall back in the per-layer ranking order, one more per step, and cost weight bytes.
    for k, s in enumerate(fb.steps):
        assert s.fp32_layers == ranking[:k]
    assert fb.fp32_layers == ranking[: len(fb.fp32_layers)] and fb.fp32_layers
    assert weight_bytes(fb.model.graph) > first.weight_bytes
    kept = {n.name for n in fb.model.graph.nodes if n.op_type in ("Conv", "MatMul", "Gemm")}
    assert set(fb.fp32_layers) <= kept
    d = fb.as_dict()
    assert d["budget_met"] and d["size_cost_bytes"] > 0


def test_fallback_unmeetable_budget_still_returns_best(lenet):
    fp32 = convertmodel.load(lenet)
    ds = open_dataset(SUBSET_IMAGES)
    fb = accuracy_aware_quantize(
        fp32,
        ds,
        preset("fmnist"),
        VerifyOptions(batch_size=60, limit=60),
        max_drop=-1.0,
        max_steps=2,
        quantize_options=QuantizeOptions(input_levels=1),
    )
    assert not fb.met and len(fb.steps) == 3
    assert fb.result.drop == min(s.drop for s in fb.steps)
    assert fb.model.is_quantized or fb.fp32_layers
