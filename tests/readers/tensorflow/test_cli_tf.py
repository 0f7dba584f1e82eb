"""Every command takes TensorFlow models: convert, quantize, inspect, predict, verify, bench.

SavedModel directory, frozen .pb, Keras .h5 and .keras of the trained Fashion-MNIST LeNet, on the
fixture's real test images; the .q8 records the source format and the source's sha256.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import numpy as np
import pytest

import convertmodel
from tests.cli import run_cli
from tests.readers.tensorflow.tfhelp import FMNIST, fmnist_images

IMAGES = os.path.join(FMNIST, "data", "t10k-1000-images-idx3-ubyte.gz")
LABELS = os.path.join(FMNIST, "data", "t10k-1000-labels-idx1-ubyte.gz")
SOURCES = {
    "savedmodel": "lenet5_savedmodel",
    "tensorflow": "lenet5_frozen.pb",
    "keras-h5": "lenet5.h5",
    "keras": "lenet5.keras",
}


def _sha(path: str) -> str:
    from convertmodel.fsutil import file_sha256

    return file_sha256(path)


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_quantize_inspect_predict_verify(kind: str, tmp_path: Any, capsys: Any) -> None:
    if kind == "savedmodel":
        pytest.importorskip("tensorflow")
    src = os.path.join(FMNIST, SOURCES[kind])
    fmt = kind.split("-")[0]
    q8 = tmp_path / "lenet5.q8"
    rc, _, err = run_cli(["-q", "quantize", "--in", src, "--out", str(q8)], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["--json", "inspect", str(q8)], capsys)
    assert rc == 0, err
    meta = convertmodel.load(str(q8)).metadata
    assert meta["source_format"] == fmt and len(meta["source_sha256"]) == 64
    if os.path.isfile(src):
        assert meta["source_sha256"] == _sha(src)
    assert fmt in out

    x, _ = fmnist_images(8)
    np.save(tmp_path / "x.npy", x)
    rc, _, err = run_cli(
        ["-q", "predict", src, "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")], capsys
    )
    assert rc == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), convertmodel.load(src).predict(x), rtol=1e-6, atol=1e-7)

    rep = tmp_path / "verify.json"
    args = ["-q", "verify", src, "--data", IMAGES, "--labels", LABELS, "--limit", "200", "--max-drop", "1.5"]
    rc, _, err = run_cli([*args, "--json", str(rep)], capsys)
    assert rc == 0, err
    report = json.loads(rep.read_text())
    assert report["fp32"]["top1"] > 80.0 and report["drop"]["passed"] is True, report["drop"]


def test_convert_and_bench_a_savedmodel(tmp_path: Any, capsys: Any) -> None:
    pytest.importorskip("tensorflow")
    src = os.path.join(FMNIST, "lenet5_savedmodel")
    out = tmp_path / "fp32.q8"
    rc, _, err = run_cli(["-q", "convert", "--in", src, "--out", str(out)], capsys)
    assert rc == 0, err
    with gzip.open(IMAGES) as f:
        x = np.frombuffer(f.read()[16:], np.uint8)[: 28 * 28 * 4].reshape(4, 28, 28, 1).astype(np.float32) / 255
    np.testing.assert_allclose(convertmodel.load(str(out)).predict(x), convertmodel.load(src).predict(x), rtol=1e-6)
    rc, out_text, err = run_cli(["bench", src, "--iterations", "2", "--warmup", "1", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out_text)


def test_tf_inputs_outputs_and_signature_flags(tmp_path: Any, capsys: Any) -> None:
    """--tf-inputs/--tf-outputs cut the graph (BigDL's --tf_inputs/--tf_outputs); --signature picks one."""
    src = os.path.join(FMNIST, "lenet5.h5")
    q8 = tmp_path / "cut.q8"
    rc, _, err = run_cli(
        ["-q", "convert", "--in", src, "--out", str(q8), "--tf-outputs", "pool1", "--tf-inputs", "image:2,28,28,1"],
        capsys,
    )
    assert rc == 0, err
    g = convertmodel.load(str(q8)).graph
    assert [o.name for o in g.outputs] == ["pool1"] and g.inputs[0].type.shape == (2, 28, 28, 1)
    full = convertmodel.load(src, outputs="pool1")
    x, _ = fmnist_images(2)
    np.testing.assert_allclose(convertmodel.load(str(q8)).predict(x), full.predict(x), rtol=1e-6)
    rc, _, err = run_cli(["inspect", os.path.join(FMNIST, "lenet5_savedmodel"), "--signature", "nope"], capsys)
    assert rc == 2 and "no signature 'nope'" in err and "serving_default" in err, err
