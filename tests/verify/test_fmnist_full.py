"""Issue target: int8 top-1 drop < 0.1 pp on all 10,000 Fashion-MNIST test images, for each trained net.

The data is Debian's ``dataset-fashion-mnist`` (installed by .ci/run). Locally the test skips
without it, under CI (CONVERTMODEL_REQUIRE_MODELS=1) a missing data set fails.
"""

from __future__ import annotations

import json
import os

import pytest

from convertmodel.cli.main import main
from tests.helpers import FIXTURES

DATA_DIR = "/usr/share/datasets/fashion-mnist"
IMAGES = os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")
LABELS = os.path.join(DATA_DIR, "t10k-labels-idx1-ubyte.gz")
MODELS = json.load(open(os.path.join(FIXTURES, "fmnist", "models.json"), encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.real_model
@pytest.mark.parametrize("net", sorted(MODELS))
def test_int8_drop_below_0_1_pp_on_10000_images(net: str, tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists(IMAGES):
        msg = f"{IMAGES} missing: apt-get install dataset-fashion-mnist"
        if os.environ.get("CONVERTMODEL_REQUIRE_MODELS"):
            pytest.fail(msg)
        pytest.skip(msg)
    src = os.path.join(FIXTURES, "fmnist", MODELS[net]["onnx"])
    with pytest.raises(SystemExit) as ei:
        main(
            ["--json", "verify", src, "--data", IMAGES, "--labels", LABELS, "--max-drop", "0.1", "--batch-size", "500"]
        )
    report = json.loads(capsys.readouterr().out)
    assert ei.value.code in (0, None), report["drop"]
    assert report["data"]["samples"] == 10000
    # The fp32 side must reproduce the accuracy recorded at training time (the ONNX export is exact).
    assert report["fp32"]["top1"] == pytest.approx(100 * MODELS[net]["test_accuracy_onnx"], abs=1e-6)
    assert report["drop"]["value"] < 0.1
