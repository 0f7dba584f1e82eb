"""Depthwise convolutions (C/G = 1) stay fp32 by default (docs/quantization.md section 10), on the trained
Fashion-MNIST MobileNet fixture: which layers, the record in the .q8, the option that quantizes them, compat."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

import convertmodel
from convertmodel.passes.quantize import DEPTHWISE_KEPT
from convertmodel.quant.error import sqnr_db
from convertmodel.quant.options import QuantizationInfo, QuantizeOptions
from tests.cli import run_cli
from tests.helpers import SUBSET_IMAGES, fixture_model


@pytest.fixture(scope="module")
def mobilenet() -> convertmodel.Model:
    return convertmodel.load(fixture_model("mobilenet"))


def _depthwise(m: convertmodel.Model) -> set[str]:
    g = m.graph
    out = set()
    for n in g.nodes:
        w = g.constants.get(n.inputs[1]) if n.op_type == "Conv" else None
        if w is not None and w.shape[1] == 1 and int(n.attrs.get("group", 1)) > 1:
            out.add(n.name)
    return out


def _images(n: int) -> np.ndarray:
    with gzip.open(SUBSET_IMAGES) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16)
    return (raw[: n * 784].reshape(n, 1, 28, 28) / np.float32(255)).astype(np.float32)


def test_default_keeps_exactly_the_depthwise_convs_fp32(mobilenet: convertmodel.Model, tmp_path) -> None:
    dw = _depthwise(mobilenet)
    assert len(dw) == 4  # the fixture's four depthwise-separable blocks
    q = mobilenet.quantize()
    info = q.quantization
    assert info is not None
    assert {k: (v.op, v.reason) for k, v in info.kept.items()} == {k: ("Conv", DEPTHWISE_KEPT) for k in dw}
    assert info.quantized == {"QConv": 5, "QGemm": 1}  # every other Conv (the pointwise ones, conv1) is int8
    fp32_convs = {n.name for n in q.graph.nodes if n.op_type == "Conv"}
    assert fp32_convs == dw
    # recorded in the .q8 like any kept layer, read back by the one parser
    path = str(tmp_path / "mb.q8")
    q.save(path)
    back = QuantizationInfo.of(convertmodel.load(path).metadata)
    assert back is not None and set(back.kept) == dw and back.kept[next(iter(dw))].reason == DEPTHWISE_KEPT


def test_quantize_depthwise_option_and_compat(mobilenet: convertmodel.Model) -> None:
    every = {"QConv": 9, "QGemm": 1}
    for opts in (QuantizeOptions(quantize_depthwise=True), QuantizeOptions(compat="bigdl")):
        info = mobilenet.quantize(opts).quantization
        assert info is not None and info.quantized == every and not info.kept, opts
    q = mobilenet.quantize(quantize_depthwise=True)  # the keyword form of Model.quantize
    assert "Conv" not in q.graph.op_counts()
    # compat mode quantizes them (BigDL did) unless told not to
    info = mobilenet.quantize(QuantizeOptions(compat="bigdl", quantize_depthwise=False)).quantization
    assert info is not None and set(info.kept) == _depthwise(mobilenet)
    # an exclude pattern still wins, with its own reason
    info = mobilenet.quantize(QuantizeOptions(exclude=("dw1/*",), quantize_depthwise=True)).quantization
    assert info is not None and info.kept["dw1/depthwise"].reason == "excluded by pattern 'dw1/*'"


@pytest.mark.slow
def test_depthwise_fp32_is_closer_to_fp32(mobilenet: convertmodel.Model) -> None:
    """On 1,000 test images: the default (depthwise fp32) agrees with fp32 at least as well and has the higher
    SQNR (measured over the 10,000: 39.0 dB / 99.63% against 37.5 dB / 99.58%)."""
    x = _images(1000)
    ref = np.asarray(mobilenet.predict(x))
    got = {k: np.asarray(mobilenet.quantize(quantize_depthwise=k).predict(x)) for k in (False, True)}
    agree = {k: float((v.argmax(1) == ref.argmax(1)).mean()) for k, v in got.items()}
    sq = {k: sqnr_db(ref, v) for k, v in got.items()}
    assert agree[False] >= 0.99 and agree[False] >= agree[True] - 0.002, agree
    assert sq[False] > sq[True] + 0.5, sq


def test_cli_quantize_depthwise_flag(tmp_path, capsys) -> None:
    src = fixture_model("mobilenet")
    for flag, quantized, kept in (([], 5, 4), (["--quantize-depthwise"], 9, 0)):
        out = str(tmp_path / f"m{len(flag)}.q8")
        code, stdout, err = run_cli(["--json", "quantize", src, "--out", out, *flag], capsys)
        assert code == 0, err
        rep = json.loads(stdout)
        assert rep["quantized_by_op"]["QConv"] == quantized and len(rep["layers_kept_fp32"]) == kept, rep
        assert all(v["reason"] == DEPTHWISE_KEPT for v in rep["layers_kept_fp32"].values())
