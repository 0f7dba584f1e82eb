"""Bad TensorFlow/Keras input: one line naming the file (and node or layer), the documented exit code, no output file.

The hostile files are made here: truncated and corrupt GraphDef/HDF5/zip, a splat constant that
would expand to terabytes, a cycle, a dangling input, unsupported ops, control flow, an unknown
Keras layer and a Lambda layer (whose Python code must never run). Only the control-flow graphs
need TensorFlow (to make them); the rest is built with convertmodel's own GraphDef schema and h5py.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from typing import Any

import pytest

from convertmodel import errors
from convertmodel.readers.tensorflow import tf_graph_pb2 as pb
from tests.cli import run_cli
from tests.readers.tensorflow.tfhelp import FMNIST


def convert_fails(src: str, tmp_path: Any, capsys: Any, code: int, *needles: str) -> str:
    out = tmp_path / "out.q8"
    rc, _, err = run_cli(["convert", "--in", src, "--out", str(out)], capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == code, (rc, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert os.path.basename(src) in lines[0], lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".out")], os.listdir(tmp_path)
    return lines[0]


def _node(g: Any, name: str, op: str, inputs: tuple[str, ...] = (), **attrs: Any) -> Any:
    n = g.node.add(name=name, op=op)
    n.input.extend(inputs)
    for k, v in attrs.items():
        n.attr[k].CopyFrom(v)
    return n


def _placeholder(g: Any, name: str = "x") -> None:
    a = pb.AttrValue(type=pb.DT_FLOAT)
    shape = pb.AttrValue(shape=pb.TensorShapeProto(dim=[pb.TensorShapeProto.Dim(size=s) for s in (1, 4)]))
    _node(g, name, "Placeholder", dtype=a, shape=shape)


def _write(tmp_path: Any, g: Any, name: str = "net.pb") -> str:
    p = tmp_path / name
    p.write_bytes(g.SerializeToString())
    return str(p)


def test_truncated_graphdef(tmp_path: Any, capsys: Any) -> None:
    data = open(os.path.join(FMNIST, "lenet5_frozen.pb"), "rb").read()
    p = tmp_path / "trunc.pb"
    p.write_bytes(data[: len(data) // 2])
    convert_fails(str(p), tmp_path, capsys, errors.EXIT_CORRUPT_FILE, "GraphDef")


def test_garbage_pb_is_not_reported_as_onnx(tmp_path: Any, capsys: Any) -> None:
    p = tmp_path / "junk.pb"
    p.write_bytes(b"\x0a\x05\x0a\x03abc" + os.urandom(200))
    line = convert_fails(str(p), tmp_path, capsys, errors.EXIT_CORRUPT_FILE)
    assert "ONNX" not in line


def test_savedmodel_proto_is_not_sniffed_as_onnx() -> None:
    from convertmodel.readers import detect_format

    assert detect_format(os.path.join(FMNIST, "lenet5_savedmodel")) == "savedmodel"
    assert detect_format(os.path.join(FMNIST, "lenet5_savedmodel", "saved_model.pb")) == "tensorflow"
    assert detect_format(os.path.join(FMNIST, "lenet5_frozen.pb")) == "tensorflow"
    assert detect_format(os.path.join(FMNIST, "lenet5.onnx")) == "onnx"
    assert detect_format(os.path.join(FMNIST, "lenet5.h5")) == "keras"
    assert detect_format(os.path.join(FMNIST, "lenet5.keras")) == "keras"


def test_splat_constant_bomb(tmp_path: Any, capsys: Any) -> None:
    g = pb.GraphDef()
    _placeholder(g)
    t = pb.TensorProto(dtype=pb.DT_FLOAT, float_val=[1.0])
    t.tensor_shape.dim.add(size=1 << 20)
    t.tensor_shape.dim.add(size=1 << 20)
    _node(g, "huge", "Const", value=pb.AttrValue(tensor=t), dtype=pb.AttrValue(type=pb.DT_FLOAT))
    _node(g, "y", "Add", ("x", "huge"))
    convert_fails(_write(tmp_path, g), tmp_path, capsys, errors.EXIT_INVALID_MODEL, "'huge'", "larger than the file")


def test_cycle_and_dangling_input(tmp_path: Any, capsys: Any) -> None:
    g = pb.GraphDef()
    _placeholder(g)
    _node(g, "a", "Add", ("x", "b"))
    _node(g, "b", "Relu", ("a",))
    _node(g, "y", "Relu", ("b",))
    convert_fails(_write(tmp_path, g, "cycle.pb"), tmp_path, capsys, errors.EXIT_INVALID_MODEL, "cycle")
    g = pb.GraphDef()
    _placeholder(g)
    _node(g, "y", "Add", ("x", "nowhere:0"))
    convert_fails(_write(tmp_path, g, "dangling.pb"), tmp_path, capsys, errors.EXIT_INVALID_MODEL, "'nowhere'")


def test_unsupported_ops_listed_once_with_counts(tmp_path: Any, capsys: Any) -> None:
    g = pb.GraphDef()
    _placeholder(g)
    _node(g, "c1", "Cumsum", ("x",))
    _node(g, "c2", "Cumsum", ("c1",))
    _node(g, "e", "Erfc", ("c2",))
    _node(g, "y", "Relu", ("e",))
    line = convert_fails(_write(tmp_path, g), tmp_path, capsys, errors.EXIT_UNSUPPORTED, "Cumsum x2", "Erfc x1")
    assert "'c1'" in line and "supported: " in line and "Conv2D" in line


def test_control_flow_is_refused_naming_the_node(tmp_path: Any, capsys: Any) -> None:
    from tests.readers.tensorflow.tfhelp import freeze, tensorflow

    tf = tensorflow()
    with tf.Graph().as_default() as graph:  # TF1 control flow: Switch/Merge
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        flag = tf.compat.v1.placeholder_with_default(True, [], name="flag")
        sw = tf.raw_ops.Switch(data=x, pred=flag, name="sw")
        merged = tf.raw_ops.Merge(inputs=[sw.output_false + 1.0, sw.output_true * 2.0], name="merge")
        tf.identity(merged.output, name="y")
    p1 = tmp_path / "switch.pb"
    p1.write_bytes(graph.as_graph_def().SerializeToString())
    convert_fails(str(p1), tmp_path, capsys, errors.EXIT_UNSUPPORTED, "control-flow", "Switch x1 ('sw')", "Merge x1")

    with tf.Graph().as_default() as graph:  # TF2 control flow in a graph: tf.cond is a StatelessIf
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        tf.identity(tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x + 1.0), name="y")
    p2 = tmp_path / "cond.pb"
    p2.write_bytes(graph.as_graph_def().SerializeToString())
    convert_fails(str(p2), tmp_path, capsys, errors.EXIT_UNSUPPORTED, "control-flow", "StatelessIf x1 ('cond')")

    def loop(v: Any) -> Any:
        # frozen, the loop is lowered to TF1 Enter/Merge/Switch/NextIteration/Exit/LoopCond
        return tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0), [tf.constant(0), v])[1]

    p3 = tmp_path / "while.pb"
    p3.write_bytes(freeze(loop, tf.TensorSpec([1, 4], tf.float32)))
    convert_fails(
        str(p3), tmp_path, capsys, errors.EXIT_UNSUPPORTED, "control-flow", "Enter x", "NextIteration x", "LoopCond x1"
    )


# -- Keras --------------------------------------------------------------------------------------
def test_truncated_and_corrupt_keras_files(tmp_path: Any, capsys: Any) -> None:
    for name in ("lenet5.h5", "lenet5.keras"):
        data = open(os.path.join(FMNIST, name), "rb").read()
        p = tmp_path / f"trunc_{name}"
        p.write_bytes(data[: len(data) // 3])
        convert_fails(str(p), tmp_path, capsys, errors.EXIT_CORRUPT_FILE)
    p = tmp_path / "flipped.keras"
    data = bytearray(open(os.path.join(FMNIST, "lenet5.keras"), "rb").read())
    data[200:260] = b"\xff" * 60  # inside the first member's data: a CRC/JSON error, never a crash
    p.write_bytes(bytes(data))
    convert_fails(str(p), tmp_path, capsys, errors.EXIT_CORRUPT_FILE)


def test_weights_only_h5(tmp_path: Any, capsys: Any) -> None:
    import h5py

    p = tmp_path / "weights.h5"
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_dataset("dense/kernel:0", data=[[1.0]])
    convert_fails(str(p), tmp_path, capsys, errors.EXIT_CORRUPT_FILE, "model_config", "weights only")


def test_keras_zip_bomb(tmp_path: Any, capsys: Any) -> None:
    p = tmp_path / "bomb.keras"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", "{}")
        with z.open("config.json", "w", force_zip64=True) as f:
            chunk = b" " * (1 << 24)
            for _ in range(17):  # 272 MiB of spaces, a few hundred KiB compressed
                f.write(chunk)
    convert_fails(str(p), tmp_path, capsys, errors.EXIT_CORRUPT_FILE, "config.json")


def _edited_h5(tmp_path: Any, name: str, edit: Any) -> str:
    import h5py

    p = tmp_path / name
    shutil.copy(os.path.join(FMNIST, "lenet5.h5"), p)
    with h5py.File(p, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        edit(cfg["config"]["layers"])
        f.attrs["model_config"] = json.dumps(cfg)
    return str(p)


def test_unknown_keras_layer(tmp_path: Any, capsys: Any) -> None:
    def edit(layers: list[Any]) -> None:
        layers[2]["class_name"] = "FancyLayer"
        layers[4]["class_name"] = "FancyLayer"

    p = _edited_h5(tmp_path, "unknown.h5", edit)
    line = convert_fails(p, tmp_path, capsys, errors.EXIT_UNSUPPORTED, "FancyLayer x2", "Keras layer")
    assert "'pool1'" in line and "Conv2D" in line  # names the layers, lists what is supported


def test_lambda_layer_is_refused_and_never_run(tmp_path: Any, capsys: Any) -> None:
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').write('ran')"

    def edit(layers: list[Any]) -> None:
        layers[3]["class_name"] = "Lambda"
        layers[3]["config"]["function"] = {"class_name": "__lambda__", "config": {"code": code}}

    p = _edited_h5(tmp_path, "lambda.h5", edit)
    convert_fails(p, tmp_path, capsys, errors.EXIT_UNSUPPORTED, "Lambda (Python code", "never runs it) x1 ('conv2')")
    assert not marker.exists()


def test_savedmodel_signature_errors(tmp_path: Any, capsys: Any) -> None:
    import convertmodel

    with pytest.raises(errors.UsageError, match=r"no signature 'nope'.*serving_default"):
        convertmodel.load(os.path.join(FMNIST, "lenet5_savedmodel"), signature="nope")
    d = tmp_path / "broken_savedmodel"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(b"\x08\x01\x12\xff\xff\xff")
    with pytest.raises(errors.FormatError, match=r"saved_model\.pb.*SavedModel"):
        convertmodel.load(str(d))


@pytest.mark.slow
def test_savedmodel_with_damaged_variables_is_one_line(tmp_path: Any) -> None:
    """TensorFlow's own failure (a truncated checkpoint shard) and its C++ log banners: still one line, exit 4."""
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    d = tmp_path / "damaged_savedmodel"
    shutil.copytree(os.path.join(FMNIST, "lenet5_savedmodel"), d)
    shard = d / "variables" / "variables.data-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:1000])
    out = tmp_path / "out.q8"
    r = subprocess.run(
        [sys.executable, "-m", "convertmodel", "quantize", "--in", str(d), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert r.returncode == errors.EXIT_INVALID_MODEL, (r.returncode, r.stderr)
    assert len(lines) == 1 and "damaged_savedmodel" in lines[0] and "TensorFlow cannot load" in lines[0], r.stderr
    assert not out.exists()
