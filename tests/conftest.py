import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def lenet() -> str:
    """The trained Fashion-MNIST LeNet-5 ONNX fixture."""
    from tests.helpers import fixture_model

    return fixture_model("lenet5")
