"""BigDL reader: protobuf model files written by BigDL 0.3.x and 2.x (``saveModule`` / ``saveModel``).

``read(path, weights=None, input_shape=None) -> Graph``. ``path`` is a single-file model (data in the
top module's ``global_storage``) or a definition whose data is in a ``.weights`` file: given as
``weights``, or found beside it (``NAME.weights`` for ``NAME.bigdl``). Module class names of both
generations are accepted. Every module class is checked before anything is converted, so an
unsupported model fails once with the full list. BigDL files record no input shape: the reader
derives the input's rank and channels from the first layer (symbolic batch and spatial sizes) unless
``input_shape`` is given. BigDL-quantized layers become QConv/QGemm with BigDL's int8 numerics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.builder import TypedBuilder
from convertmodel.ir.graph import Dim, Graph
from convertmodel.readers.bigdl import containers, modules, modules_spatial, quantized  # noqa: F401  (register handlers)
from convertmodel.readers.bigdl.context import HANDLERS, ModuleContext, ModuleKey, module_name, short_class
from convertmodel.readers.bigdl.storage import Storages, parse_module, read_weights_stream
from convertmodel.readers.torchnn.activity import MAX_DEPTH, Act, flatten_act
from convertmodel.readers.torchnn.tensors import read_bytes

__all__ = ["read", "supported_modules"]


def supported_modules() -> list[str]:
    return sorted(k.cls for k in HANDLERS)


def _walk(m: Any, depth: int, path: str, out: list[tuple[Any, int]]) -> None:
    stack = [(m, depth)]
    while stack:
        cur, d = stack.pop()
        if d > MAX_DEPTH:
            raise InvalidModelError(f"{path}: module {cur.name!r}: containers nested deeper than {MAX_DEPTH}")
        out.append((cur, d))
        stack.extend((s, d + 1) for s in reversed(cur.subModules))
        for key in ("cmul", "cadd"):  # Scale keeps its parts as module attributes
            if key in cur.attr and cur.attr[key].HasField("bigDLModuleValue"):
                stack.append((cur.attr[key].bigDLModuleValue, d + 1))


def _check_supported(path: str, top: Any) -> list[Any]:
    mods: list[tuple[Any, int]] = []
    _walk(top, 0, path, mods)
    bad: dict[str, list[str]] = {}
    for m, _ in mods:
        cls = short_class(m.moduleType)
        if ModuleKey(cls) not in HANDLERS:
            bad.setdefault(cls, []).append(module_name(m) or "<unnamed>")
    if bad:
        raise UnsupportedOpError(path, bad, supported_modules(), what="BigDL module")
    return [m for m, _ in mods]


_CONV = {"SpatialConvolution", "SpatialShareConvolution", "quantized.SpatialConvolution"}


#: Modules that keep their input's shape: the input shape is read from the module after them.
_PASS_THROUGH = {
    "Identity",
    "Input",
    "Dropout",
    "Echo",
    "Contiguous",
    "ReLU",
    "ReLU6",
    "Tanh",
    "Sigmoid",
    "Threshold",
    "LeakyReLU",
    "HardTanh",
    "MulConstant",
    "AddConstant",
}


def _graph_order(subs: list[Any]) -> list[Any]:
    """Graph nodes in an order where every node follows its predecessors (Kahn; a cycle stops it)."""
    by = {module_name(s): s for s in subs}
    return [by[n] for n in containers.graph_order(by)]


def _first_leaf(m: Any) -> Any | None:
    """The first module that tells the model input's shape (Sequential/Concat/Graph look inside)."""
    todo = [m]
    for _ in range(10000):
        if not todo:
            return None
        cur = todo.pop(0)
        cls = short_class(cur.moduleType)
        subs = list(cur.subModules)
        if cls in ("StaticGraph", "DynamicGraph", "Graph"):
            todo = _graph_order(subs) + todo
        elif subs:
            todo = (subs[:1] if cls in ("Concat", "ConcatTable") else subs) + todo
        elif cls not in _PASS_THROUGH:
            return cur
    return None


