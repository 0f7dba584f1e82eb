#!/usr/bin/env python3
"""Write Keras 3 ``.keras`` and ``.h5`` copies of the Fashion-MNIST fixture nets, and a frozen GraphDef.

The nets are rebuilt with ``scripts/train_fmnist.py``'s ``build`` (the same layers and names), their
weights are copied from ``fixtures/fmnist/NAME_savedmodel`` (the trained SavedModels, matched by
variable path), and the copies must reproduce the SavedModel's outputs on the 1,000 fixture test
images before they are written (``fixtures/fmnist/NAME.keras``, ``fixtures/fmnist/NAME.h5``).
``fixtures/fmnist/lenet5_frozen.pb`` is the LeNet SavedModel's serving signature frozen by
TensorFlow (convert_variables_to_constants_v2): the TF2 frozen-GraphDef export, read without TF.

    pip install tensorflow-cpu
    python scripts/make_keras_fixtures.py
"""

from __future__ import annotations

import gzip
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "fixtures", "fmnist")
sys.path.insert(0, os.path.join(REPO, "scripts"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def images() -> np.ndarray:
    with gzip.open(os.path.join(FIX, "data", "t10k-1000-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    return np.frombuffer(raw[16:], np.uint8).reshape(-1, 28, 28, 1).astype(np.float32) / 255.0


def main() -> None:
    import tensorflow as tf
    from train_fmnist import build

    x = images()
    for net in ("lenet5", "vgg", "mobilenet"):
        sm = tf.saved_model.load(os.path.join(FIX, f"{net}_savedmodel"))
        values = {v.name.removesuffix(":0"): v.numpy() for v in sm.variables}
        model = build(net)
        for w in model.weights:
            w.assign(values[w.path])
        ref = next(iter(sm.signatures["serving_default"](tf.constant(x)).values())).numpy()
        got = np.asarray(model(x, training=False))
        err = float(np.abs(got - ref).max())
        if err > 1e-5:
            raise SystemExit(f"{net}: rebuilt Keras model differs from the SavedModel by {err}")
        for ext in ("keras", "h5"):
            out = os.path.join(FIX, f"{net}.{ext}")
            model.save(out)
            print(f"{out}: {os.path.getsize(out)} bytes (max |diff| vs SavedModel {err:.1e})")
        if net == "lenet5":
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

            frozen = convert_variables_to_constants_v2(sm.signatures["serving_default"])
            out = os.path.join(FIX, "lenet5_frozen.pb")
            with open(out, "wb") as f:
                f.write(frozen.graph.as_graph_def().SerializeToString())
            print(f"{out}: {os.path.getsize(out)} bytes, inputs {[t.name for t in frozen.inputs]}")


if __name__ == "__main__":
    main()
