"""Issue 15, wrong answers that looked right in verify: the reference found beside a .q8, PASS without a
budget, a fallback that met the budget by giving up on int8, preprocessing by container, preset layouts."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tests.cli import run_cli
from tests.helpers import FMNIST, SUBSET_IMAGES, SUBSET_LABELS, fixture_model


def _json(out: str) -> dict:
    return json.JSONDecoder().raw_decode(out)[0]  # the report (an error object may follow it)


@pytest.fixture(scope="module")
def q8_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("ref")
    shutil.copy(fixture_model("lenet5"), d / "lenet5.onnx")
    assert run_cli(["quantize", str(d / "lenet5.onnx"), "--out", str(d / "lenet5.q8")])[0] == 0
    return str(d)


def test_a_different_model_under_the_source_name_is_refused(q8_dir, tmp_path, capsys) -> None:
    d = tmp_path / "swapped"
    d.mkdir()
    shutil.copy(os.path.join(q8_dir, "lenet5.q8"), d / "lenet5.q8")
    shutil.copy(fixture_model("mobilenet"), d / "lenet5.onnx")  # another model under the recorded name
    args = ["verify", str(d / "lenet5.q8"), "--data", SUBSET_IMAGES, "--labels", SUBSET_LABELS, "--limit", "50"]
    code, out, err = run_cli(args, capsys)
    assert code == 7 and "is not the model this .q8 was made from" in err and "sha256" in err
    assert "PASS" not in out
    # Named explicitly, it is the user's choice: measured, with a warning and the mismatch in the JSON.
    code, out, err = run_cli(["--json", *args, "--reference", str(d / "lenet5.onnx")], capsys)
    assert code == 0, err
    assert "not the file lenet5.q8 was made from" in err
    assert _json(out)["reference"]["sha256_matches"] is False


def test_the_recorded_source_is_checked_and_no_budget_means_no_pass(q8_dir, capsys) -> None:
    q8 = os.path.join(q8_dir, "lenet5.q8")
    args = ["verify", q8, "--data", SUBSET_IMAGES, "--labels", SUBSET_LABELS, "--limit", "50"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "PASS" not in out and "NOT GATED" in out
    code, out, err = run_cli(["--json", *args], capsys)
    rep = _json(out)
    assert rep["reference"]["sha256_matches"] is True and rep["reference"]["found_by"] == "source_file"
    assert rep["drop"]["passed"] is None
    code, out, _ = run_cli([*args, "--max-drop", "5"], capsys)
    assert code == 0 and "PASS" in out


def test_fallback_that_gives_up_on_int8_exits_6_unless_allowed(tmp_path, capsys) -> None:
    src = shutil.copy(fixture_model("lenet5"), tmp_path / "lenet5.onnx")
    fb = str(tmp_path / "fb.q8")
    # 1-level input windows: only keeping every layer fp32 reaches a zero agreement drop
    args = ["verify", str(src), "--data", SUBSET_IMAGES, "--metric", "agreement", "--max-drop", "0"]
    args += ["--input-levels", "1", "--fallback-out", fb, "--limit", "100"]
    code, out, err = run_cli(["--json", *args], capsys)
    assert code == 6 and "only by keeping 5 of 5" in err and "--min-int8" in err
    f = _json(out)["fallback"]
    assert f["budget_met"] and not f["enough_int8"] and f["int8_weight_fraction"] == 0.0
    assert "int8_time_cost_seconds" not in f  # no signed "cost" that reads as a gain
    assert f["file_bytes"] > f["source_bytes"]
    os.remove(fb)
    code, out, err = run_cli([*args, "--min-int8", "0"], capsys)
    assert code == 0, err
    assert "not smaller than its source" in out and "budget met" in out


def _png_folder(root, n: int) -> str:
    """The first ``n`` IDX images as 8-bit grey PNGs in class folders (the same pixels in another container)."""
    import gzip

    from PIL import Image

    with gzip.open(SUBSET_IMAGES) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(SUBSET_LABELS) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    for k in range(n):
        d = root / f"{int(y[k])}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[k]).save(d / f"{k:04d}.png")
    return str(root)


def test_preprocessing_is_printed_and_image_files_need_a_preset(q8_dir, tmp_path, capsys) -> None:
    q8 = os.path.join(q8_dir, "lenet5.q8")
    idx = ["verify", q8, "--data", SUBSET_IMAGES, "--labels", SUBSET_LABELS, "--limit", "64"]
    code, out, err = run_cli(idx, capsys)
    assert code == 0, err
    assert "preprocessing: gray, NCHW, x/255 (from the data format's convention)" in out
    folder = _png_folder(tmp_path / "png", 64)
    code, _, err = run_cli(["verify", q8, "--data", folder], capsys)
    assert code == 2 and "--preset" in err and "fmnist" in err and "caffe-ssd-300" in err
    code, out, err = run_cli(["--json", "verify", q8, "--data", folder, "--preset", "fmnist"], capsys)
    assert code == 0, err
    png = _json(out)
    code, out, _ = run_cli(["--json", *idx], capsys)
    ref = _json(out)
    assert png["preprocessing_from"] == "preset fmnist" and ref["preprocessing_from"] == "the data format's convention"
    assert png["preprocessing"]["scale"] == ref["preprocessing"]["scale"]
    assert png["fp32"]["top1"] == ref["fp32"]["top1"] and png["int8"]["top1"] == ref["int8"]["top1"]


@pytest.mark.parametrize("preset", ["fmnist", "mnist"])
def test_preset_on_an_nhwc_model_follows_its_input_layout(preset, capsys) -> None:
    keras = os.path.join(FMNIST, "lenet5.keras")
    args = ["--json", "verify", keras, "--data", SUBSET_IMAGES, "--labels", SUBSET_LABELS, "--limit", "32"]
    code, out, err = run_cli([*args, "--preset", preset], capsys)
    assert code == 0, err
    rep = _json(out)
    assert rep["preprocessing"]["layout"] == "NHWC" and rep["fp32"]["top1"] > 70
