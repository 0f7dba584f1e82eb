"""Every Keras layer the reader handles, in small Keras 3 models saved as .keras and .h5, against Keras.

Weights are random but fixed (BatchNorm statistics too, so normalisation is not the identity);
inputs are random normal. Tolerance as for the TensorFlow ops: rtol 1e-4 plus 1e-5 x max |output|.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convertmodel
from tests.helpers import assert_close
from tests.readers.tensorflow.tfhelp import tensorflow

tensorflow()
keras = pytest.importorskip("keras")
L = keras.layers


def _cnn() -> Any:
    inp = keras.Input((12, 12, 3), name="img")
    x = L.Rescaling(1 / 2.0, offset=-0.25, name="rescale")(inp)
    x = L.Normalization(mean=[0.1, -0.2, 0.3], variance=[1.5, 0.5, 2.0], name="norm")(x)
    x = L.ZeroPadding2D(((1, 0), (0, 1)), name="zpad")(x)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    a = L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, name="sep")(x)
    b = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(x)
    x = L.Add(name="add")([a, b])
    x = L.LeakyReLU(negative_slope=0.1, name="leaky")(x)
    c = L.Conv2D(4, 1, use_bias=False, name="pw")(x)
    d = L.MaxPooling2D(2, strides=1, padding="same", name="mpool")(x)
    x = L.Concatenate(name="cat")([c, d])
    x = L.Multiply(name="mul")([x, L.Activation("sigmoid", name="gate")(x)])
    x = L.UpSampling2D(2, name="up")(x)
    x = L.Cropping2D(((1, 2), (2, 1)), name="crop")(x)
    x = L.AveragePooling2D(3, strides=2, name="apool")(x)
    x = L.ELU(name="elu")(x)
    x = L.Dropout(0.5, name="drop")(x)
    g = L.GlobalAveragePooling2D(name="gap")(x)
    m = L.GlobalMaxPooling2D(name="gmp")(x)
    x = L.Average(name="avg")([g, m, L.Subtract(name="sub")([g, m])])
    x = L.Dense(16, activation="swish", name="fc1")(x)
    x = L.BatchNormalization(name="bn_fc")(x)
    x = L.ReLU(max_value=4.0, name="relu_cap")(x)
    out = L.Dense(5, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="cnn")


def _seq() -> Any:
    return keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            L.Conv2D(6, 3, dilation_rate=2, activation="tanh"),
            L.Conv2D(6, 3, groups=2, padding="same"),
            L.UpSampling2D(2, interpolation="bilinear"),
            L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(3, 2, strides=2, padding="valid"),
            L.MaxPooling2D(4),
            L.Permute((2, 1, 3)),
            L.Flatten(),
            L.Reshape((6, -1)),
            L.Flatten(),
            L.Dense(7, activation="gelu"),
            L.Softmax(),
        ]
    )


def _nested() -> Any:
    """Transfer-learning shapes: a functional backbone inside a functional model, a Sequential head."""
    inp = keras.Input((9, 9, 3), name="img")
    x = L.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    backbone = keras.Model(inp, L.ReLU(name="r")(x), name="backbone")
    head = keras.Sequential(
        [L.GlobalAveragePooling2D(name="gap"), L.Dense(4, activation="softmax", name="fc")], name="head"
    )
    outer_in = keras.Input((9, 9, 3), name="image")
    y = L.Rescaling(0.5, name="pre")(outer_in)
    return keras.Model(outer_in, head(backbone(y)), name="nested")


MODELS: dict[str, Callable[[], Any]] = {"functional": _cnn, "sequential": _seq, "nested": _nested}


def _randomize(model: Any, rng: np.random.Generator) -> None:
    for w in model.weights:
        shape = tuple(w.shape)
        if "variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        elif "count" in w.path:
            continue
        else:
            w.assign((rng.standard_normal(shape) * 0.5).astype(np.float32))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, list[str]]]:
    d = tmp_path_factory.mktemp("keras")
    rng = np.random.default_rng(3)
    out = {}
    for name, build in MODELS.items():
        model = build()
        _randomize(model, rng)
        paths = [str(d / f"{name}.keras"), str(d / f"{name}.h5")]
        for p in paths:
            model.save(p)
        out[name] = (model, paths)
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_layers_match_keras(name: str, ext: str, saved: dict[str, Any]) -> None:
    model, paths = saved[name]
    path = paths[0] if ext == "keras" else paths[1]
    shape = (3, *model.inputs[0].shape[1:])
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    ref = np.asarray(model(x, training=False))
    m = convertmodel.load(path)
    assert m.metadata["source_format"] == "keras" and m.metadata["keras_container"] == (
        "keras" if ext == "keras" else "h5"
    )
    got = m.predict(x)
    assert_close(got, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()), what=f"{name}.{ext}")


def test_outputs_cut_and_input_shape(saved: dict[str, Any]) -> None:
    """outputs= stops at a layer; inputs=NAME:SHAPE fixes the batch."""
    model, paths = saved["functional"]
    sub = keras.Model(model.inputs, model.get_layer("cat").output)
    x = np.random.default_rng(6).standard_normal((2, 12, 12, 3)).astype(np.float32)
    m = convertmodel.load(paths[1], outputs="cat", inputs="img:2,12,12,3")
    assert [o.name for o in m.graph.outputs] == ["cat"] and m.graph.inputs[0].type.shape == (2, 12, 12, 3)
    ref = np.asarray(sub(x))
    assert_close(m.predict(x), ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()), what="cut at cat")
