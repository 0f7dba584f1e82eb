"""Every real BigDL fixture (fixtures/bigdl/manifest.json, made by real BigDL 0.3.0 and 2.4) read by
convertmodel and run by its runtime, compared with BigDL's own recorded output on the same input."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import pytest

import convertmodel
from convertmodel.errors import UnsupportedOpError
from convertmodel.readers.bigdl import read
from convertmodel.runtime.executor import run_graph
from tests.helpers import FIXTURES

ROOT = os.path.join(FIXTURES, "bigdl")


def _entries(kind: str, formats: tuple[str, ...]) -> list[Any]:
    with open(os.path.join(ROOT, "manifest.json")) as f:
        files = json.load(f)["files"]
    out = []
    for e in files:
        if "unsupported" in e or e["kind"] != kind or e["format"] not in formats:
            continue
        out.append(pytest.param(e, id=e["file"]))
    return out


def _run(e: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    opts = {"weights": os.path.join(ROOT, e["weights"])} if e.get("weights") else {}
    m = convertmodel.load(os.path.join(ROOT, e["file"]), **opts)
    x = np.load(os.path.join(ROOT, e["input"]))
    ref = np.load(os.path.join(ROOT, e["output"]))
    y = np.asarray(m.predict(x))
    # BigDL's View drops a batch dimension of 1; sizes must agree element for element.
    assert y.size == ref.size, f"{e['file']}: output {y.shape} vs BigDL's {ref.shape}"
    return y.reshape(ref.shape), ref


#: BigDL modules the reader refuses, with the reason (the fixtures holding them xfail, strict).
NO_IR_EQUIVALENT = {
    "DetectionOutputSSD": "DetectionOutputSSD's output (per image: a count, then max-detections x 6 values, "
    "width data-dependent) has no IR op; the IR's DetectionOutput has Caffe's (1, 1, K, 7) layout",
}


@pytest.mark.parametrize("e", _entries("fp32", ("protobuf", "protobuf+weights")))
def test_fp32_protobuf_matches_bigdl(e: dict[str, Any], request: pytest.FixtureRequest) -> None:
    for cls, why in NO_IR_EQUIVALENT.items():
        if cls in e.get("modules", []):
            request.applymarker(pytest.mark.xfail(strict=True, raises=UnsupportedOpError, reason=why))
    y, ref = _run(e)
    scale = float(np.abs(ref).max())
    err = float(np.abs(y - ref).max())
    assert err <= 1e-5 * scale, f"{e['file']}: max |diff| {err:.3g} > 1e-5 x {scale:.3g}"


#: (generation prefix, net) -> why BigDL's int8 output is not reproduced within 1e-4 (strict expected failures;
#: measured: max |diff| vs BigDL with arith="bigquant" / with the contract).
NOT_REPRODUCED = {
    ("0.3", "upsample"): "2.2e-3 / 4.9e-3, cause not found: the error is spread over every output position "
    "(not a few flipped codes) and stays 1.6e-3..2.5e-3 with ONNX's LRN, with the zero padding folded into the "
    "first conv, or with any one conv on the contract; the conv probes (conv3x3, conv1x1) and 18 other nets: <= 5e-7",
    ("2.", "upsample"): "1.7e-3 / 2.9e-3: as for 0.3's upsample",
}


def _not_reproduced(e: dict[str, Any]) -> str | None:
    return next(
        (why for (g, n), why in NOT_REPRODUCED.items() if e["generation"].startswith(g) and e["net"] == n), None
    )


@pytest.mark.parametrize("e", _entries("quantized", ("protobuf",)))
def test_quantized_matches_bigdl_int8(e: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """BigDL-quantized models run by convertmodel's runtime: within 1e-4 of BigDL's own int8 output.

    The reader sets arith="bigquant" on the QConv/QGemm it builds (BigDL's BigQuant arithmetic,
    docs/quantization.md section 9) and BigDL's LRN arithmetic on LRN; measured: within 5e-7 on every
    fixture but those in NOT_REPRODUCED.
    """
    why = _not_reproduced(e)
    if why is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=why))
    y, ref = _run(e)
    err = float(np.abs(y - ref).max())
    assert err <= 1e-4, f"{e['file']}: max |diff| {err:.3g} > 1e-4 (output scale {float(np.abs(ref).max()):.3g})"


def _with_contract(g: Any) -> Any:
    """The same graph with every QConv/QGemm back on the int8 contract's arithmetic."""
    nodes = [
        dataclasses.replace(n, attrs={**n.attrs, "arith": "contract"}) if n.op_type in ("QConv", "QGemm") else n
        for n in g.nodes
    ]
    return g.replace(nodes=nodes)