def _guess_input(path: str, top: Any, storages: Storages) -> tuple[Dim, ...]:
    leaf = _first_leaf(top)
    if leaf is None:
        raise InvalidModelError(f"{path}: cannot tell the input shape from the first layer; pass input_shape")
    ctx = ModuleContext(
        path, leaf, short_class(leaf.moduleType), module_name(leaf), "", TypedBuilder("x", {}), storages, lambda m, x: x
    )
    cls = ctx.cls
    fmt = ctx.fmt("format") if "format" in leaf.attr else ctx.fmt("dataFormat")
    if cls in _CONV or cls.startswith(("SpatialDilated", "quantized.SpatialDilated", "SpatialFull")):
        ip = ctx.attr("intParams", None)
        c = int(ip[0]) if ip else ctx.i("nInputPlane")
        return ("N", "H", "W", c) if fmt == "NHWC" else ("N", c, "H", "W")
    if cls in ("Linear", "quantized.Linear"):
        return ("N", ctx.i("inputSize"))
    if cls == "BatchNormalization":
        return ("N", ctx.i("nOutput"))
    if cls == "SpatialBatchNormalization":
        c = ctx.i("nOutput")
        return ("N", "H", "W", c) if fmt == "NHWC" else ("N", c, "H", "W")
    if cls.startswith("Spatial"):
        return ("N", "H", "W", "C") if fmt == "NHWC" else ("N", "C", "H", "W")
    raise InvalidModelError(f"{path}: module {leaf.name!r} ({cls}) does not tell the input shape; pass input_shape")


def _find_weights(path: str, top: Any, weights: str | None) -> str | None:
    if weights is not None:
        return os.fspath(weights)
    if "global_storage" in top.attr:
        return None
    stem = os.path.splitext(path)[0]
    for cand in (stem + ".weights", path + ".weights", stem + ".bin"):
        if os.path.isfile(cand):
            return cand
    raise InvalidModelError(
        f"{path}: a BigDL definition without global_storage holds no weights; pass its .weights file "
        f"(looked for {stem}.weights)"
    )


def read(path: str, weights: str | None = None, input_shape: Sequence[int] | None = None, **options: object) -> Graph:
    """Read a BigDL model file (and its ``.weights`` file, when the definition holds no data)."""
    path = os.fspath(path)
    top = parse_module(path, read_bytes(path))
    mods = _check_supported(path, top)
    wpath = _find_weights(path, top, weights)
    stream = read_weights_stream(wpath, read_bytes(wpath)) if wpath is not None else None
    storages = Storages(path, top, stream)
    meta = {
        "source_format": "bigdl",
        "source": os.path.basename(path),
        "bigdl_version": top.version,
        "bigdl_top_module": short_class(top.moduleType),
    }
    if wpath is not None:
        meta["weights"] = os.path.basename(wpath)
    b = TypedBuilder(top.name or os.path.splitext(os.path.basename(path))[0], meta)
    shape: tuple[Dim, ...] = (
        tuple(int(d) for d in input_shape) if input_shape is not None else _guess_input(path, top, storages)
    )
    x = b.add_input("input", "float32", shape)
    seen_names: dict[str, int] = {}

    def run(m: Any, act: Act) -> Act:
        cls = short_class(m.moduleType)
        handler = HANDLERS.get(ModuleKey(cls))
        if handler is None:  # not reached: _check_supported saw every module
            raise UnsupportedOpError(path, {cls: [m.name]}, supported_modules(), what="BigDL module")
        base = module_name(m) or cls.lower()
        k = seen_names.get(base, 0)
        seen_names[base] = k + 1
        name = base if k == 0 else f"{base}_{k}"  # a shared module used twice gets a second node name
        return handler(ModuleContext(path, m, cls, name, act, b, storages, run))

    out = run(top, x)
    flat = flatten_act(out)
    if not flat:
        raise InvalidModelError(f"{path}: the model has no output")
    if any(v == x for v in flat):
        raise InvalidModelError(f"{path}: the model computes nothing (its output is its input)")
    for v in dict.fromkeys(flat):
        b.mark_output(v, "float32")
    if any(short_class(m.moduleType).startswith("quantized.") for m in mods):
        b.metadata["quantization"] = json.dumps(quantized.quant_summary(b.nodes), sort_keys=True)
    return b.build()
