"""Shared helpers of the TensorFlow/Keras reader tests: TensorFlow as the reference, imported lazily."""

from __future__ import annotations

import gzip
import os
from typing import Any

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FMNIST = os.path.join(REPO, "fixtures", "fmnist")


def tensorflow() -> Any:
    """TensorFlow (the reference runtime), or skip when the tensorflow extra is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


def fmnist_images(n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's real Fashion-MNIST test images (N, 28, 28, 1) in [0, 1] and their labels."""
    with gzip.open(os.path.join(FMNIST, "data", "t10k-1000-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28, 1)[:n]
    with gzip.open(os.path.join(FMNIST, "data", "t10k-1000-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read()[8:], np.uint8)[:n]
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def face(size: int, grey: bool = False) -> np.ndarray:
    """A real photo of a face (scikit-image's astronaut, Eileen Collins), cropped and resized, HWC uint8."""
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    img = Image.fromarray(skdata.astronaut()[20:220, 160:330]).resize((size, size), Image.BILINEAR)
    if grey:
        img = img.convert("L")
    return np.asarray(img)


def freeze(fn: Any, *specs: Any) -> bytes:
    """A tf.function frozen to a GraphDef (TF2 export path), serialized."""
    tf = tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    cf = tf.function(fn).get_concrete_function(*specs)
    return convert_variables_to_constants_v2(cf).graph.as_graph_def().SerializeToString()


def run_graphdef(data: bytes, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    """Run a frozen GraphDef with TensorFlow's own session (TF1 style)."""
    tf = tensorflow()
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(data)
    with tf.Graph().as_default() as g:
        tf.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g) as s:
            fetch = [o if ":" in o else o + ":0" for o in outputs]
            return list(s.run(fetch, {(k if ":" in k else k + ":0"): v for k, v in feeds.items()}))
