"""verify end to end on the trained Fashion-MNIST fixtures: exit codes 0 and 6, the JSON report."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import convertmodel
from convertmodel import errors
from convertmodel.data.datasets import read_idx
from convertmodel.fsutil import file_sha256
from tests.cli import run_cli
from tests.helpers import SUBSET_IMAGES, SUBSET_LABELS, fixture_model

N = 160


def _ort_top1(path: str, n: int) -> tuple[float, np.ndarray]:
    """fp32 accuracy from onnxruntime, the independent reference."""
    import onnxruntime as ort

    x = (read_idx(SUBSET_IMAGES, n).astype(np.float32) / np.float32(255))[:, None]
    y = read_idx(SUBSET_LABELS, n).astype(np.int64)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    probs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return 100.0 * float((probs.argmax(1) == y).mean()), probs


def test_verify_passes_and_reports(lenet, tmp_path, capsys):
    rep_path = tmp_path / "report.json"
    code, out, err = run_cli(
        [
            "verify",
            lenet,
            "--data",
            SUBSET_IMAGES,
            "--limit",
            str(N),
            "--batch-size",
            "50",
            "--max-drop",
            "2",
            "--json",
            str(rep_path),
            "--per-layer",
        ],
        capsys,
    )
    assert code == 0, err
    assert "PASS" in out and "per-layer" in out
    rep = json.loads(rep_path.read_text())
    ref_top1, _ = _ort_top1(lenet, N)
    assert rep["fp32"]["top1"] == pytest.approx(ref_top1)
    assert rep["data"]["samples"] == N and rep["metric"] == "top1"
    assert rep["model"]["sha256"] == file_sha256(lenet)
    assert rep["tool"]["version"] == convertmodel.__version__
    assert rep["drop"]["value"] == pytest.approx(rep["fp32"]["top1"] - rep["int8"]["top1"])
    assert rep["drop"]["passed"] is True
    # The data hash: sha256 over (sha256 of the per-image sha256 digests, sha256 of the labels as int64 LE).
    digests = b"".join(hashlib.sha256(im.tobytes()).digest() for im in read_idx(SUBSET_IMAGES, N))
    lab = read_idx(SUBSET_LABELS, N).astype("<i8").tobytes()
    expect = hashlib.sha256(hashlib.sha256(digests).digest() + hashlib.sha256(lab).digest()).hexdigest()
    assert rep["data"]["sha256"] == expect
    # Per-class counts add up; per-layer rows sorted worst SQNR first, one per quantized layer.
    assert sum(v["total"] for v in rep["fp32"]["per_class"].values()) == N
    sq = [r["sqnr_db"] for r in rep["per_layer"]]
    assert sq == sorted(sq) and len(sq) == 5
    assert 0.99 < rep["agreement"]["cosine_mean"] <= 1.0


def test_verify_gate_fails_with_exit_6(lenet, tmp_path, capsys):
    # A genuinely damaged int8 model: 1-level (binary) input windows destroy the activations.
    bad = tmp_path / "bad.q8"
    convertmodel.load(lenet).quantize(input_levels=1).save(str(bad))
    rep_path = tmp_path / "r.json"
    code, out, err = run_cli(
        [
            "verify",
            str(bad),
            "--reference",
            lenet,
            "--data",
            SUBSET_IMAGES,
            "--limit",
            str(N),
            "--max-drop",
            "0.1",
            "--json",
            str(rep_path),
        ],
        capsys,
    )
    assert code == errors.EXIT_ACCURACY_GATE == 6
    assert "FAIL" in out and "exceeds --max-drop 0.1" in err
    rep = json.loads(rep_path.read_text())  # the report is written before the gate fails
    assert rep["drop"]["passed"] is False and rep["drop"]["value"] > 0.1
    assert rep["reference"]["sha256"] == file_sha256(lenet) and rep["model"]["quantized"] is True


def test_relative_gate_and_json_stdout(lenet, tmp_path, capsys):
    bad = tmp_path / "bad.q8"
    convertmodel.load(lenet).quantize(input_levels=1).save(str(bad))
    code, out, _ = run_cli(
        [
            "--json",
            "verify",
            str(bad),
            "--reference",
            lenet,
            "--data",
            SUBSET_IMAGES,
            "--limit",
            "60",
            "--relative",
            "--max-drop",
            "100",
        ],
        capsys,
    )
    rep = json.loads(out)
    assert code == 0 and rep["drop"]["relative_gate"] is True
    assert rep["drop"]["relative_percent"] == pytest.approx(100 * rep["drop"]["value"] / rep["fp32"]["top1"])


def test_agreement_without_labels_and_preset(lenet, tmp_path, capsys):
    x = read_idx(SUBSET_IMAGES, 40)
    np.save(tmp_path / "x.npy", x)  # uint8 images, no labels
    code, out, _ = run_cli(["--json", "verify", lenet, "--data", str(tmp_path / "x.npy"), "--preset", "fmnist"], capsys)
    rep = json.loads(out)
    assert code == 0 and rep["metric"] == "agreement" and rep["data"]["kind"] == "unlabelled"
    assert rep["int8"]["top1_agreement"] == rep["agreement"]["top1_agreement"]
    assert rep["preprocessing"]["scale"] == pytest.approx(1 / 255)


def test_reference_required_for_q8(lenet, tmp_path, capsys):
    q = tmp_path / "m.q8"
    convertmodel.load(lenet).quantize().save(str(q))
    code, _, err = run_cli(["verify", str(q), "--data", SUBSET_IMAGES, "--limit", "10"], capsys)
    # The .q8 records source_file "lenet5.onnx", which is not beside it in tmp_path.
    assert code == errors.EXIT_IO and "--reference" in err


def test_save_preprocessing_is_reused(lenet, tmp_path, capsys):
    q = tmp_path / "m.q8"
    convertmodel.load(lenet).quantize().save(str(q))
    code, _, err = run_cli(
        [
            "verify",
            str(q),
            "--reference",
            lenet,
            "--data",
            SUBSET_IMAGES,
            "--limit",
            "20",
            "--scale",
            "0.5",
            "--save-preprocessing",
        ],
        capsys,
    )
    assert code == 0, err
    meta = convertmodel.load(str(q)).metadata
    assert json.loads(meta["preprocessing"])["scale"] == 0.5
    code, out, _ = run_cli(
        ["--json", "verify", str(q), "--reference", lenet, "--data", SUBSET_IMAGES, "--limit", "20"], capsys
    )
    assert json.loads(out)["preprocessing"]["scale"] == 0.5


def test_fallback_out_unmeetable_budget_exits_6_but_saves_best(lenet, tmp_path, capsys):
    out_q8 = tmp_path / "best.q8"
    rep_path = tmp_path / "r.json"
    # A negative budget asks int8 to beat fp32 by a point: impossible once every layer is fp32 (drop 0).
    code, _out, err = run_cli(
        [
            "verify",
            lenet,
            "--data",
            SUBSET_IMAGES,
            "--limit",
            "60",
            "--max-drop",
            "-1",
            "--fallback-out",
            str(out_q8),
            "--json",
            str(rep_path),
        ],
        capsys,
    )
    assert code == errors.EXIT_ACCURACY_GATE, err
    rep = json.loads(rep_path.read_text())
    fb = rep["fallback"]
    assert fb["budget_met"] is False
    assert len(fb["steps"]) == 1 + len(rep["fallback"]["steps"][-1]["fp32_layers"]) == 6  # LeNet-5: 5 layers
    best = convertmodel.load(str(out_q8))
    assert json.loads(best.metadata["fallback_fp32_layers"]) == fb["fp32_layers"]
    assert json.loads(best.metadata["preprocessing"])["color"] == "gray"
    assert min(s["drop"] for s in fb["steps"]) == pytest.approx(rep["drop"]["value"])


@pytest.mark.parametrize("net", ["lenet5", "vgg", "mobilenet"])
def test_trained_nets_int8_agree_with_fp32(net, tmp_path, capsys):
    # On all 10,000 test images the three nets agree on 99.58-99.85% of top-1 classes
    # (fixtures/fmnist/verify_bench.json); 99% on the 1,000-image subset leaves room for ~5 extra flips.
    path = fixture_model(net)
    code, out, _ = run_cli(["--json", "verify", path, "--data", SUBSET_IMAGES, "--batch-size", "250"], capsys)
    rep = json.loads(out)
    assert code == 0 and rep["data"]["samples"] == 1000
    assert rep["agreement"]["top1_agreement"] >= 99.0
    assert rep["agreement"]["cosine_mean"] > 0.999
    assert abs(rep["drop"]["value"]) <= 0.5
