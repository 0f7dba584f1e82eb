"""Builders of small BigDL protobuf files with convertmodel's own schema (for parser and bad-input tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from convertmodel.readers.bigdl.proto import pb

NN = "com.intel.analytics.bigdl.dllib.nn."


def tensor_ref(
    sizes: list[int], storage_id: int, offset: int = 1, strides: list[int] | None = None, tid: int = 0
) -> Any:
    t = pb.BigDLTensor(datatype=pb.DataType.FLOAT, size=sizes, offset=offset, id=tid, nElements=int(np.prod(sizes)))
    if strides is None:
        strides = [int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))]
    t.stride.extend(strides)
    t.dimension = len(sizes)
    t.storage.datatype = pb.DataType.FLOAT
    t.storage.id = storage_id
    return t


def module(cls: str, name: str = "", **attrs: Any) -> Any:
    m = pb.BigDLModule(moduleType=NN + cls, name=name, version="2.4.0")
    for k, v in attrs.items():
        av = m.attr[k]
        if isinstance(v, bool):
            av.dataType, av.boolValue = pb.DataType.BOOL, v
        elif isinstance(v, int):
            av.dataType, av.int32Value = pb.DataType.INT32, v
        elif isinstance(v, float):
            av.dataType, av.doubleValue = pb.DataType.DOUBLE, v
        elif isinstance(v, list):
            av.dataType = pb.DataType.ARRAY_VALUE
            av.arrayValue.datatype = pb.DataType.INT32
            av.arrayValue.i32.extend(v)
    return m


def add_storage(top: Any, storage_id: int, data: np.ndarray, tid: int) -> None:
    g = top.attr["global_storage"]
    g.dataType = pb.DataType.NAME_ATTR_LIST
    av = g.nameAttrListValue.attr[str(tid)]
    av.dataType = pb.DataType.TENSOR
    t = av.tensorValue
    t.datatype = pb.DataType.FLOAT
    t.id = tid
    t.size.append(int(data.size))
    t.storage.datatype = pb.DataType.FLOAT
    t.storage.id = storage_id
    t.storage.float_data.extend(data.astype(np.float32).ravel().tolist())


def linear_relu(seed: int = 0, transposed: bool = False) -> tuple[Any, np.ndarray, np.ndarray]:
    """Sequential(Linear(4 -> 3), ReLU); weight and bias share one storage (offsets 1 and 13).

    ``transposed``: the weight is stored as its transpose and described with strides (1, 3)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    top = module("Sequential", "seq")
    lin = module("Linear", "fc", inputSize=4, outputSize=3, withBias=True)
    lin.hasParameters = True
    if transposed:
        flat = np.concatenate([w.T.ravel(), b])
        lin.parameters.append(tensor_ref([3, 4], 7, 1, [1, 3], tid=1))
    else:
        flat = np.concatenate([w.ravel(), b])
        lin.parameters.append(tensor_ref([3, 4], 7, 1, tid=1))
    lin.parameters.append(tensor_ref([3], 7, 13, tid=2))
    top.subModules.append(lin)
    top.subModules.append(module("ReLU", "relu"))
    add_storage(top, 7, flat, 1)
    return top, w, b


def write(path: str, m: Any) -> str:
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path