@pytest.mark.parametrize(("gen", "net"), [("v2.4", "lenet"), ("v2.4", "conv3x3"), ("v0.3", "conv3x3")])
def test_bigquant_arithmetic_is_what_matches(gen: str, net: str) -> None:
    """The same weights with the contract's arithmetic are far from BigDL (so the mode is what matches), and
    the bigquant nodes run on the numpy reference even where native kernels exist."""
    from convertmodel.runtime.executor import Executor

    path = os.path.join(ROOT, gen, f"{net}_q.bigdl")
    g = convertmodel.load(path).graph
    x = np.load(os.path.join(ROOT, "inputs", f"{net}.npy"))
    ref = np.load(path + ".out.npy")
    ex = Executor(g)
    bigquant = np.asarray(ex.run({g.inputs[0].name: x})[g.outputs[0].name]).reshape(ref.shape)
    contract = np.asarray(run_graph(_with_contract(g), {g.inputs[0].name: x})[g.outputs[0].name]).reshape(ref.shape)
    assert float(np.abs(bigquant - ref).max()) <= 1e-6
    assert float(np.abs(contract - ref).max()) >= 1e-2 * float(np.abs(ref).max())
    q_backends = {s.backend for s in ex.steps if s.node.op_type in ("QConv", "QGemm")}
    assert q_backends == {"ref"}


@pytest.mark.parametrize("e", _entries("quantized", ("protobuf",)))
def test_quantized_close_to_bigdl_int8(e: dict[str, Any]) -> None:
    """A coarse bound every BigDL-quantized fixture meets (catches a wrong weight, scale or bias)."""
    y, ref = _run(e)
    err = float(np.abs(y - ref).max())
    assert err <= 0.02 * float(np.abs(ref).max()), f"{e['file']}: max |diff| {err:.3g}"


def _fp32_twin(e: dict[str, Any]) -> str:
    return os.path.join(ROOT, e["file"].replace("_q.bigdl", ".bigdl"))


