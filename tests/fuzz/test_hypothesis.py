"""Hypothesis-driven fuzzing in-process (shrinking gives the smallest failing input): .q8 header values
replaced by arbitrary JSON with the CRC recomputed, and single ONNX nodes with arbitrary integer attributes.
The memory cap is lowered to 64 MiB so no case can allocate much here; the subprocess campaign
(test_fuzz.py) covers crashes and hangs."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convertmodel
from convertmodel.errors import ConvertModelError
from tests.fuzz import gen_q8
from tests.fuzz.common import FIXTURES

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["nan", "inf", "float32", "int8", "Conv", "QConv", "N"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def q8_base() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        m = convertmodel.load(os.path.join(FIXTURES, "fmnist", "lenet5.onnx")).quantize()
        p = os.path.join(d, "m.q8")
        m.save(p)
        with open(p, "rb") as f:
            return f.read()


def _run(path: str) -> None:
    m = convertmodel.load(path)
    shape = m.graph.inputs[0].type.shape if m.graph.inputs else None
    if shape is not None and all(isinstance(d, int) and 0 <= d <= 64 for d in shape if not isinstance(d, str)):
        dims = [d if isinstance(d, int) else 1 for d in shape]
        m.predict({m.graph.inputs[0].name: np.ones(dims, np.float32)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slot=st.integers(0, 10_000), value=_JSON)
def test_q8_header_values(q8_base: bytes, tmp_path_factory: Any, slot: int, value: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("CONVERTMODEL_MAX_ALLOC", "64M")
    _, header, body = gen_q8.split(q8_base)
    slots = gen_q8._slots(header)[1:]
    path = slots[slot % len(slots)]
    parent = header
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    p = str(tmp_path_factory.mktemp("q8") / "m.q8")
    with open(p, "wb") as f:
        f.write(gen_q8.assemble(json.dumps(header, sort_keys=True).encode(), body))
    try:
        _run(p)
    except ConvertModelError:
        pass


_INTS = st.lists(st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 1, -1, 2, 3]), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    op=st.sampled_from(
        [
            "Conv",
            "MaxPool",
            "AveragePool",
            "Transpose",
            "Squeeze",
            "Unsqueeze",
            "Flatten",
            "Softmax",
            "LRN",
            "DepthToSpace",
        ]
    ),
    attrs=st.dictionaries(
        st.sampled_from(
            ["kernel_shape", "strides", "pads", "dilations", "perm", "axes", "group", "axis", "size", "blocksize"]
        ),
        _INTS,
        max_size=4,
    ),
)
def test_onnx_node_attributes(tmp_path_factory: Any, op: str, attrs: dict[str, list[int]], monkeypatch: Any) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    monkeypatch.setenv("CONVERTMODEL_MAX_ALLOC", "64M")
    scalar = {"group", "axis", "size", "blocksize"}
    a: dict[str, Any] = {k: (v[0] if k in scalar else v) for k, v in attrs.items()}
    ins, inits = ["x"], []
    if op == "Conv":
        inits.append(numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w"))
        ins.append("w")
    node = helper.make_node(op, ins, ["y"], name="n", **a)
    g = helper.make_graph(
        [node],
        "h",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    p = str(tmp_path_factory.mktemp("onnx") / "m.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)]), p)
    try:
        _run(p)
    except ConvertModelError:
        pass
