"""ONNX reader on small hand-built models; onnxruntime is the independent reference."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402

from convertmodel.errors import FormatError, InvalidModelError, ModelIOError, UnsupportedOpError  # noqa: E402
from convertmodel.ir import check_graph  # noqa: E402
from convertmodel.readers.onnx import HANDLERS, HandlerKey, newest_opset, onnx_op  # noqa: E402
from convertmodel.runtime import run_graph  # noqa: E402
from tests.helpers import assert_close  # noqa: E402
from tests.readers.onnx_util import make_model, read, run_ort, save  # noqa: E402


def _conv_model(rng: np.random.Generator, batch: object = "N", **kw: object) -> object:
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu1"),
    ]
    return make_model(nodes, [("x", [batch, 3, 8, 8])], ["y"], {"w": w, "b": b}, **kw)  # type: ignore[arg-type]


def _read_and_compare(
    tmp_path: object,
    model: object,
    feeds: dict[str, np.ndarray],
    rtol: float = 1e-5,
    atol: float = 1e-5,
    **options: object,
) -> object:
    path = save(model, str(tmp_path))
    g = read(path, **options)
    check_graph(g)
    ours = run_graph(g, feeds, ("ref",))
    ref = run_ort(path, feeds)
    for vi, r in zip(g.outputs, ref, strict=True):
        assert_close(ours[vi.name], r, rtol=rtol, atol=atol, what=vi.name)
    return g


# -- basic conversion -------------------------------------------------------------------------------
def test_conv_relu_matches_onnxruntime(tmp_path, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    g = _read_and_compare(tmp_path, _conv_model(rng), {"x": x})
    assert g.op_counts() == {"Conv": 1, "Relu": 1}
    assert [n.name for n in g.nodes] == ["conv1", "relu1"]
    assert g.nodes[0].outputs == ("c",) and g.outputs[0].name == "y"  # value names preserved
    assert set(g.constants) == {"w", "b"}


def test_dims_metadata_and_initializer_inputs(tmp_path, rng):
    model = _conv_model(rng, batch="N", opset=9, init_as_inputs=True)
    model.graph.input[0].type.tensor_type.shape.dim[3].Clear()  # an unknown dim (neither value nor param)
    path = save(model, str(tmp_path))
    g = read(path)
    check_graph(g)
    # Initializers listed as graph inputs (onnx-caffe2 style) are weights, not inputs.
    assert [vi.name for vi in g.inputs] == ["x"]
    assert g.inputs[0].type.shape == ("N", 3, 8, None)
    assert g.metadata["source_format"] == "onnx"
    assert g.metadata["source_file"] == "model.onnx"
    assert g.metadata["opset"] == "9"
    assert g.metadata["producer_name"] == "unit-test" and g.metadata["producer_version"] == "0.1"


def test_constant_nodes_become_constants(tmp_path, rng):
    w = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["s"], value_float=2.0),
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Mul", ["c", "s"], ["y"]),
    ]
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    g = _read_and_compare(tmp_path, make_model(nodes, [("x", [1, 3, 5, 5])], ["y"]), {"x": x})
    assert "Constant" not in g.op_counts()
    np.testing.assert_array_equal(g.constants["w"], w)


# -- the registry --------------------------------------------------------------------------------
def test_handler_lookup_follows_since_version():
    clip6 = HANDLERS.lookup(HandlerKey("", "Clip", 10))
    clip11 = HANDLERS.lookup(HandlerKey("", "Clip", 11))
    assert clip6 is HANDLERS.get(HandlerKey("", "Clip", 6))
    assert clip11 is HANDLERS.get(HandlerKey("", "Clip", 11))
    assert clip6 is not clip11
    assert HANDLERS.lookup(HandlerKey("", "Clip", newest_opset())) is clip11
    assert HANDLERS.lookup(HandlerKey("", "Clip", 5)) is None
    with pytest.raises(KeyError, match="registered twice"):
        onnx_op("Conv", 1)(lambda ctx: None)


# -- the up-front scan -------------------------------------------------------------------------------
def test_unsupported_ops_reported_once_with_counts_and_names(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r"),
        helper.make_node("LSTMish", ["a"], ["b"], name="odd1"),
        helper.make_node("LSTMish", ["b"], ["c"], name="odd2"),
        helper.make_node("Det", ["c"], ["d"], name="det1"),
        helper.make_node("MyOp", ["d"], ["e"], name="custom1", domain="com.example"),
        helper.make_node("MaxPool", ["e"], ["y", "idx"], name="mp", kernel_shape=[2, 2]),
        helper.make_node("Identity", ["idx"], ["z"], name="use_idx"),
        helper.make_node("Resize", ["y", "", "sc"], ["w"], name="cubic", mode="cubic"),
        helper.make_node("Relu", ["w"], ["v"], name="relu_attr", bogus=1),
    ]
    model = make_model(nodes, [("x", [1, 1, 4, 4])], ["v", "z"], {"sc": np.array([1, 1, 2, 2], np.float32)})
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError) as ei:
        read(save(model, str(tmp_path)))
    err = ei.value
    assert err.unsupported == {
        "LSTMish": ["odd1", "odd2"],
        "Det": ["det1"],
        "com.example.MyOp": ["custom1"],
        "MaxPool (Indices output)": ["mp"],
        "Resize (mode=cubic)": ["cubic"],
        "Relu (attribute bogus)": ["relu_attr"],
    }
    msg = str(err)
    assert "LSTMish x2 ('odd1', 'odd2')" in msg and "model.onnx" in msg and "Conv" in msg  # lists what is supported


def test_handler_emitting_a_missing_ir_op_is_reported_by_the_scan(tmp_path):
    onnx_op("FancyOp", 1, domain="test.scan", emits=("NoSuchIROp",))(lambda ctx: None)
    nodes = [helper.make_node("FancyOp", ["x"], ["y"], name="fancy", domain="test.scan")]
    model = make_model(nodes, [("x", [1, 2])], ["y"])
    model.opset_import.append(helper.make_opsetid("test.scan", 1))
    with pytest.raises(UnsupportedOpError) as ei:
        read(save(model, str(tmp_path)))
    assert ei.value.unsupported == {"test.scan.FancyOp (IR op NoSuchIROp not available)": ["fancy"]}


def test_unsupported_opset(tmp_path, rng):
    model = _conv_model(rng)
    model.opset_import[0].version = 6
    with pytest.raises(UnsupportedOpError, match="opset 6"):
        read(save(model, str(tmp_path)))


# -- files ---------------------------------------------------------------------------------------
def test_truncated_and_garbage_files_raise_format_error(tmp_path, rng):
    data = _conv_model(rng).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as ei:
        read(str(cut))
    assert ei.value.path == str(cut)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FormatError):
        read(str(junk))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        read(str(empty))
    with pytest.raises(ModelIOError):
        read(str(tmp_path / "absent.onnx"))


def test_every_truncation_raises_format_error(tmp_path, rng):
    data = _conv_model(rng).SerializeToString()
    path = tmp_path / "t.onnx"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(FormatError):
            read(str(path))


def test_external_data(tmp_path, rng):
    model = _conv_model(rng)
    w = numpy_helper.to_array(model.graph.initializer[0])
    folder = tmp_path / "m"
    folder.mkdir()
    path = str(folder / "ext.onnx")
    onnx.save_model(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0
    )
    g = read(path)
    np.testing.assert_array_equal(g.constants["w"], w)
    os.remove(folder / "weights.bin")
    with pytest.raises(ModelIOError, match=r"weights\.bin"):
        read(path)


def test_undefined_input_names_the_node(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("Add", ["a", "ghost"], ["y"], name="bad_add"),
    ]
    with pytest.raises(InvalidModelError, match=r"bad_add.*ghost"):
        read(save(make_model(nodes, [("x", [1, 2])], ["y"]), str(tmp_path)))


def test_bad_attribute_names_the_node(tmp_path, rng):
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv_bad", pads=[1, 1])]  # 2-D conv needs 4 pads
    with pytest.raises(InvalidModelError, match="conv_bad"):
        read(save(make_model(nodes, [("x", [1, 3, 6, 6])], ["y"], {"w": w}), str(tmp_path)))


def test_unknown_option(tmp_path, rng):
    from convertmodel.errors import UsageError

    with pytest.raises(UsageError, match="unknown onnx reader option"):
        read(save(_conv_model(rng), str(tmp_path)), fold=True)