@pytest.mark.parametrize("e", _entries("quantized", ("protobuf",)))
def test_quantized_file_equals_our_bigdl_compat_quantization(e: dict[str, Any]) -> None:
    """BigDL's stored int8 codes re-quantized at load give exactly the weights our own
    ``--compat bigdl`` quantization of the fp32 twin gives: with the same (contract) arithmetic, the same
    QConv/QGemm outputs, bit for bit."""
    twin = _fp32_twin(e)
    if not os.path.exists(twin):
        pytest.skip(f"no fp32 twin {twin}")
    if e["generation"].startswith("0.3") and e["net"] == "nhwc":
        # BigDL 0.3's quantize() folds the NHWC BatchNorm into the conv wrongly: its own int8 output
        # is 10% off its fp32 output (2.4: 0.2%). Our reading follows the file (test above), not fp32.
        pytest.skip("BigDL 0.3 mis-fuses NHWC BatchNorm when quantizing")
    if e["generation"].startswith("2.") and e["net"] == "grouped_dilated":
        # BigDL 2.4 writes no bias for its grouped quantized conv (the file has none, so BigDL's
        # int8 output and ours use zeros there, within 1.1e-4 of each other); fp32 has one.
        pytest.skip("BigDL 2.4 drops the bias of a grouped quantized conv")
    if e["generation"].startswith("0.3") and e["net"] == "grouped_dilated":
        # BigDL 0.3's grouped int8 conv adds the first group's bias to every group; the reader follows it.
        pytest.skip("BigDL 0.3 applies the first group's bias to every group of a grouped quantized conv")
    q_file = convertmodel.load(os.path.join(ROOT, e["file"]))
    fp32 = convertmodel.load(twin)
    # Layers BigDL kept fp32 (SpatialShareConvolution) stay fp32 in ours too: match them by position.
    ours = [n for n in fp32.graph.nodes if n.op_type in ("Conv", "Gemm")]
    theirs = [n for n in q_file.graph.nodes if n.op_type in ("Conv", "Gemm", "QConv", "QGemm")]
    assert len(ours) == len(theirs)
    keep = [a.name for a, b in zip(ours, theirs, strict=True) if b.op_type in ("Conv", "Gemm")]
    q_ours = fp32.quantize(compat="bigdl", exclude=keep)
    x = np.load(os.path.join(ROOT, e["input"]))
    # Same arithmetic on both sides: ours keeps the contract (--compat bigdl is exact on every ISA).
    g = _with_contract(q_file.graph)
    a, b = np.asarray(run_graph(g, {g.inputs[0].name: x})[g.outputs[0].name]), np.asarray(q_ours.predict(x))
    assert a.shape == b.shape
    # Identical weights and windows; only fp32 ops BigDL kept unfused (ReLU after the int8 op,
    # BatchNorm folded by our pass) may round differently.
    assert float(np.abs(a - b).max()) <= 1e-5 * max(float(np.abs(b).max()), 1.0)


def test_quantized_metadata_and_ops() -> None:
    g = read(os.path.join(ROOT, "v2.4", "lenet_q.bigdl"))
    assert sum(n.op_type == "QConv" for n in g.nodes) == 2
    assert sum(n.op_type == "QGemm" for n in g.nodes) == 3
    info = json.loads(g.metadata["quantization"])
    assert info["input_levels"] == 127 and info["weight_levels"] == 64 and info["compat"] == "bigdl"
    for n in g.nodes:
        if n.op_type in ("QConv", "QGemm"):
            assert n.attrs["input_levels"] == 127
            wq = g.constants[n.inputs[1]]
            assert wq.dtype == np.int8 and int(np.abs(wq).max()) <= 64


def test_split_definition_finds_its_weights_and_matches_single_file() -> None:
    a = read(os.path.join(ROOT, "v2.4", "lenet.bigdl"))
    b = read(os.path.join(ROOT, "v2.4", "lenet_split.bigdl"))  # lenet_split.weights found beside it
    assert b.metadata["weights"] == "lenet_split.weights"
    wa = sorted((v.shape, float(v.sum())) for v in a.constants.values() if v.dtype == np.float32)
    wb = sorted((v.shape, float(v.sum())) for v in b.constants.values() if v.dtype == np.float32)
    assert wa == wb


def test_both_generations_class_names() -> None:
    for gen in ("v0.3", "v2.4"):
        p = os.path.join(ROOT, gen, "lenet.bigdl")
        if not os.path.exists(p):
            pytest.skip(f"{p} not generated")
        g = read(p)
        assert g.metadata["source_format"] == "bigdl"
        assert {n.op_type for n in g.nodes} >= {"Conv", "MaxPool", "Gemm", "LogSoftmax"}


def test_ssd_head_reads_up_to_detection_output() -> None:
    """PriorBox, InferReshape, NormalizeScale, Transpose and JoinTable of the SSD fixture are read;
    only DetectionOutputSSD is refused, by name."""
    p = os.path.join(ROOT, "v2.4", "ssd.bigdl")
    if not os.path.exists(p):
        pytest.skip(f"{p} not generated")
    with pytest.raises(UnsupportedOpError) as ei:
        read(p)
    assert list(ei.value.unsupported) == ["DetectionOutputSSD"]
