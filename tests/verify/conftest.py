from __future__ import annotations

import os

import pytest

from tests.helpers import FIXTURES

FMNIST = os.path.join(FIXTURES, "fmnist")
SUBSET_IMAGES = os.path.join(FMNIST, "data", "t10k-1000-images-idx3-ubyte.gz")
SUBSET_LABELS = os.path.join(FMNIST, "data", "t10k-1000-labels-idx1-ubyte.gz")


def fixture_model(name: str) -> str:
    path = os.path.join(FMNIST, f"{name}.onnx")
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: run python scripts/train_fmnist.py")
    return path


@pytest.fixture
def lenet() -> str:
    return fixture_model("lenet5")
