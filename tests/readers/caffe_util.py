"""Helpers for the Caffe tests: write small hand-written nets with caffe_pb2, run them through
OpenCV's dnn module (the independent reference) and through convertmodel."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf import text_format

from convertmodel.ir import check_graph
from convertmodel.ir.graph import Graph
from convertmodel.readers.caffe import read
from convertmodel.readers.caffe.proto import pb
from convertmodel.runtime import run_graph


def add_blob(layer: object, arr: np.ndarray, legacy: bool = False) -> None:
    """Append ``arr`` to a layer's blobs, with a BlobShape or (``legacy``) num/channels/height/width."""
    blob = layer.blobs.add()  # type: ignore[attr-defined]
    arr = np.asarray(arr, np.float32)
    if legacy:
        dims = (1,) * (4 - arr.ndim) + arr.shape
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.ravel().tolist())


def write_net(
    directory: str,
    prototxt: str,
    blobs: Mapping[str, Sequence[np.ndarray]] | None = None,
    name: str = "net",
    legacy: bool = False,
    v1_weights: bool = False,
) -> tuple[str, str]:
    """Write ``name.prototxt`` (the text as given) and ``name.caffemodel`` (the same net with the blobs
    of each named layer; ``v1_weights`` stores the layers in the legacy V1 ``layers`` field)."""
    blobs = blobs or {}
    net = pb.NetParameter()
    text_format.Merge(prototxt, net)
    proto_path = os.path.join(directory, f"{name}.prototxt")
    model_path = os.path.join(directory, f"{name}.caffemodel")
    with open(proto_path, "w") as f:
        f.write(prototxt)
    model = pb.NetParameter()
    model.CopyFrom(net)
    if v1_weights:
        del model.layer[:]
        for lname, arrs in blobs.items():
            v1 = model.layers.add()
            v1.name = lname
            for a in arrs:
                add_blob(v1, a, legacy)
    else:
        for layer in list(model.layer) + list(model.layers):
            for a in blobs.get(layer.name, ()):
                add_blob(layer, a, legacy)
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    return proto_path, model_path


def read_checked(model_path: str, **options: Any) -> Graph:
    g = read(model_path, **options)
    check_graph(g)
    return g


def run_ours(g: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run_graph(g, feeds, ("ref",))


def run_opencv(proto: str, model: str, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
    """Forward through OpenCV's Caffe importer; ``outputs`` are Caffe blob (layer) names."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(proto, model)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    for k, v in feeds.items():
        net.setInput(np.ascontiguousarray(v, np.float32), k)
    res = net.forward(list(outputs))
    return [np.asarray(r) for r in res]


def input_block(name: str, shape: Sequence[int]) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'
