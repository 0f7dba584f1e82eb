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
#: The trained Fashion-MNIST fixtures (scripts/train_fmnist.py) and the 1,000-image test subset.
FMNIST = os.path.join(FIXTURES, "fmnist")
SUBSET_IMAGES = os.path.join(FMNIST, "data", "t10k-1000-images-idx3-ubyte.gz")
SUBSET_LABELS = os.path.join(FMNIST, "data", "t10k-1000-labels-idx1-ubyte.gz")


def fixture_model(name: str) -> str:
    """A trained Fashion-MNIST ONNX fixture (lenet5, mobilenet); fails when it is missing."""
    path = os.path.join(FMNIST, f"{name}.onnx")
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: run python scripts/train_fmnist.py")
    return path


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


def mini_vgg(rng: np.random.Generator, batch: int = 2, softmax: bool = True) -> Graph:
    """A VGG-shaped net small enough for fast tests: 3x3 convs + ReLU, max pools, fc + ReLU, softmax."""
    b = GraphBuilder("mini_vgg")
    x = b.add_input("data", "float32", (batch, 3, 16, 16))
    c_in = 3
    for i, c_out in enumerate((8, 16, "M", 16, "M")):
        if c_out == "M":
            (x,) = b.add_node("MaxPool", [x], name=f"pool{i}", kernel_shape=[2, 2], strides=[2, 2])
            continue
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
        bias = (rng.standard_normal(c_out) * 0.1).astype(np.float32)
        (x,) = b.add_node(
            "Conv",
            [x, b.add_const(f"w{i}", w), b.add_const(f"b{i}", bias)],
            name=f"conv{i}",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        )
        (x,) = b.add_node("Relu", [x], name=f"relu{i}")
        c_in = int(c_out)
    (x,) = b.add_node("Flatten", [x], name="flatten", axis=1)
    dims = [16 * 4 * 4, 32, 10]
    for k in range(2):
        w = (rng.standard_normal((dims[k + 1], dims[k])) * np.sqrt(2 / dims[k])).astype(np.float32)
        (x,) = b.add_node(
            "Gemm",
            [x, b.add_const(f"fw{k}", w), b.add_const(f"fb{k}", np.zeros(dims[k + 1], np.float32))],
            name=f"fc{k}",
            transB=1,
        )
        if k == 0:
            (x,) = b.add_node("Relu", [x], name="relu_fc")
    if softmax:
        (x,) = b.add_node("Softmax", [x], name="prob", axis=1)
    b.mark_output(x)
    return b.build()
