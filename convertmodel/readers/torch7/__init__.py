"""Torch7 reader: ``.t7`` files (``torch.save`` of an ``nn`` module, binary or ascii).

``read(path, input_shape=None) -> Graph``. The file is parsed by convertmodel's own parser
(:mod:`convertmodel.readers.torch7.t7file`: typed objects, tables, torch classes, typed storages,
the reference memo); no Lua and no code is ever run. Every module class is checked before
anything is converted. The input's rank and channels come from the first layer (symbolic batch
and spatial sizes) unless ``input_shape`` is given. A module that contains itself (a cycle of
references) is an error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from convertmodel.errors import FormatError, InvalidModelError, UnsupportedOpError
from convertmodel.ir.builder import TypedBuilder
from convertmodel.ir.graph import Dim, Graph
from convertmodel.readers.torch7 import t7file
from convertmodel.readers.torch7.modules import T7_HANDLERS, T7Context, T7Key
from convertmodel.readers.torch7.t7file import TorchObject
from convertmodel.readers.torchnn.activity import MAX_DEPTH, Act, flatten_act
from convertmodel.readers.torchnn.tensors import read_bytes

__all__ = ["read", "supported_modules"]


def supported_modules() -> list[str]:
    return sorted(f"nn.{k.cls}" for k in T7_HANDLERS.keys())


def _short(cls: str) -> str:
    return cls[3:] if cls.startswith("nn.") else cls


def _children(m: TorchObject) -> list[Any]:
    mods = m.fields.get("modules")
    return [mods[k] for k in sorted(k for k in mods if isinstance(k, int))] if isinstance(mods, dict) else []


def _scan(path: str, top: TorchObject) -> None:
    """Every module is a known nn class; no module contains itself; nesting is bounded."""
    bad: dict[str, list[str]] = {}
    stack: list[tuple[Any, int, tuple[int, ...]]] = [(top, 0, ())]
    k = 0
    while stack:
        m, depth, ancestors = stack.pop()
        if not isinstance(m, TorchObject):
            raise InvalidModelError(f"{path}: a 'modules' entry is a {type(m).__name__}, not an nn module")
        if id(m) in ancestors:
            raise InvalidModelError(f"{path}: module nn.{_short(m.cls)} contains itself (a cycle of references)")
        if depth > MAX_DEPTH:
            raise InvalidModelError(f"{path}: modules nested deeper than {MAX_DEPTH}")
        k += 1
        if T7_HANDLERS.get(T7Key(_short(m.cls))) is None:
            bad.setdefault(m.cls, []).append(f"{_short(m.cls).lower()}#{k}")
        stack.extend((c, depth + 1, (*ancestors, id(m))) for c in _children(m))
    if bad:
        raise UnsupportedOpError(path, bad, supported_modules(), what="Torch7 module")


_PASS = {"Dropout", "Identity", "ReLU", "Tanh", "Sigmoid", "Threshold"}


def _guess_input(path: str, top: TorchObject) -> tuple[Dim, ...]:
    todo: list[Any] = [top]
    while todo:
        m = todo.pop(0)
        cls = _short(m.cls)
        kids = _children(m)
        if kids:
            todo = (kids[:1] if cls in ("Concat", "ConcatTable", "DepthConcat") else kids) + todo
            continue
        if cls in _PASS:
            continue
        ctx = T7Context(path, m, cls, cls.lower(), "", TypedBuilder("x", {}), lambda m_, a_: a_)
        if cls in ("SpatialConvolution", "SpatialConvolutionMM"):
            return ("N", ctx.i("nInputPlane"), "H", "W")
        if cls == "Linear":
            w = ctx.tensor("weight")
            return ("N", int(w.shape[1])) if w is not None and w.ndim == 2 else ("N", "K")
        if cls == "SpatialBatchNormalization":
            rm = ctx.tensor("running_mean")
            return ("N", int(rm.size) if rm is not None else "C", "H", "W")
        if cls.startswith("Spatial"):
            return ("N", "C", "H", "W")
        break
    raise InvalidModelError(f"{path}: cannot tell the input shape from the first layer; pass input_shape")


def read(path: str, input_shape: Sequence[int] | None = None, **options: object) -> Graph:
    """Read a Torch7 ``.t7`` file holding an ``nn`` module."""
    path = os.fspath(path)
    top = t7file.parse(path, read_bytes(path))
    if not isinstance(top, TorchObject) or not top.cls.startswith("nn."):
        what = top.cls if isinstance(top, TorchObject) else type(top).__name__
        raise FormatError(path, f"holds a {what}, not a Torch7 nn module")
    _scan(path, top)
    b = TypedBuilder(_short(top.cls).lower(), {"source_format": "torch7", "source": os.path.basename(path)})
    shape: tuple[Dim, ...] = tuple(int(d) for d in input_shape) if input_shape is not None else _guess_input(path, top)
    x = b.add_input("input", "float32", shape)
    counts: dict[str, int] = {}

    def run(m: Any, act: Act) -> Act:
        cls = _short(m.cls)
        k = counts.get(cls, 0)
        counts[cls] = k + 1
        name = f"{cls.lower()}" if k == 0 else f"{cls.lower()}_{k}"
        fn = T7_HANDLERS.get(T7Key(cls))
        assert fn is not None  # checked by _scan
        return fn(T7Context(path, m, cls, name, act, b, run))

    out = run(top, x)
    flat = flatten_act(out)
    if not flat or x in flat:
        raise InvalidModelError(f"{path}: the module computes nothing")
    for v in dict.fromkeys(flat):
        b.mark_output(v, "float32")
    return b.build()
