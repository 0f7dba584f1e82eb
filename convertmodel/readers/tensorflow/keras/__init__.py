"""Keras reader: ``.h5`` (Keras 2 and 3) and ``.keras`` (Keras 3) models, layer by layer, into the IR.

The model is rebuilt from the file's own JSON config and weight arrays (:mod:`.loader`); no Keras,
no TensorFlow, and no Python code from the file runs (a ``Lambda`` layer is refused). Sequential and
functional models are supported; each layer class has a handler (:mod:`.layers`) registered like
the TensorFlow op handlers, sharing their NHWC -> NCHW value tracking. Options: ``outputs`` (layer
names to stop at) and ``inputs`` (``NAME[:SHAPE]``, to fix an input's shape, e.g. the batch size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convertmodel.ir.graph import Graph

OPTIONS = ("inputs", "outputs")
_MODELS = ("Sequential", "Functional", "Model")
#: The pseudo layer class that joins a nested model's inputs and outputs to the outer tensors.
ALIAS = "__alias__"


def _tensor(layer: str, node: int = 0, index: int = 0) -> str:
    return layer if node == 0 and index == 0 else f"{layer}:{node}:{index}"


def _history(obj: Any, out: list[str]) -> None:
    """Collect Keras 3 ``__keras_tensor__`` references (layer, node, index) from call arguments."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            h = obj.get("config", {}).get("keras_history", [])
            if len(h) == 3:
                out.append(_tensor(str(h[0]), int(h[1]), int(h[2])))
            return
        for v in obj.values():
            _history(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _history(v, out)


def _calls(lyr: dict[str, Any]) -> list[list[str]]:
    """The input tensors of each call of a functional-model layer (Keras 2 and Keras 3 forms)."""
    out = []
    for node in lyr.get("inbound_nodes", []) or []:
        refs: list[str] = []
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            _history(node.get("args", []), refs)
        elif isinstance(node, list):  # Keras 2: [[layer, node, index, kwargs], ...]
            refs = [_tensor(str(r[0]), int(r[1]), int(r[2])) for r in node if isinstance(r, list) and len(r) >= 3]
        out.append(refs)
    return out


def _io_refs(v: Any) -> list[str]:
    if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str):
        v = [v]  # Keras 3 writes a single input/output as one triple
    return [_tensor(str(r[0]), int(r[1]), int(r[2])) for r in v or [] if isinstance(r, list) and len(r) >= 3]


class Call:
    """One call of a layer: what the handlers see through :class:`~..context.Node`."""

    def __init__(self, lyr: dict[str, Any], out: str, inputs: list[str], scope: str = "") -> None:
        self.cls = str(lyr.get("class_name", ""))
        self.config: dict[str, Any] = lyr.get("config", {}) if isinstance(lyr.get("config"), dict) else {}
        #: Weight key: the layer name, prefixed by the names of the models it is nested in.
        self.layer = scope + str(self.config.get("name", lyr.get("name", "")))
        self.out = out
        self.inputs = inputs


def _alias(out: str, src: str) -> Call:
    return Call({"class_name": ALIAS, "config": {"name": out}}, out, [src])


def _nested(
    lyr: dict[str, Any], out: str, inputs: list[str], scope: str, path: str, depth: int
) -> tuple[list[Call], list[str]]:
    """A model used as a layer, inlined: its input layers read ``inputs`` (none: they stay graph
    inputs), its output becomes ``out``. Returns the calls and the inner input tensors left as inputs."""
    from convertmodel.errors import InvalidModelError

    name = str(lyr.get("config", {}).get("name", ""))
    calls, ins, outs = plan(lyr, path, f"{out}/", f"{scope}{name}/", depth + 1)
    if inputs and len(inputs) != len(ins):
        raise InvalidModelError(f"{path}: nested model {name!r} takes {len(ins)} inputs, is given {len(inputs)}")
    if len(outs) != 1:
        raise InvalidModelError(f"{path}: nested model {name!r} has {len(outs)} outputs; one is supported")
    if inputs:
        feed = dict(zip(ins, inputs, strict=True))
        calls = [_alias(c.out, feed[c.out]) if c.out in feed else c for c in calls]
    return [*calls, _alias(out, outs[0])], ([] if inputs else ins)


