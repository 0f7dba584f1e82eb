"""QuantizeOptions in, QuantizationInfo out: typed end to end, per-layer levels, the .q8 metadata round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convertmodel
from convertmodel.errors import InvalidModelError, UsageError
from convertmodel.passes.quantize import RULES, quantize_graph
from convertmodel.passes.quantize.rules import RuleKey
from convertmodel.quant.ops import is_quantized, quantized_nodes
from convertmodel.quant.options import METADATA_KEY, Levels, QuantizationInfo, QuantizeOptions
from tests.helpers import mini_vgg


def test_options_validate_and_normalise() -> None:
    o = QuantizeOptions(exclude=("conv1_*, fc8", " ", "gemm"), compat="")
    assert o.exclude == ("conv1_*", "fc8", "gemm") and o.compat is None
    assert o.levels == Levels(255, 127)
    assert QuantizeOptions(compat="bigdl").levels == Levels(127, 64)
    assert QuantizeOptions(compat="bigdl", input_levels=200).levels == Levels(200, 64)
    with pytest.raises(UsageError, match="compat"):
        QuantizeOptions(compat="tflite")
    with pytest.raises(UsageError, match="levels"):
        QuantizeOptions(input_levels=0)
    with pytest.raises(UsageError, match="weight levels"):
        Levels(255, 128)


def test_per_layer_levels_are_applied_and_recorded(rng: np.random.Generator, tmp_path) -> None:
    g = mini_vgg(rng)
    opts = QuantizeOptions(layer_levels=(("conv1", Levels(127, 64)), ("fc*", Levels(200, 127))))
    q = quantize_graph(g, opts)
    nodes = {n.name: n for n in quantized_nodes(q)}
    assert nodes["conv0"].attrs["input_levels"] == 255 and nodes["conv1"].attrs["input_levels"] == 127
    assert nodes["fc0"].attrs["input_levels"] == 200 and nodes["fc1"].attrs["input_levels"] == 200
    assert int(np.abs(q.constants[nodes["conv1"].inputs[1]]).max()) == 64  # re-quantized like BigDL
    assert int(np.abs(q.constants[nodes["conv0"].inputs[1]]).max()) == 127
    info = QuantizationInfo.of(q.metadata)
    assert info is not None and info.input_levels == 255 and info.weight_levels == 127
    assert dict(info.layer_levels) == {"conv1": Levels(127, 64), "fc0": Levels(200, 127), "fc1": Levels(200, 127)}
    # The record survives the .q8 file unchanged.
    path = str(tmp_path / "m.q8")
    convertmodel.Model(q).save(path)
    back = convertmodel.load(path)
    assert back.quantization == info and back.metadata[METADATA_KEY] == q.metadata[METADATA_KEY]


def test_metadata_round_trip_and_stable_text(rng: np.random.Generator) -> None:
    q = quantize_graph(mini_vgg(rng), QuantizeOptions(exclude="fc1", fp32_layers=("conv3",)))
    text = q.metadata[METADATA_KEY]
    info = QuantizationInfo.from_metadata(text)
    assert info.to_metadata() == text  # parse + write gives the same bytes
    assert info.kept["fc1"].reason == "excluded by pattern 'fc1'"
    assert info.kept["conv3"].reason == "kept fp32 by the accuracy-aware fallback"
    assert info.fp32_layers == ("conv3",) and info.layers_quantized == 3
    # Keys added later appear only when used, so a default run's record has the first release's keys.
    plain = json.loads(quantize_graph(mini_vgg(rng)).metadata[METADATA_KEY])
    assert set(plain) == {"scheme", "input_levels", "weight_levels", "compat", "excluded", "counts", "kept", "fp32_ops"}
    with pytest.raises(InvalidModelError, match="quantization record"):
        QuantizationInfo.from_metadata('{"scheme": 1}')
    assert QuantizationInfo.of({}) is None and not is_quantized(mini_vgg(rng))


def test_rules_are_a_registry() -> None:
    assert {k.op_type for k in RULES.keys() if k.domain == ""} >= {"Conv", "Gemm", "MatMul"}
    with pytest.raises(KeyError, match="registered twice"):
        RULES.add(RuleKey("", "Conv"), lambda g, n: "x")


def test_model_quantize_signature(rng: np.random.Generator) -> None:
    m = convertmodel.Model(mini_vgg(rng))
    a = m.quantize(exclude="fc1", input_levels=100)
    b = m.quantize(QuantizeOptions(exclude=("fc1",), input_levels=100))
    assert a.metadata[METADATA_KEY] == b.metadata[METADATA_KEY]
    with pytest.raises(UsageError, match="not both"):
        m.quantize(QuantizeOptions(), compat="bigdl")
