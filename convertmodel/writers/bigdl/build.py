"""Protobuf building blocks of the BigDL writer: attribute values, tensors, modules, the StaticGraph.

What BigDL 2.x's loader needs (its reflection-based ModuleSerializer and GraphSerializable, checked against
files BigDL 2.4 itself writes, fixtures/bigdl/v2.4/):

* every module carries one ``attr`` per constructor parameter (a missing one fails the load: "X value cannot
  be found"), plus ``module_tags`` / ``module_numerics`` (``["Float"]``);
* module ids, tensor ids and storage ids share one id space at load time (one HashMap): all are unique here;
* layer tensors carry size/stride/offset (1-based) and a storage id without data; the data is stored once, in
  the top module's ``attr["global_storage"]`` (tensor id -> tensor with its storage's data);
* a StaticGraph lists its modules in ``subModules``, each with ``preModules`` (input order matters: CAddTable,
  JoinTable), plus ``<name>_edges`` (``NameAttrList``: predecessor -> -1) and ``inputNames``/``outputNames``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.readers.bigdl.proto import pb
from convertmodel.writers.protowire import length_delimited

NN = "com.intel.analytics.bigdl.dllib.nn."
#: The version written into each module; BigDL loads a module whose version string is <= its own.
VERSION = "2.0.0"


class Ids:
    """Unique ids for modules, tensors and storages (BigDL resolves all three through one map)."""

    def __init__(self) -> None:
        self._it = itertools.count(1000001)

    def next(self) -> int:
        return next(self._it)


# ---- attribute values -------------------------------------------------------------------------------


def a_int(v: int) -> Any:
    return pb.AttrValue(dataType=pb.INT32, int32Value=int(v))


def a_double(v: float) -> Any:
    return pb.AttrValue(dataType=pb.DOUBLE, doubleValue=float(v))


def a_bool(v: bool) -> Any:
    return pb.AttrValue(dataType=pb.BOOL, boolValue=bool(v))


def a_format(nhwc: bool = False) -> Any:
    return pb.AttrValue(dataType=pb.DATA_FORMAT, dataFormatValue=pb.NHWC if nhwc else pb.NCHW)


def a_null_regularizer() -> Any:
    return pb.AttrValue(dataType=pb.REGULARIZER)


def a_null_tensor() -> Any:
    return pb.AttrValue(dataType=pb.TENSOR)


def a_ints(vs: Sequence[int]) -> Any:
    a = pb.AttrValue(dataType=pb.ARRAY_VALUE)
    a.arrayValue.size = len(vs)
    a.arrayValue.datatype = pb.INT32
    a.arrayValue.i32.extend(int(v) for v in vs)
    return a


def a_strings(vs: Sequence[str]) -> Any:
    a = pb.AttrValue(dataType=pb.ARRAY_VALUE)
    a.arrayValue.size = len(vs)
    a.arrayValue.datatype = pb.STRING
    a.arrayValue.str.extend(vs)
    return a


#: The common constructor tail of weight layers (regularizers and init tensors all null).
def w_layer_tail(*, init: bool = True, propagate: bool = False) -> dict[str, Any]:
    out = {"wRegularizer": a_null_regularizer(), "bRegularizer": a_null_regularizer()}
    if init:
        for k in ("initWeight", "initBias", "initGradWeight", "initGradBias"):
            out[k] = a_null_tensor()
    if propagate:
        out["propagateBack"] = a_bool(True)
    return out


# ---- tensors ----------------------------------------------------------------------------------------


@dataclass
class Tensors:
    """The tensors of one file: layer references (no data) and the global storage (data once)."""

    ids: Ids
    storage: dict[str, Any] = field(default_factory=dict)  # tensor id -> AttrValue(tensorValue with data)

    def dense(self, arr: np.ndarray) -> Any:
        """A float32 tensor: the reference a layer holds; its data goes into the global storage."""
        a = np.ascontiguousarray(arr, dtype="<f4")
        tid, sid = self.ids.next(), self.ids.next()
        ref = pb.BigDLTensor(datatype=pb.FLOAT, offset=1, dimension=a.ndim, nElements=a.size, id=tid)
        ref.size.extend(a.shape)
        ref.stride.extend(s // 4 for s in a.strides)
        ref.storage.datatype = pb.FLOAT
        ref.storage.id = sid
        full = pb.BigDLTensor()
        full.CopyFrom(ref)
        if a.size:
            full.storage.MergeFromString(length_delimited(2, a.tobytes()))  # float_data, packed (fast for big weights)
        self.storage[str(tid)] = pb.AttrValue(dataType=pb.TENSOR, tensorValue=full)
        return ref

    def quantized(self, codes: np.ndarray, amax: np.ndarray, w_sum: np.ndarray, desc: Sequence[int]) -> Any:
        """A QUANT tensor: int8 codes (rows x K, row-major) + per-row max, min, sum floats + descriptor ints.

        BigDL keeps each row's max and min but only uses max(|max|, |min|): written as (a, -a).
        """
        tid, sid = self.ids.next(), self.ids.next()
        ref = pb.BigDLTensor(datatype=pb.FLOAT, dimension=codes.ndim, nElements=codes.size, id=tid)
        ref.tensorType = pb.QUANT
        ref.size.extend(codes.shape)
        ref.stride.extend(s for s in np.ascontiguousarray(codes).strides)  # int8: strides in elements
        ref.storage.datatype = pb.FLOAT
        ref.storage.id = sid
        full = pb.BigDLTensor()
        full.CopyFrom(ref)
        a = np.asarray(amax, np.float32)
        full.storage.float_data.extend(np.concatenate([a, -a, np.asarray(w_sum, np.float32)]).tolist())
        full.storage.int_data.extend(int(v) for v in desc)
        full.storage.bytes_data.append(np.ascontiguousarray(codes, dtype=np.int8).tobytes())
        self.storage[str(tid)] = pb.AttrValue(dataType=pb.TENSOR, tensorValue=full)
        return ref


# ---- modules ----------------------------------------------------------------------------------------


@dataclass
class Mod:
    """One BigDL module to write: class (relative to ``...dllib.nn.``), constructor attrs, parameters."""

    cls: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: list[np.ndarray] = field(default_factory=list)
    #: dense tensors written as attributes (BatchNorm's running statistics)
    tensor_attrs: dict[str, np.ndarray] = field(default_factory=dict)
    #: quantized layers: the bias goes into the old-style ``bias`` field (as BigDL's QuantSerializer does)
    bias: np.ndarray | None = None
    #: quantized layers: (attr name, [(codes, amax, w_sum, desc), ...], as array?) for weight(s)
    qweights: tuple[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]], bool] | None = None


def _types(m: Any) -> None:
    m.attr["module_tags"].CopyFrom(a_strings(["Float"]))
    m.attr["module_numerics"].CopyFrom(a_strings(["Float"]))


def module_proto(mod: Mod, name: str, pre: Sequence[str], ts: Tensors) -> tuple[Any, list[Any]]:
    """The BigDLModule message of ``mod`` (named ``name``, fed by ``pre``) and its parameter references."""
    m = pb.BigDLModule(name=name, moduleType=NN + mod.cls, version=VERSION, id=ts.ids.next())
    m.preModules.extend(pre)
    m.nextModules.extend(pre)  # BigDL's GraphSerializable writes the predecessors here too
    _types(m)
    for k, v in mod.attrs.items():
        m.attr[k].CopyFrom(v)
    for k, arr in mod.tensor_attrs.items():
        m.attr[k].CopyFrom(pb.AttrValue(dataType=pb.TENSOR, tensorValue=ts.dense(arr)))
    refs = []
    if mod.params:
        m.hasParameters = True
        for p in mod.params:
            r = ts.dense(p)
            m.parameters.add().CopyFrom(r)
            refs.append(r)
    if mod.bias is not None:
        m.bias.CopyFrom(ts.dense(mod.bias))
    if mod.qweights is not None:
        key, groups, as_array = mod.qweights
        qrefs = [ts.quantized(*g) for g in groups]
        if as_array:
            a = pb.AttrValue(dataType=pb.ARRAY_VALUE)
            a.arrayValue.size = len(qrefs)
            a.arrayValue.datatype = pb.TENSOR
            for r in qrefs:
                a.arrayValue.tensor.add().CopyFrom(r)
        else:
            a = pb.AttrValue(dataType=pb.TENSOR, tensorValue=qrefs[0])
        m.attr[key].CopyFrom(a)
    return m, refs


def static_graph(
    name: str, modules: list[tuple[Any, list[Any]]], inputs: Sequence[str], outputs: Sequence[str], ts: Tensors
) -> Any:
    """The top StaticGraph holding ``modules`` (messages with their preModules set), as BigDL writes it."""
    g = pb.BigDLModule(name=name, moduleType=NN + "StaticGraph", version=VERSION, id=ts.ids.next())
    _types(g)
    for m, refs in modules:
        g.subModules.add().CopyFrom(m)
        e = pb.AttrValue(dataType=pb.NAME_ATTR_LIST)
        e.nameAttrListValue.name = m.name
        for p in m.preModules:
            e.nameAttrListValue.attr[p].CopyFrom(pb.AttrValue(int32Value=-1))
        g.attr[m.name + "_edges"].CopyFrom(e)
        for r in refs:
            g.parameters.add().CopyFrom(r)
    g.hasParameters = len(g.parameters) > 0
    g.attr["inputNames"].CopyFrom(a_strings(list(inputs)))
    g.attr["outputNames"].CopyFrom(a_strings(list(outputs)))
    gs = g.attr["global_storage"]
    gs.nameAttrListValue.name = "global_storage"
    for k, v in ts.storage.items():
        gs.nameAttrListValue.attr[k].CopyFrom(v)
    return g
