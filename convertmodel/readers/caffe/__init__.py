"""Caffe reader (BVLC Caffe and the SSD fork): ``read(path, prototxt=None) -> Graph``.

The network comes from the text .prototxt, the weights from the binary .caffemodel, matched by
layer name. Given only the .caffemodel, the prototxt beside it is found by name (see
:func:`~convertmodel.readers.caffe.netfile.find_prototxt`). Every layer type is checked before
anything is converted, so an unsupported model fails once with the full list. In-place layers
(top == bottom) are renamed into SSA values: the first definition keeps the blob name, later
ones take the layer's name. Graph outputs are the blobs no later layer consumes.
"""

from __future__ import annotations

import os
from typing import Any

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import Graph
from convertmodel.readers.caffe import layers, layers_shape, layers_ssd  # noqa: F401  (register handlers)
from convertmodel.readers.caffe.context import HANDLERS, LayerContext, LayerKey, TypedBuilder
from convertmodel.readers.caffe.netfile import (
    decode_blob,
    find_prototxt,
    in_test_phase,
    net_layers,
    parse_caffemodel,
    parse_prototxt,
    weights_by_layer,
)

__all__ = ["read", "supported_layers"]

#: Layers that do nothing at inference and are dropped.
_SKIPPED = {"Silence"}


def supported_layers() -> list[str]:
    return sorted({k.type for k in HANDLERS} | {"Input"} | _SKIPPED)


def _resolve_paths(path: str, prototxt: str | None, caffemodel: str | None) -> tuple[str, str]:
    low = path.lower()
    if low.endswith((".prototxt", ".prototxt.txt")):
        if caffemodel is None:
            stem = path[: -len(".txt")] if low.endswith(".txt") else path
            cand = stem[: -len(".prototxt")] + ".caffemodel"
            if not os.path.isfile(cand):
                raise InvalidModelError(
                    f"{path}: a prototxt holds no weights; pass the .caffemodel (looked for {cand})"
                )
            caffemodel = cand
        return path, caffemodel
    return (prototxt or find_prototxt(path)), path


def _input_shapes(net: Any, proto_path: str) -> list[tuple[str, tuple[int, ...]]]:
    """The deprecated NetParameter inputs: ``input`` with ``input_shape`` or 4 ``input_dim`` each."""
    names = list(net.input)
    if not names:
        return []
    if net.input_shape:
        if len(net.input_shape) not in (1, len(names)):
            raise InvalidModelError(f"{proto_path}: {len(names)} inputs but {len(net.input_shape)} input_shape entries")
        shapes = [tuple(int(d) for d in s.dim) for s in net.input_shape]
        shapes = shapes * len(names) if len(shapes) == 1 else shapes
    elif net.input_dim:
        dims = [int(d) for d in net.input_dim]
        if len(dims) != 4 * len(names):
            raise InvalidModelError(
                f"{proto_path}: {len(names)} inputs need {4 * len(names)} input_dim values, got {len(dims)}"
            )
        shapes = [tuple(dims[4 * i : 4 * i + 4]) for i in range(len(names))]
    else:
        raise InvalidModelError(f"{proto_path}: input {names[0]!r} has no input_shape or input_dim")
    return list(zip(names, shapes, strict=True))


def _unsupported_variant(layer: Any) -> str | None:
    """A supported layer type used in a form the IR cannot express (known without shapes)."""
    t = layer.type
    if t == "Pooling" and layer.pooling_param.pool == layer.pooling_param.STOCHASTIC:
        return "Pooling(STOCHASTIC)"
    if t in ("Convolution", "Deconvolution") and layer.convolution_param.axis != 1:
        return f"{t}(axis={layer.convolution_param.axis})"
    return None


def _unsupported(layers_: list[Any]) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for layer in layers_:
        t = layer.type
        if t == "Input" or t in _SKIPPED:
            continue
        if t == "Python":
            key: str | None = f"Python({layer.python_param.module}.{layer.python_param.layer})"
        elif LayerKey(t) not in HANDLERS:
            key = t
        else:
            key = _unsupported_variant(layer)
        if key is not None:
            bad.setdefault(key, []).append(layer.name)
    return bad


def read(path: str, prototxt: str | None = None, caffemodel: str | None = None) -> Graph:
    """Read a Caffe model (``path`` is the .caffemodel, or the .prototxt with the weights beside it)."""
    path = os.fspath(path)
    proto_path, weights_path = _resolve_paths(
        path, None if prototxt is None else os.fspath(prototxt), None if caffemodel is None else os.fspath(caffemodel)
    )
    net = parse_prototxt(proto_path)
    layers_ = [lay for lay in net_layers(net) if in_test_phase(lay)]
    bad = _unsupported(layers_)
    if bad:
        raise UnsupportedOpError(proto_path, bad, supported_layers(), what="Caffe layer")
    weights = weights_by_layer(weights_path, parse_caffemodel(weights_path))
    b = TypedBuilder(
        net.name or os.path.splitext(os.path.basename(weights_path))[0],
        {"source_format": "caffe", "source": os.path.basename(weights_path), "prototxt": os.path.basename(proto_path)},
    )
    current: dict[str, str] = {}  # Caffe blob name -> its current SSA value
    produced: list[str] = []
    consumed: set[str] = set()
    for name, shape in _input_shapes(net, proto_path):
        current[name] = b.add_input(name, "float32", shape)
    for layer in layers_:
        if layer.type == "Input":
            shapes = [tuple(int(d) for d in s.dim) for s in layer.input_param.shape]
            if len(shapes) not in (1, len(layer.top)):
                raise InvalidModelError(
                    f"{proto_path}: Input layer {layer.name!r} has {len(layer.top)} tops but {len(shapes)} shapes"
                )
            for k, top in enumerate(layer.top):
                current[top] = b.add_input(top, "float32", shapes[0 if len(shapes) == 1 else k])
            continue
        inputs = []
        for bottom in layer.bottom:
            if bottom not in current:
                raise InvalidModelError(
                    f"{proto_path}: layer {layer.name!r} ({layer.type}): bottom {bottom!r} is not "
                    f"produced by any earlier layer or input"
                )
            inputs.append(current[bottom])
            consumed.add(current[bottom])
        if layer.type in _SKIPPED:
            continue
        tops = [_ssa_name(b, top, layer.name) for top in layer.top]
        blobs = weights.get(layer.name) or [
            decode_blob(proto_path, layer.name, i, blob) for i, blob in enumerate(layer.blobs)
        ]
        ctx = LayerContext(proto_path, layer.name, layer.type, layer, inputs, tops, blobs, b)
        handler = HANDLERS.get(LayerKey(layer.type))
        assert handler is not None  # checked by _unsupported above
        outs = handler(ctx)
        for top, value in zip(layer.top, outs, strict=True):
            current[top] = value
            produced.append(value)
    outputs = [v for v in produced if v not in consumed]
    if not outputs:
        raise InvalidModelError(f"{proto_path}: the network has no output blob")
    for v in outputs:
        b.mark_output(v, "float32")
    return b.build()


def _ssa_name(b: TypedBuilder, top: str, layer_name: str) -> str:
    """The top's blob name when still free, else (an in-place layer) the layer's name, made unique."""
    for cand in (top, layer_name, f"{layer_name}/{top}"):
        if not b.has_value(cand):
            return cand
    k = 1
    while b.has_value(f"{layer_name}/{top}_{k}"):
        k += 1
    return f"{layer_name}/{top}_{k}"
