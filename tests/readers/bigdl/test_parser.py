"""The BigDL parser on files built here with convertmodel's schema: shared storages, 1-based offsets,
strides, graph edges, both class-name generations."""

from __future__ import annotations

import os

import numpy as np

import convertmodel
from convertmodel.readers.bigdl import read
from convertmodel.readers.bigdl.proto import pb
from tests.readers.bigdl.bigdl_util import linear_relu, module, write


def _expect(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(x @ w.T + b, 0)


def test_shared_storage_offsets(tmp_path: object) -> None:
    top, w, b = linear_relu()
    p = write(os.path.join(str(tmp_path), "m.bigdl"), top)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    y = convertmodel.load(p).predict(x)
    np.testing.assert_allclose(y, _expect(x, w, b), rtol=1e-6, atol=1e-6)


def test_strided_view(tmp_path: object) -> None:
    top, w, b = linear_relu(seed=3, transposed=True)
    p = write(os.path.join(str(tmp_path), "m.bigdl"), top)
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(convertmodel.load(p).predict(x), _expect(x, w, b), rtol=1e-6, atol=1e-6)


def test_legacy_class_names_and_fields(tmp_path: object) -> None:
    """0.3 names (com.intel.analytics.bigdl.nn.X) and the 0.3 weight/bias fields."""
    top, w, b = linear_relu(seed=5)
    for m in [top, *top.subModules]:
        m.moduleType = m.moduleType.replace(".dllib.nn.", ".nn.")
    lin = top.subModules[0]
    lin.weight.CopyFrom(lin.parameters[0])
    lin.bias.CopyFrom(lin.parameters[1])
    del lin.parameters[:]
    lin.hasParameters = False
    p = write(os.path.join(str(tmp_path), "m.bigdl"), top)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(convertmodel.load(p).predict(x), _expect(x, w, b), rtol=1e-6, atol=1e-6)


def test_graph_edges_and_table_index(tmp_path: object) -> None:
    """Input -> fc -> relu as a StaticGraph: nodes linked by preModules names, in reverse order."""
    top, w, b = linear_relu(seed=7)
    lin, relu = top.subModules
    g = module("StaticGraph", "g")
    inp = module("Input", "in")
    lin.preModules.append("in")
    relu.preModules.append("fc")
    for m in (relu, lin, inp):
        g.subModules.append(m)
    for k, v in (("inputNames", "in"), ("outputNames", "relu")):
        av = g.attr[k]
        av.dataType = pb.DataType.ARRAY_VALUE
        av.arrayValue.datatype = pb.DataType.STRING
        av.arrayValue.str.append(v)
    g.attr["global_storage"].CopyFrom(top.attr["global_storage"])
    p = write(os.path.join(str(tmp_path), "g.bigdl"), g)
    gr = read(p)
    assert [n.op_type for n in gr.nodes] == ["Gemm", "Relu"]
    x = np.full((3, 4), 0.5, np.float32)
    np.testing.assert_allclose(convertmodel.load(p).predict(x), _expect(x, w, b), rtol=1e-6, atol=1e-6)


def test_input_shape_option(tmp_path: object) -> None:
    top, _, _ = linear_relu()
    p = write(os.path.join(str(tmp_path), "m.bigdl"), top)
    assert read(p).inputs[0].type.shape == ("N", 4)
    assert read(p, input_shape=[2, 4]).inputs[0].type.shape == (2, 4)


def test_padding_module(tmp_path: object) -> None:
    """BigDL Padding(dim, pad, nInputDim, value): before the data for pad < 0, after for pad > 0."""
    top, w, b = linear_relu(seed=2)
    for pad in (-2, 3):
        m = module("Sequential", "s")
        m.subModules.append(top)
        padm = module("Padding", "p", dim=1, pad=pad, nInputDim=1, nIndex=1)
        av = padm.attr["value"]
        av.dataType, av.doubleValue = pb.DataType.DOUBLE, -1.5
        m.subModules.append(padm)
        m.attr["global_storage"].CopyFrom(top.attr["global_storage"])
        p = write(os.path.join(str(tmp_path), f"pad{pad}.bigdl"), m)
        x = np.ones((2, 4), np.float32)
        y = convertmodel.load(p).predict(x)
        want = _expect(x, w, b)
        fill = np.full((2, abs(pad)), -1.5, np.float32)
        np.testing.assert_allclose(y, np.concatenate([fill, want] if pad < 0 else [want, fill], axis=1), rtol=1e-6)