def plan(
    config: dict[str, Any], path: str, tscope: str = "", scope: str = "", depth: int = 0
) -> tuple[list[Call], list[str], list[str]]:
    """Calls in order, input tensors, output tensors of a Sequential or functional model.

    Nested models are inlined; their tensors are named ``<outer call>/<tensor>`` (``tscope``), their
    layers' weights are looked up as ``<model>/<layer>`` (``scope``)."""
    from convertmodel.errors import InvalidModelError, UnsupportedOpError
    from convertmodel.readers.tensorflow.keras.loader import layer_list

    kind = str(config.get("class_name", ""))
    if kind not in _MODELS:
        raise UnsupportedOpError(path, {f"model class {kind or '(none)'}": []}, _MODELS, what="Keras model")
    if depth > 8:
        raise InvalidModelError(f"{path}: models nested more than 8 deep")
    layers = layer_list(config)
    if not layers:
        raise InvalidModelError(f"{path}: the Keras model config has no layers")
    calls: list[Call] = []
    if kind == "Sequential":
        prev, first = "", ""
        for i, lyr in enumerate(layers):
            c = Call(lyr, "", [prev] if prev else [], scope)
            name = c.layer[len(scope) :]
            if c.cls in _MODELS:
                inner, left = _nested(lyr, tscope + name, [prev] if prev else [], scope, path, depth)
                calls += inner
                first = first or (left[0] if left else "")
                prev = tscope + name
                continue
            if i == 0 and c.cls != "InputLayer":  # Keras 2: the first layer carries batch_input_shape
                shape = c.config.get("batch_input_shape") or c.config.get("batch_shape")
                inp = {"class_name": "InputLayer", "config": {"name": f"{name}_input", "batch_shape": shape}}
                calls.append(Call(inp, f"{tscope}{name}_input", [], scope))
                c.inputs = [f"{tscope}{name}_input"]
            c.out = tscope + name
            calls.append(c)
            first = first or calls[0].out
            prev = c.out
        return calls, [first], [prev]
    graph_inputs: list[str] = []
    for lyr in layers:
        name = str(lyr.get("config", {}).get("name", lyr.get("name", "")))
        if str(lyr.get("class_name")) == "InputLayer":
            calls.append(Call(lyr, tscope + name, [], scope))
            continue
        for k, ins in enumerate(_calls(lyr)):
            ins = [tscope + t for t in ins]
            if str(lyr.get("class_name")) in _MODELS:
                inner, left = _nested(lyr, tscope + _tensor(name, k, 0), ins, scope, path, depth)
                calls += inner
                graph_inputs += left
            else:
                calls.append(Call(lyr, tscope + _tensor(name, k, 0), ins, scope))
    inner_cfg = config.get("config", {})
    ins = [tscope + t for t in _io_refs(inner_cfg.get("input_layers"))] + graph_inputs
    return _sorted(calls, path), ins, [tscope + t for t in _io_refs(inner_cfg.get("output_layers"))]


def _sorted(calls: list[Call], path: str) -> list[Call]:
    from convertmodel.errors import InvalidModelError

    done: set[str] = set()
    out: list[Call] = []
    pending = list(calls)
    while pending:
        rest = [c for c in pending if not all(i in done for i in c.inputs)]
        ready = [c for c in pending if all(i in done for i in c.inputs)]
        if not ready:
            c = rest[0]
            missing = [i for i in c.inputs if i not in done]
            raise InvalidModelError(f"{path}: layer {c.layer!r} ({c.cls}) uses {missing} which no layer produces")
        for c in ready:
            out.append(c)
            done.add(c.out)
        pending = rest
    return out


def read(path: str, *, inputs: str | Sequence[str] | None = None, outputs: str | Sequence[str] | None = None) -> Graph:
    """Read a Keras ``.h5`` or ``.keras`` model into the IR."""
    import os

    from convertmodel.errors import ConvertModelError, InvalidModelError
    from convertmodel.fsutil import file_sha256
    from convertmodel.readers.tensorflow.context import Translator
    from convertmodel.readers.tensorflow.graphdef import finish, parse_inputs, parse_outputs
    from convertmodel.readers.tensorflow.keras import layers
    from convertmodel.readers.tensorflow.keras.loader import load

    kf = load(path)
    calls, _inputs, outs = plan(kf.config, path)
    shapes = parse_inputs(inputs)
    wanted = parse_outputs(outputs) or outs
    layers.scan(calls, path, kf.weights)
    meta = {
        "source_format": "keras",
        "source_file": os.path.basename(path),
        "source_sha256": file_sha256(path),
        "keras_version": kf.keras_version,
        "keras_container": kf.container,
    }
    name = str(kf.config.get("config", {}).get("name", "") if isinstance(kf.config.get("config"), dict) else "")
    tr = Translator(path, name or os.path.splitext(os.path.basename(path))[0], meta)
    for c in calls:
        try:
            layers.convert(tr, c, kf.weights.get(c.layer, []), shapes)
        except ConvertModelError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as e:  # malformed config values of this layer
            raise InvalidModelError(
                f"{path}: layer {c.layer!r} ({c.cls}): cannot convert: {type(e).__name__}: {e}"
            ) from e
    missing = [o for o in wanted if o not in tr.vals]
    if missing:
        raise InvalidModelError(f"{path}: output {missing[0]!r} is not a layer of the model")
    return finish(tr, wanted)
