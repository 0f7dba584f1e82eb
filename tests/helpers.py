"""Shared test helpers: run one op through our runtime and through onnxruntime, compare."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from convertmodel.ir import Graph, GraphBuilder, check_graph
from convertmodel.runtime import run_graph

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "fixtures")


def cache_dir() -> str:
    return os.environ.get("CONVERTMODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convertmodel")


def real_model(package: str, filename: str) -> str:
    """Path of a model fetched by scripts/fetch_models.py; skip (or fail under CI) when absent."""
    path = os.path.join(cache_dir(), "models", package, filename)
    if not os.path.exists(path):
        msg = f"{path} missing: run python scripts/fetch_models.py"
        if os.environ.get("CONVERTMODEL_REQUIRE_MODELS"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def assert_close(
    actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5, what: str = "output"
) -> None:
    """np.testing-like check that reports the mismatch count and the worst index."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    bad = ~(np.abs(a - e) <= atol + rtol * np.abs(e))
    bad |= np.isnan(a) != np.isnan(e)
    if bad.any():
        err = np.where(np.isnan(a) | np.isnan(e), np.inf, np.abs(a - e))
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ (rtol={rtol}, atol={atol}); "
            f"worst at {tuple(int(i) for i in worst)}: got {a[worst]!r}, expected {e[worst]!r}"
        )


def single_node_graph(
    op_type: str,
    inputs: Mapping[str, np.ndarray | None],
    const_inputs: Sequence[str] = (),
    n_outputs: int = 1,
    domain: str = "",
    **attrs: Any,
) -> tuple[Graph, dict[str, np.ndarray], list[str]]:
    """A checked one-node IR graph (named inputs in order; ``const_inputs`` become constants; ``None`` is an
    omitted optional input), its feeds and its output names."""
    b = GraphBuilder("single")
    names = []
    feeds = {}
    for name, val in inputs.items():
        if val is None:
            names.append("")
        elif name in const_inputs:
            names.append(b.add_const(name, val))
        else:
            names.append(b.add_input(name, str(val.dtype), val.shape))
            feeds[name] = val
    outs = b.add_node(op_type, names, n_outputs, name="node", domain=domain, **attrs)
    for o in outs:
        b.mark_output(o)
    g = b.build()
    check_graph(g)
    return g, feeds, outs


def run_ir_node(
    op_type: str,
    inputs: Mapping[str, np.ndarray | None],
    const_inputs: Sequence[str] = (),
    n_outputs: int = 1,
    domain: str = "",
    backends: tuple[str, ...] = ("ref",),
    **attrs: Any,
) -> list[np.ndarray]:
    """Run one op through our runtime (see :func:`single_node_graph`)."""
    g, feeds, outs = single_node_graph(op_type, inputs, const_inputs, n_outputs, domain, **attrs)
    res = run_graph(g, feeds, backends)
    return [res[o] for o in outs]


def run_onnx_node(
    op_type: str,
    inputs: Mapping[str, np.ndarray],
    const_inputs: Sequence[str] = (),
    n_outputs: int = 1,
    opset: int = 17,
    **attrs: Any,
) -> list[np.ndarray]:
    """Run the same single node through onnxruntime (the independent reference)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    vi_in, inits, feeds, names = [], [], {}, []
    for name, val in inputs.items():
        if val is None:
            names.append("")
            continue
        names.append(name)
        if name in const_inputs:
            inits.append(numpy_helper.from_array(np.asarray(val), name))
        else:
            vi_in.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(val.dtype), val.shape))
            feeds[name] = val
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph = helper.make_graph([node], "g", vi_in, [onnx.ValueInfoProto(name=o) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(sess.run(None, feeds))
