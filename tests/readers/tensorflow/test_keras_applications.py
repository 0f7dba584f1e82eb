"""Whole Keras architectures (keras.applications, random weights: their structure, not their training)
saved as .keras and read back: ResNet50 (ZeroPadding, BN, residual Add), MobileNetV2 (ReLU6, depthwise,
inverted residuals), EfficientNetB0 (Rescaling + Normalization, swish, squeeze-excite Reshape/Multiply),
DenseNet121 (Concatenate chains). Compared with Keras at the pooled features before the classifier (where
random-init activations are still well away from zero) and at the logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convertmodel
from tests.helpers import assert_close
from tests.readers.tensorflow.tfhelp import tensorflow

tensorflow()
keras = pytest.importorskip("keras")

APPS = {
    "ResNet50": lambda: keras.applications.ResNet50(input_shape=(32, 32, 3), weights=None, classifier_activation=None),
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        (64, 64, 3), alpha=0.35, weights=None, classifier_activation=None
    ),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(
        input_shape=(32, 32, 3), weights=None, classifier_activation=None
    ),
    "DenseNet121": lambda: keras.applications.DenseNet121(
        input_shape=(32, 32, 3), weights=None, classifier_activation=None
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPS))
def test_application_matches_keras(name: str, tmp_path: Any) -> None:
    rng = np.random.default_rng(11)
    model = APPS[name]()
    for w in model.weights:  # non-trivial BatchNorm statistics
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, tuple(w.shape)).astype(np.float32))
        elif "moving_mean" in w.path:
            w.assign(rng.normal(0.0, 0.1, tuple(w.shape)).astype(np.float32))
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    x = (rng.random((2, *model.inputs[0].shape[1:])) * 255).astype(np.float32)
    feat = model.layers[-2].name
    m = convertmodel.load(path, outputs=[feat, model.layers[-1].name])
    assert m.graph.op_counts().get("Transpose", 0) == 1, m.graph.op_counts()  # the input's NHWC -> NCHW only
    got = m.predict(x)
    ref_feat = np.asarray(keras.Model(model.inputs, model.layers[-2].output)(x))
    ref = np.asarray(model(x))
    for k, r in ((feat, ref_feat), (model.layers[-1].name, ref)):
        assert_close(got[k], r, rtol=1e-4, atol=1e-5 * float(np.abs(r).max()), what=f"{name}:{k}")
