"""Loading Caffe files: locating the prototxt, parsing text and binary NetParameters, upgrading
legacy V1 layers, decoding blobs, and selecting the layers of the TEST phase."""

from __future__ import annotations

import glob
import os
import warnings
from typing import Any

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from convertmodel.errors import FormatError, InvalidModelError, UsageError
from convertmodel.fsutil import read_regular
from convertmodel.readers.caffe.proto import pb

# V1LayerParameter.LayerType -> the type string of LayerParameter (upgrade_proto.cpp's UpgradeV1LayerType).
V1_TYPES = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DATA": "Data",
    "DECONVOLUTION": "Deconvolution",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

_V1_SKIP = {"type", "param", "blobs_lr", "weight_decay"}


def find_prototxt(model_path: str) -> str:
    """The deploy prototxt beside a .caffemodel: MODEL.prototxt, deploy.prototxt, or the only *.prototxt(.txt)."""
    d = os.path.dirname(os.path.abspath(model_path))
    stem = os.path.basename(model_path)
    stem = stem[: -len(".caffemodel")] if stem.lower().endswith(".caffemodel") else os.path.splitext(stem)[0]
    for name in (f"{stem}.prototxt", f"{stem}.prototxt.txt", "deploy.prototxt", "deploy.prototxt.txt"):
        cand = os.path.join(d, name)
        if os.path.isfile(cand):
            return cand
    found = sorted(set(glob.glob(os.path.join(d, "*.prototxt")) + glob.glob(os.path.join(d, "*.prototxt.txt"))))
    if len(found) == 1:
        return found[0]
    what = f"{len(found)} candidates ({', '.join(os.path.basename(f) for f in found)})" if found else "none"
    raise UsageError(
        f"{model_path}: no deploy prototxt found beside it (looked for {stem}.prototxt, deploy.prototxt or a single "
        f"*.prototxt; found {what}); pass the network definition with --prototxt PATH"
    )


def _read_bytes(path: str) -> bytes:
    return read_regular(path, "a Caffe file")  # a FIFO or device is refused, never read


def parse_prototxt(path: str) -> Any:
    """Parse a text NetParameter; a syntax error is a FormatError with the line and column."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not a text prototxt (invalid UTF-8 at byte {e.start})", e.start) from None
    net = pb.NetParameter()
    try:
        text_format.Merge(text, net)
        return net
    except text_format.ParseError as e:
        if "no field named" not in str(e):
            raise FormatError(path, _syntax_message(e)) from None
        first = str(e)
    # Fields of training-only messages this schema leaves out: skip them, but say so.
    net = pb.NetParameter()
    try:
        text_format.Merge(text, net, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise FormatError(path, _syntax_message(e)) from None
    warnings.warn(f"{path}: ignored fields unknown to convertmodel's caffe.proto (first: {first})", stacklevel=3)
    return net


def _syntax_message(e: text_format.ParseError) -> str:
    line, col = e.GetLine(), e.GetColumn()
    text = str(e)
    prefix = f"{line}:{col} : "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    where = f" at line {line}, column {col}" if line is not None else ""
    return f"prototxt syntax error{where}: {text}"


def parse_caffemodel(path: str) -> Any:
    """Parse a binary NetParameter; truncation or corruption is a FormatError."""
    raw = _read_bytes(path)
    net = pb.NetParameter()
    try:
        net.ParseFromString(raw)
    except DecodeError as e:
        raise FormatError(path, f"truncated or corrupt .caffemodel ({len(raw)} bytes): {e}") from None
    if not net.layer and not net.layers:
        raise FormatError(path, f"no layers in this .caffemodel ({len(raw)} bytes); is it a Caffe model?")
    return net


def upgrade_v1(v1: Any) -> Any:
    """A V1LayerParameter as a LayerParameter (type enum -> type string, same sub-messages)."""
    layer = pb.LayerParameter()
    enum_name = pb.V1LayerParameter.LayerType.Name(v1.type)
    layer.type = V1_TYPES.get(enum_name, enum_name)
    for fd, value in v1.ListFields():
        if fd.name in _V1_SKIP:
            continue
        target = getattr(layer, fd.name)
        if fd.is_repeated:
            if fd.message_type is not None:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif fd.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(layer, fd.name, value)
    return layer


def net_layers(net: Any) -> list[Any]:
    """The layers of a NetParameter (V1 ``layers`` upgraded), in order."""
    if net.layer:
        return list(net.layer)
    return [upgrade_v1(v) for v in net.layers]


def in_test_phase(layer: Any) -> bool:
    """Caffe's StateMeetsRule for phase TEST (levels and stages are not used by deploy nets)."""
    if layer.include:
        return any(not r.HasField("phase") or r.phase == pb.TEST for r in layer.include)
    return not any(not r.HasField("phase") or r.phase == pb.TEST for r in layer.exclude)


def decode_blob(path: str, layer: str, index: int, blob: Any) -> tuple[np.ndarray, bool]:
    """A BlobProto as (array in its own shape, shape was legacy N/C/H/W)."""
    legacy = not blob.HasField("shape")
    if legacy:
        shape: tuple[int, ...] = (int(blob.num), int(blob.channels), int(blob.height), int(blob.width))
    else:
        shape = tuple(int(d) for d in blob.shape.dim)
    if blob.data:
        arr = np.asarray(blob.data, np.float32)
    else:
        arr = np.asarray(blob.double_data, np.float64).astype(np.float32)
    count = int(np.prod(shape)) if shape else 1
    if arr.size != count:
        raise InvalidModelError(
            f"{path}: layer {layer!r}: blob {index} declares shape {shape} ({count} values) but holds {arr.size}"
        )
    return arr.reshape(shape), legacy


def weights_by_layer(path: str, net: Any) -> dict[str, list[tuple[np.ndarray, bool]]]:
    out: dict[str, list[tuple[np.ndarray, bool]]] = {}
    for layer in list(net.layer) + list(net.layers):
        if layer.blobs and layer.name not in out:
            out[layer.name] = [decode_blob(path, layer.name, i, b) for i, b in enumerate(layer.blobs)]
    return out
