#!/usr/bin/env python3
"""Train the small Fashion-MNIST CNNs committed in fixtures/fmnist/ (TensorFlow/Keras, CPU).

Three real nets, trained on the 60,000 training images of Debian's ``dataset-fashion-mnist``
package (``apt-get install dataset-fashion-mnist``), evaluated on the 10,000 test images:

* ``lenet5``: LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv5x5(6) - pool - conv5x5(16) - pool
  - fc120 - fc84 - fc10.
* ``vgg``: a VGG-style net (3x3 convs in pairs, BatchNorm after each conv): 2x conv(16) - pool - 2x conv(32)
  - pool - fc64 - fc10.
* ``mobilenet``: a MobileNet-style net (Howard et al. 2017): conv3x3(16), then depthwise-separable blocks
  (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU), global average pooling, fc10. Plain ReLU instead
  of ReLU6 so the int8 pass can fuse it.

Each net is exported with ``model.export(dir)`` to a SavedModel (kept: the TensorFlow reader needs it)
and then to ONNX with ``python -m tf2onnx.convert --saved-model dir`` (Keras 3 breaks tf2onnx's
``from_keras``), with the input made NCHW (``--inputs-as-nchw``) so it takes (N, 1, 28, 28) pixels / 255.
The ONNX file is checked against Keras with onnxruntime on the whole test set. Accuracy, seed and
epochs go to fixtures/fmnist/models.json and README.md. Also writes the first 1,000 test images and
labels as IDX files to fixtures/fmnist/data/ for the README's quick demo.

    python scripts/train_fmnist.py                 # all three nets (about 45 minutes on 2 busy threads)
    python scripts/train_fmnist.py --models lenet5 --epochs 2

Fixed seeds and ``enable_op_determinism`` make a rerun on the same TensorFlow build reproduce the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from convertmodel.data.datasets import read_idx, write_idx  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
EPOCHS = {"lenet5": 10, "vgg": 6, "mobilenet": 6}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def build(name: str):  # type: ignore[no-untyped-def]
    import keras
    from keras import layers

    inp = keras.Input((28, 28, 1), name="image")
    if name == "lenet5":
        x = layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inp)
        x = layers.MaxPooling2D(2, name="pool1")(x)
        x = layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
        x = layers.MaxPooling2D(2, name="pool2")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(120, activation="relu", name="fc1")(x)
        x = layers.Dense(84, activation="relu", name="fc2")(x)
    elif name == "vgg":
        x = inp
        for block, width in ((1, 16), (2, 32)):
            for k in (1, 2):
                x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{block}_{k}")(x)
                x = layers.BatchNormalization(name=f"bn{block}_{k}")(x)
                x = layers.ReLU(name=f"relu{block}_{k}")(x)
            x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(64, activation="relu", name="fc1")(x)
        x = layers.Dropout(0.3, name="drop1")(x)
    elif name == "mobilenet":
        x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
        x = layers.BatchNormalization(name="conv1_bn")(x)
        x = layers.ReLU(name="conv1_relu")(x)
        for k, (width, stride) in enumerate(((32, 1), (64, 2), (128, 2), (128, 1)), start=1):
            x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"dw{k}")(x)
            x = layers.BatchNormalization(name=f"dw{k}_bn")(x)
            x = layers.ReLU(name=f"dw{k}_relu")(x)
            x = layers.Conv2D(width, 1, use_bias=False, name=f"pw{k}")(x)
            x = layers.BatchNormalization(name=f"pw{k}_bn")(x)
            x = layers.ReLU(name=f"pw{k}_relu")(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        raise SystemExit(f"unknown model {name!r}")
    out = layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name=name)


def export_onnx(model, saved_dir: str, onnx_path: str, opset: int) -> None:  # type: ignore[no-untyped-def]
    if os.path.exists(saved_dir):
        shutil.rmtree(saved_dir)
    model.export(saved_dir, verbose=False)
    cmd = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--saved-model",
        saved_dir,
        "--output",
        onnx_path,
        "--opset",
        str(opset),
        "--inputs-as-nchw",
        "image",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"tf2onnx failed for {saved_dir}")


def clean_names(onnx_path: str, model_name: str) -> None:
    """Strip tf2onnx's ``StatefulPartitionedCall/<model>_1/`` prefix and ``_1`` layer suffixes from names.

    Only names change (consistently in nodes, initializers, inputs and outputs), so layer names in reports
    read ``conv1/BiasAdd`` instead of ``StatefulPartitionedCall/lenet5_1/conv1_1/BiasAdd``.
    """
    import re

    import onnx

    m = onnx.load(onnx_path)
    pat = re.compile(rf"^StatefulPartitionedCall/{re.escape(model_name)}_1/")

    def fix(s: str) -> str:
        s = pat.sub("", s)
        return re.sub(r"^([^/]+?)_1/", r"\1/", s)

    g = m.graph
    for n in g.node:
        n.name = fix(n.name)
        n.input[:] = [fix(i) for i in n.input]
        n.output[:] = [fix(o) for o in n.output]
    for t in g.initializer:
        t.name = fix(t.name)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = fix(vi.name)
    onnx.checker.check_model(m)
    onnx.save(m, onnx_path)


def onnx_accuracy(path: str, x_nchw: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    probs = np.concatenate([sess.run(None, {name: x_nchw[s : s + 500]})[0] for s in range(0, len(x_nchw), 500)])
    return float((probs.argmax(1) == y).mean()), probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--out", default=os.path.join(REPO, "fixtures", "fmnist"))
    ap.add_argument("--models", default="lenet5,vgg,mobilenet")
    ap.add_argument("--epochs", type=int, default=0, help="override the per-model epoch count")
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--subset", type=int, default=1000, help="test images copied to OUT/data for the demo")
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    d = args.data_dir
    x_train = read_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))
    y_train = read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x_test = read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
    y_test = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    xtr = (x_train.astype(np.float32) / 255.0)[..., None]
    xte = (x_test.astype(np.float32) / 255.0)[..., None]
    xte_nchw = np.ascontiguousarray(xte.transpose(0, 3, 1, 2))

    os.makedirs(os.path.join(args.out, "data"), exist_ok=True)
    n = args.subset
    write_idx(os.path.join(args.out, "data", f"t10k-{n}-images-idx3-ubyte.gz"), x_test[:n])
    write_idx(os.path.join(args.out, "data", f"t10k-{n}-labels-idx1-ubyte.gz"), y_test[:n].astype(np.uint8))

    meta_path = os.path.join(args.out, "models.json")
    for name in args.models.split(","):
        epochs = args.epochs or EPOCHS[name]
        keras.utils.set_random_seed(args.seed)
        tf.config.experimental.enable_op_determinism()
        model = build(name)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        t0 = time.time()
        model.fit(xtr, y_train, batch_size=128, epochs=epochs, shuffle=True, verbose=2)
        train_s = time.time() - t0
        keras_probs = model.predict(xte, batch_size=500, verbose=0)
        keras_acc = float((keras_probs.argmax(1) == y_test).mean())
        saved = os.path.join(args.out, f"{name}_savedmodel")
        onnx_path = os.path.join(args.out, f"{name}.onnx")
        with tempfile.TemporaryDirectory():
            export_onnx(model, saved, onnx_path, args.opset)
        clean_names(onnx_path, name)
        onnx_acc, onnx_probs = onnx_accuracy(onnx_path, xte_nchw, y_test)
        max_diff = float(np.abs(onnx_probs - keras_probs).max())
        # Re-read before writing: nets may be trained by separate runs into the same file.
        meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        meta[name] = {
            "onnx": os.path.basename(onnx_path),
            "savedmodel": os.path.basename(saved),
            "input": "image: float32 (N, 1, 28, 28) in ONNX (NCHW), (N, 28, 28, 1) in the SavedModel; pixels / 255",
            "seed": args.seed,
            "epochs": epochs,
            "batch_size": 128,
            "optimizer": "Adam(1e-3)",
            "params": int(model.count_params()),
            "test_accuracy_keras": keras_acc,
            "test_accuracy_onnx": onnx_acc,
            "onnx_vs_keras_max_abs_diff": max_diff,
            "train_seconds": round(train_s, 1),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "opset": args.opset,
        }
        print(
            f"{name}: keras top-1 {keras_acc:.4f}, onnx top-1 {onnx_acc:.4f}, max |diff| {max_diff:.2e}, "
            f"{train_s:.0f}s",
            flush=True,
        )
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
