"""Runner details: metric choice, fitting implicit preprocessing to the model, fixed-batch models."""

from __future__ import annotations

import numpy as np
import pytest

from convertmodel.data.datasets import open_dataset
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import GraphBuilder
from convertmodel.model import Model
from convertmodel.verify.report import json_safe
from convertmodel.verify.runner import VerifyOptions, choose_metric, fit_preprocess, run_verify


def _tiny_model(rng, batch):
    """Conv 3x3 (2->4) + Relu + Flatten + Gemm (-> 3 classes) with a given batch dimension."""
    b = GraphBuilder("tiny")
    x = b.add_input("x", "float32", (batch, 1, 6, 6))
    w = b.add_const("w", rng.standard_normal((4, 1, 3, 3)).astype(np.float32))
    bias = b.add_const("b", rng.standard_normal(4).astype(np.float32))
    (c,) = b.add_node("Conv", [x, w, bias], name="conv", kernel_shape=[3, 3])
    (r,) = b.add_node("Relu", [c], name="relu")
    (f,) = b.add_node("Flatten", [r], name="flat")
    fw = b.add_const("fw", rng.standard_normal((3, 64)).astype(np.float32))
    (y,) = b.add_node("Gemm", [f, fw], name="fc", transB=1)
    b.mark_output(y)
    return Model(b.build(), "tiny")


def test_fixed_batch_model_runs_in_pieces(tmp_path, rng):
    x = rng.integers(0, 256, size=(7, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 3, size=7)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    fixed, free = _tiny_model(np.random.default_rng(5), 1), _tiny_model(np.random.default_rng(5), "N")
    ds = open_dataset(str(tmp_path / "d.npz"))
    opts = VerifyOptions(batch_size=3)
    r1 = run_verify(fixed, fixed.quantize(), ds, ds.default_preprocess, opts)
    r2 = run_verify(free, free.quantize(), ds, ds.default_preprocess, opts)
    assert r1.samples == r2.samples == 7
    assert r1.fp32["top1"] == r2.fp32["top1"] and r1.int8["top1"] == r2.int8["top1"]
    # Independent: fp32 accuracy from the numpy forward pass written here.
    xf = x.astype(np.float32) / np.float32(255)
    g = free.graph
    w, b_, fw = (np.asarray(g.constants[k]) for k in ("w", "b", "fw"))
    cols = np.stack([xf[:, i : i + 4, j : j + 4] for i in range(3) for j in range(3)], axis=-1)  # (N, 4, 4, 9)
    conv = np.maximum(np.einsum("nhwk,ok->nohw", cols, w.reshape(4, 9)) + b_[None, :, None, None], 0)
    logits = conv.reshape(7, -1) @ fw.T
    assert r1.fp32["top1"] == pytest.approx(100.0 * float((logits.argmax(1) == y).mean()))


def test_choose_metric(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.integers(0, 256, size=(2, 4, 4), dtype=np.uint8))
    ds = open_dataset(str(tmp_path / "x.npy"))
    assert choose_metric("auto", ds) == "agreement"
    with pytest.raises(InvalidModelError, match="needs labels"):
        choose_metric("top1", ds)
    with pytest.raises(InvalidModelError, match="unknown metric"):
        choose_metric("f1", ds)


def test_fit_preprocess(tmp_path, rng):
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    ds = open_dataset(str(tmp_path))
    p = fit_preprocess(Preprocess(), (1, 1, 28, 28), ds)
    assert p.color == "gray" and p.resize == (28, 28) and p.layout == "NCHW"
    q = fit_preprocess(Preprocess(mean=(1.0, 2.0, 3.0)), ("N", 224, 224, 3), ds)
    assert q.layout == "NHWC" and q.resize == (224, 224) and q.mean == (1.0, 2.0, 3.0)
    b = next(ds.batches(1, q))
    assert b.x.shape == (1, 224, 224, 3)


def test_json_safe():
    assert json_safe({"a": [float("inf"), float("nan"), -float("inf"), 1.5]}) == {"a": ["inf", "nan", "-inf", 1.5]}


def test_gate_tolerates_float_rounding_only():
    from convertmodel.verify.report import within_budget

    assert within_budget(89.8 - 89.7, 0.1)  # 0.09999999999999432
    assert within_budget(0.1 + 1e-12, 0.1)
    assert not within_budget(0.1 + 1e-6, 0.1)
    assert not within_budget(0.2, 0.1)
