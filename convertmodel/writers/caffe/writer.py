"""Caffe writer: ``write_caffe(graph, path, prototxt_out=None)`` writes a .caffemodel and its deploy prototxt.

The graph's inputs become Input layers, each node one layer (BatchNormalization with a non-trivial
scale/bias becomes BatchNorm + Scale) named after the node, with tops and bottoms named after the
IR values, so reading the files back gives the same nodes. As in Caffe's own deploy nets,
activations and Dropout whose input nobody else reads are written in place, and a Flatten feeding
an InnerProduct is left to the InnerProduct (which flattens by itself). Every node is checked first; ops Caffe
cannot express raise one UnsupportedOpError listing them all. The .caffemodel holds each layer's
parameters and blobs (as Caffe's own snapshots do); blob data is encoded directly as packed floats
(protobuf's per-element ``extend`` is far too slow for VGG's 138M weights). Both files are written
atomically (temporary file + fsync + rename).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from google.protobuf import text_format

from convertmodel.errors import UnsupportedOpError
from convertmodel.fsutil import atomic_open
from convertmodel.ir.graph import Graph
from convertmodel.readers.caffe.proto import pb
from convertmodel.writers.caffe.layers import EMITTERS, EmitContext, EmitKey, Emitted, NotExpressible
from convertmodel.writers.protowire import length_delimited, varint

__all__ = ["default_prototxt_path", "write_caffe"]


def default_prototxt_path(path: str) -> str:
    """``model.caffemodel`` -> ``model.prototxt`` (the name the reader looks for first)."""
    stem = path[: -len(".caffemodel")] if path.lower().endswith(".caffemodel") else os.path.splitext(path)[0]
    return stem + ".prototxt"


def encode_blob(arr: np.ndarray) -> bytes:
    """A BlobProto: ``shape`` (field 7, packed int64 dims) and ``data`` (field 5, packed little-endian float32)."""
    dims = b"".join(varint(int(d)) for d in arr.shape)
    shape = length_delimited(1, dims) if arr.ndim else b""
    data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    return length_delimited(7, shape) + length_delimited(5, data)


def _emit_all(graph: Graph) -> list[Emitted]:
    out: list[Emitted] = []
    bad: dict[str, list[str]] = {}
    for vi in graph.inputs:
        shape = vi.type.shape
        if shape is None:
            bad.setdefault(f"input {vi.name} of unknown rank", []).append(vi.name)
            continue
        lp = pb.LayerParameter(name=vi.name, type="Input")
        lp.top.append(vi.name)
        # Caffe needs concrete dims: a symbolic batch is written as 1.
        lp.input_param.shape.add().dim.extend(d if isinstance(d, int) else 1 for d in shape)
        out.append(Emitted(lp, []))
    in_place, folded = _plan(graph)
    blob_of: dict[str, str] = {}  # IR value -> the Caffe blob holding it (differs for in-place tops)
    for node in graph.nodes:
        if node.name in folded:
            blob_of[node.outputs[0]] = blob_of.get(node.inputs[0], node.inputs[0])
            continue
        emitter = EMITTERS.get(EmitKey(node.domain, node.op_type))
        key = f"{node.domain + '.' if node.domain else ''}{node.op_type}"
        if emitter is None:
            bad.setdefault(key, []).append(node.name)
            continue
        try:
            emitted = emitter(EmitContext.make(graph, node))
        except NotExpressible as e:
            bad.setdefault(f"{key} ({e})", []).append(node.name)
            continue
        for em in emitted:
            bottoms = [blob_of.get(b, b) for b in em.layer.bottom]
            del em.layer.bottom[:]
            em.layer.bottom.extend(bottoms)
        if node.name in in_place and len(emitted) == 1:
            blob = emitted[0].layer.bottom[0]
            emitted[0].layer.top[0] = blob
            blob_of[node.outputs[0]] = blob
        out.extend(emitted)
    if bad:
        supported = sorted(f"{k.domain + '.' if k.domain else ''}{k.op_type}" for k in EMITTERS)
        raise UnsupportedOpError(graph.name, bad, supported, what="op (not expressible as Caffe layers)")
    return out


#: Ops written in place (top == bottom) when nothing else reads their input, as Caffe deploy nets do.
_IN_PLACE = {"Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "PRelu", "Identity", "Dropout"}


def _plan(graph: Graph) -> tuple[set[str], set[str]]:
    """Names of nodes written in place, and of Flatten(axis=1) nodes folded into the InnerProduct that
    reads them (InnerProduct flattens its input itself; the reader re-creates the Flatten)."""
    consumers = graph.consumers()
    producers = graph.producers()
    outputs = {o.name for o in graph.outputs}
    in_place: set[str] = set()
    folded: set[str] = set()
    for n in graph.nodes:
        if not n.inputs or len([o for o in n.outputs if o]) != 1 or n.outputs[0] in outputs:
            continue
        x = n.inputs[0]
        if n.op_type in _IN_PLACE and x in producers and x not in outputs and len(consumers.get(x, [])) == 1:
            in_place.add(n.name)
        users = consumers.get(n.outputs[0], [])
        if (
            n.op_type == "Flatten"
            and n.attrs.get("axis", 1) == 1
            and len(users) == 1
            and users[0].op_type == "Gemm"
            and users[0].inputs[0] == n.outputs[0]
        ):
            folded.add(n.name)
    return in_place, folded


def _atomic_write(path: str, data: bytes) -> None:
    # Temp file .NAME.cm-tmp-PID, fsync, rename; removed on any error or SIGTERM (convertmodel.fsutil).
    with atomic_open(path, "wb", what="Caffe file") as f:
        f.write(data)


def write_caffe(graph: Graph, path: str, prototxt_out: Any = None) -> str:
    """Write ``graph`` as ``path`` (.caffemodel) plus a deploy prototxt; returns the prototxt's path.

    ``prototxt_out`` (a path, or None) defaults to ``path`` with ``.prototxt`` instead of ``.caffemodel``.
    """
    path = os.fspath(path)
    proto_path = os.fspath(prototxt_out) if prototxt_out else default_prototxt_path(path)
    layers = _emit_all(graph)
    deploy = pb.NetParameter(name=graph.name)
    head = pb.NetParameter(name=graph.name).SerializeToString()
    chunks = [head]
    for em in layers:
        deploy.layer.add().CopyFrom(em.layer)
        body = em.layer.SerializeToString() + b"".join(
            length_delimited(7, encode_blob(np.asarray(b))) for b in em.blobs
        )
        chunks.append(length_delimited(100, body))
    _atomic_write(path, b"".join(chunks))
    _atomic_write(proto_path, text_format.MessageToString(deploy).encode("utf-8"))
    return proto_path
