"""Helpers for reader tests: build small ONNX models with onnx.helper and run them in onnxruntime."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def make_model(
    nodes: Sequence[Any],
    inputs: Sequence[tuple[str, Sequence[Any]]],
    outputs: Sequence[str],
    inits: Mapping[str, np.ndarray] | None = None,
    opset: int = 17,
    name: str = "g",
    init_as_inputs: bool = False,
) -> Any:
    """A ModelProto; ``inputs`` are (name, dims) float32 inputs (dims may hold str/None)."""
    from onnx import ValueInfoProto, helper, numpy_helper

    vis = [helper.make_tensor_value_info(n, 1, list(d)) for n, d in inputs]
    inits = inits or {}
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    if init_as_inputs:  # old exporters list every initializer as a graph input too
        vis += [
            helper.make_tensor_value_info(
                k, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), list(np.asarray(v).shape)
            )
            for k, v in inits.items()
        ]
    graph = helper.make_graph(list(nodes), name, vis, [ValueInfoProto(name=o) for o in outputs], tensors)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="unit-test", producer_version="0.1")
    model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    return model


def save(model: Any, folder: str, name: str = "model.onnx") -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def run_ort(model_or_path: Any, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list:
    import onnxruntime as ort

    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return list(sess.run(list(outputs) if outputs else None, dict(feeds)))


def read(path: str, **options: Any) -> Any:
    """An ONNX file as convertmodel.load gives it: the reader, then the import pipeline (fold, simplify)."""
    from convertmodel import load

    return load(path, "onnx", **options).graph
