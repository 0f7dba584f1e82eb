"""What a BigDL module handler sees: the module message, its decoded attributes and parameters, and
a graph builder that infers types as nodes are added.

Handlers register with :func:`module_handler` under the short class name (``SpatialConvolution``,
``quantized.Linear``): both generations' full names (0.3 ``com.intel.analytics.bigdl.nn.X``, 2.x
``com.intel.analytics.bigdl.dllib.nn.X``) map to it. A module's *activity* is a value name (a tensor)
or a list of activities (a BigDL ``Table``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.builder import TypedBuilder
from convertmodel.ir.graph import Dim
from convertmodel.readers.bigdl.proto import pb
from convertmodel.readers.bigdl.storage import QuantTensor, Storages
from convertmodel.readers.torchnn.activity import Act
from convertmodel.registry import Registry

_PREFIXES = ("com.intel.analytics.bigdl.dllib.nn.", "com.intel.analytics.bigdl.nn.")


def short_class(module_type: str) -> str:
    """``com.intel.analytics.bigdl[.dllib].nn.X`` -> ``X`` (``quantized.X`` for the int8 layers)."""
    for p in _PREFIXES:
        if module_type.startswith(p):
            return module_type[len(p) :]
    return module_type


def module_name(m: Any) -> str:
    """BigDL's ``getName``: the set name, else the simple class name + ``namePostfix`` (graph edges use it)."""
    if m.name:
        return str(m.name)
    simple = m.moduleType.rsplit(".", 1)[-1]
    return f"{simple}{m.namePostfix}" if m.namePostfix else ""


class ModuleKey(NamedTuple):
    """Key of BigDL module handlers: the short class name."""

    cls: str


Handler = Callable[["ModuleContext"], Act]
HANDLERS: Registry[ModuleKey, Handler] = Registry("BigDL module handler")


def module_handler(*classes: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for c in classes:
            HANDLERS.add(ModuleKey(c), fn)
        return fn

    return deco


def decode_attr(st: Storages, av: Any, where: str) -> Any:
    """An AttrValue as a Python value, following its dataType as BigDL's DataConverter does."""
    D = pb.DataType
    dt = av.dataType
    if dt == D.INT32 or dt == D.SHORT or dt == D.CHAR:
        return int(av.int32Value)
    if dt == D.INT64:
        return int(av.int64Value)
    if dt == D.FLOAT:
        return float(av.floatValue)
    if dt == D.DOUBLE:
        return float(av.doubleValue)
    if dt == D.STRING:
        return str(av.stringValue)
    if dt == D.BOOL:
        return bool(av.boolValue)
    if dt == D.TENSOR:
        return st.tensor(av.tensorValue, where) if av.HasField("tensorValue") else None
    if dt == D.MODULE:
        return av.bigDLModuleValue if av.HasField("bigDLModuleValue") else None
    if dt == D.DATA_FORMAT:
        return "NHWC" if av.dataFormatValue == pb.InputDataFormat.NHWC else "NCHW"
    if dt == D.NAME_ATTR_LIST:
        nal = av.nameAttrListValue
        return {nal.name: {k: decode_attr(st, v, where) for k, v in nal.attr.items()}}
    if dt == D.ARRAY_VALUE:
        arr = av.arrayValue
        adt = arr.datatype
        if adt in (D.INT32, D.SHORT, D.CHAR):
            return [int(v) for v in arr.i32]
        if adt == D.INT64:
            return [int(v) for v in arr.i64]
        if adt == D.FLOAT:
            return [float(v) for v in arr.flt]
        if adt == D.DOUBLE:
            return [float(v) for v in arr.dbl]
        if adt == D.STRING:
            return [str(v) for v in arr.str]
        if adt == D.BOOL:
            return [bool(v) for v in arr.boolean]
        if adt == D.TENSOR:
            return [st.tensor(t, where) for t in arr.tensor]
        if adt == D.MODULE:
            return list(arr.bigDLModule)
        return None
    return None  # regularizers, init methods, custom values: nothing inference needs


_REQUIRED = object()


@dataclass
class ModuleContext:
    """One module being converted."""

    path: str
    module: Any  # bigdl_pb2.BigDLModule
    cls: str
    name: str
    x: Act
    b: TypedBuilder
    storages: Storages
    run: Callable[[Any, Act], Act]  # converts a sub-module on an activity (containers use it)

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.path}: module {self.name!r} ({self.cls}): {message}")

    def attr(self, key: str, default: Any = _REQUIRED) -> Any:
        if key not in self.module.attr:
            if default is _REQUIRED:
                raise self.fail(f"attribute {key!r} is missing")
            return default
        v = decode_attr(self.storages, self.module.attr[key], f"module {self.name!r} ({self.cls}) attribute {key!r}")
        return default if v is None and default is not _REQUIRED else v

    def i(self, key: str, default: Any = _REQUIRED) -> int:
        v = self.attr(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise self.fail(f"attribute {key!r} should be a number, got {v!r}")
        return int(v)

    def fmt(self, key: str = "format") -> str:
        return str(self.attr(key, "NCHW"))

    def params(self) -> list[np.ndarray | QuantTensor | None]:
        """Weight and bias: 2.x ``parameters`` (when ``hasParameters``), else the 0.3 fields."""
        m = self.module
        where = f"module {self.name!r} ({self.cls})"
        if m.hasParameters or len(m.parameters):
            return [self.storages.tensor(t, where) for t in m.parameters]
        return [
            self.storages.tensor(m.weight, where) if m.HasField("weight") else None,
            self.storages.tensor(m.bias, where) if m.HasField("bias") else None,
        ]

    def param(self, i: int, shape: Sequence[int] | None = None, what: str = "") -> np.ndarray | None:
        ps = self.params()
        p = ps[i] if i < len(ps) else None
        if p is None:
            return None
        if isinstance(p, QuantTensor):
            raise self.fail(f"{what or 'parameter'} is a quantized tensor in an fp32 layer")
        if shape is not None:
            want = tuple(int(s) for s in shape)
            if int(np.prod(want)) != p.size:
                raise self.fail(f"{what or f'parameter {i}'} has shape {list(p.shape)}, expected {list(want)}")
            p = p.reshape(want)
        return p.astype(np.float32, copy=False)

    def tensor_in(self) -> str:
        if not isinstance(self.x, str):
            raise self.fail(f"expects one tensor input, got a table of {len(self.x)}")
        return self.x

    def table_in(self) -> list[str]:
        if isinstance(self.x, str):
            raise self.fail("expects a table of tensors, got one tensor")
        out = []
        for a in self.x:
            if not isinstance(a, str):
                raise self.fail("expects a table of tensors, got a nested table")
            out.append(a)
        return out

    def shape(self, value: str | None = None) -> tuple[Dim, ...]:
        return self.b.shape(value if value is not None else self.tensor_in())

    def const(self, suffix: str, value: Any, dtype: str | None = None) -> str:
        return self.b.add_const(f"{self.name}/{suffix}", value, dtype)

    def node(self, op_type: str, inputs: Sequence[str], *, domain: str = "", suffix: str = "", **attrs: object) -> str:
        name = self.name + (f"/{suffix}" if suffix else "")
        (res,) = self.b.add_node(op_type, inputs, 1, name=name, domain=domain, **attrs)
        return res
