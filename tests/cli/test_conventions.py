"""One tool, one set of conventions: the model argument, --json/--report, global options anywhere, JSON errors."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from convertmodel import errors
from convertmodel.fsutil import file_sha256
from tests.cli import run_cli
from tests.helpers import SUBSET_IMAGES, fixture_model

HEADER = ("report_version", "tool", "created", "command", "model")


@pytest.fixture(scope="module")
def lenet_q8(tmp_path_factory: Any) -> str:
    out = str(tmp_path_factory.mktemp("conv") / "lenet5.q8")
    code, _, err = run_cli(["-q", "quantize", fixture_model("lenet5"), "--out", out])
    assert code == 0 and os.path.isfile(out), err
    return out


def _header_ok(doc: dict[str, Any], command: str, model: str) -> None:
    for k in HEADER:
        assert k in doc, (k, sorted(doc))
    assert doc["command"] == command and doc["tool"]["name"] == "convertmodel" and doc["report_version"] == 1
    assert doc["model"]["path"] == model and doc["model"]["sha256"] == file_sha256(model), doc["model"]


def test_model_is_positional_everywhere_and_in_is_an_alias(tmp_path: Any, capsys: Any) -> None:
    src = fixture_model("lenet5")
    a, b = str(tmp_path / "a.q8"), str(tmp_path / "b.q8")
    assert run_cli(["-q", "convert", src, "--out", a], capsys)[0] == 0
    assert run_cli(["-q", "convert", "--in", src, "--out", b], capsys)[0] == 0
    assert open(a, "rb").read() == open(b, "rb").read()
    qa, qb = str(tmp_path / "qa.q8"), str(tmp_path / "qb.q8")
    assert run_cli(["-q", "quantize", src, "--out", qa], capsys)[0] == 0
    assert run_cli(["-q", "quantize", "--in", src, "--out", qb], capsys)[0] == 0
    assert os.path.getsize(qa) == os.path.getsize(qb)
    code, _, err = run_cli(["convert", src, "--in", a, "--out", str(tmp_path / "c.q8")], capsys)
    assert code == errors.EXIT_USAGE and "give MODEL once" in err
    code, _, err = run_cli(["convert", "--out", str(tmp_path / "c.q8")], capsys)
    assert code == errors.EXIT_USAGE and "Missing argument 'MODEL'" in err


@pytest.mark.parametrize("where", ["front", "after-command", "end"])
def test_global_options_in_any_position(where: str, lenet_q8: str, capsys: Any) -> None:
    args = ["inspect", lenet_q8]
    argv = {"front": ["--json", *args], "after-command": ["inspect", "--json", lenet_q8], "end": [*args, "--json"]}
    code, out, err = run_cli(argv[where], capsys)
    assert code == 0, err
    _header_ok(json.loads(out), "inspect", lenet_q8)
    code, out, err = run_cli([*args, "-q"], capsys)
    assert code == 0 and out == "" and err == ""


def test_debug_after_the_command_shows_the_traceback(tmp_path: Any) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    from convertmodel.cli.main import main

    with pytest.raises(errors.ConvertModelError):  # --debug re-raises instead of the one-line error
        main(["inspect", str(bad), "--debug"])


def test_json_on_every_command_has_the_one_header(lenet_q8: str, tmp_path: Any, capsys: Any) -> None:
    src = fixture_model("lenet5")
    x = np.zeros((2, 1, 28, 28), np.float32)
    np.save(tmp_path / "x.npy", x)
    runs = {
        "convert": ["convert", src, "--out", str(tmp_path / "c.q8")],
        "quantize": ["quantize", src, "--out", str(tmp_path / "q.q8")],
        "inspect": ["inspect", src],
        "predict": ["predict", src, "--input", str(tmp_path / "x.npy")],
        "verify": ["verify", lenet_q8, "--reference", src, "--data", SUBSET_IMAGES, "--limit", "16"],
        "bench": ["bench", src, "--iterations", "1", "--warmup", "0", "--threads", "1"],
    }
    for command, args in runs.items():
        code, out, err = run_cli([*args, "--json"], capsys)
        assert code == 0, (command, err)
        doc = json.loads(out)
        _header_ok(doc, command, args[1])


def test_report_file_on_every_command_and_dash_is_stdout(
    lenet_q8: str, tmp_path: Any, capsys: Any, monkeypatch: Any
) -> None:
    rep = tmp_path / "r.json"
    code, out, err = run_cli(["inspect", lenet_q8, "--report", str(rep)], capsys)
    assert code == 0, err
    assert "ops" in out  # the tables still print
    _header_ok(json.loads(rep.read_text()), "inspect", lenet_q8)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["inspect", lenet_q8, "--report", "-"], capsys)
    assert code == 0 and not os.path.exists(tmp_path / "-"), err
    _header_ok(json.loads(out), "inspect", lenet_q8)


def test_verify_json_file_is_a_deprecated_alias_of_report(
    lenet_q8: str, tmp_path: Any, capsys: Any, monkeypatch: Any
) -> None:
    rep = tmp_path / "v.json"
    args = ["verify", lenet_q8, "--reference", fixture_model("lenet5"), "--data", SUBSET_IMAGES, "--limit", "16"]
    code, _, err = run_cli([*args, "--json", str(rep)], capsys)
    assert code == 0 and "deprecated" in err, err
    doc = json.loads(rep.read_text())
    _header_ok(doc, "verify", lenet_q8)
    assert doc["data"]["samples"] == 16
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli([*args, "--json", "-"], capsys)
    assert code == 0 and not os.path.exists(tmp_path / "-"), err
    assert json.loads(out)["data"]["samples"] == 16


def test_report_over_an_input_is_refused_before_any_work(lenet_q8: str, capsys: Any) -> None:
    before = file_sha256(lenet_q8)
    code, _, err = run_cli(["inspect", lenet_q8, "--report", lenet_q8], capsys)
    assert code == errors.EXIT_IO and "refusing to write" in err, err
    assert file_sha256(lenet_q8) == before


def test_errors_in_json_mode_print_a_json_error_object(tmp_path: Any, capsys: Any) -> None:
    missing = str(tmp_path / "nope.onnx")
    code, out, err = run_cli(["inspect", missing, "--json"], capsys)
    assert code == errors.EXIT_IO
    doc = json.loads(out)
    assert doc["command"] == "inspect" and doc["error"]["exit_code"] == errors.EXIT_IO
    assert doc["model"]["path"] == missing and doc["model"]["sha256"] is None
    assert err.startswith("error: ") and err.count("\n") == 1  # the one line on stderr too
    code, out, err = run_cli(["--json", "inspect", "--no-such-option"], capsys)
    assert code == errors.EXIT_USAGE and json.loads(out)["error"]["exit_code"] == errors.EXIT_USAGE


def test_version_names_the_int8_kernels(capsys: Any) -> None:
    from convertmodel.runtime import native

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and "convertmodel, version" in out
    want = f"native {native.isa()}" if native.available() else "numpy reference"
    assert f"int8 kernels: {want}" in out


def test_data_errors_have_their_own_exit_code(tmp_path: Any, capsys: Any) -> None:
    src = fixture_model("lenet5")
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 28, 28), np.float32))
    code, _, err = run_cli(["predict", src, "--input", str(tmp_path / "wrong.npy")], capsys)
    assert code == errors.EXIT_DATA == 8 and "expected shape" in err, err
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 28, 28), np.float32))
    code, _, err = run_cli(["verify", src, "--data", str(tmp_path / "x.npy"), "--metric", "top1"], capsys)
    assert code == errors.EXIT_DATA and "needs labels" in err, err
    assert issubclass(errors.DataError, errors.InvalidModelError)  # code catching InvalidModelError still does


def test_missing_prototxt_is_a_usage_error(tmp_path: Any, capsys: Any) -> None:
    import shutil

    from tests.helpers import FMNIST

    lone = tmp_path / "lenet5.caffemodel"
    shutil.copy(os.path.join(FMNIST, "lenet5.caffemodel"), lone)
    code, _, err = run_cli(["inspect", str(lone)], capsys)
    assert code == errors.EXIT_USAGE and "--prototxt" in err, err


def _two_output_onnx(path: str) -> None:
    import onnx
    from onnx import helper, numpy_helper

    w = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"]),
    ]
    g = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, ["N", 3]),
        ],
        [numpy_helper.from_array(w, "w")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def test_predict_writes_every_output(tmp_path: Any, capsys: Any) -> None:
    import convertmodel

    src = str(tmp_path / "two.onnx")
    _two_output_onnx(src)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npz"
    code, _, err = run_cli(["-q", "predict", src, "--input", str(tmp_path / "x.npy"), "--out", str(out)], capsys)
    assert code == 0, err
    got = np.load(out)
    want = convertmodel.load(src).predict({"x": x})
    assert sorted(got.files) == ["logits", "prob"]
    for k in got.files:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6)
    code, _, err = run_cli(
        ["predict", src, "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")], capsys
    )
    assert code == errors.EXIT_USAGE and "use --out FILE.npz" in err and not (tmp_path / "y.npy").exists()


def test_predict_runs_a_folder_of_images_as_one_batch(tmp_path: Any, capsys: Any) -> None:
    from PIL import Image

    from convertmodel.data.datasets import read_idx

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    arrays = read_idx(SUBSET_IMAGES, 3)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(imgs / f"{i}.png")
    src = fixture_model("lenet5")
    code, out, err = run_cli(
        ["--json", "predict", src, "--input", str(imgs), "--preset", "fmnist", "--out", str(tmp_path / "y.npy")], capsys
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["samples"] == 3 and doc["ids"] == ["0.png", "1.png", "2.png"] and len(doc["top"]) == 3
    import convertmodel

    x = (arrays.astype(np.float32) / np.float32(255))[:, None]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), convertmodel.load(src).predict(x), rtol=1e-4, atol=1e-5)


def test_int8_on_the_numpy_reference_is_announced(lenet_q8: str, capsys: Any, monkeypatch: Any) -> None:
    from convertmodel.runtime import native

    code, _, err = run_cli(["inspect", lenet_q8], capsys)
    assert code == 0 and ("numpy reference" in err) == (not native.available())
    monkeypatch.setattr(native, "available", lambda: False)  # as on a machine where the build failed
    code, _, err = run_cli(["inspect", lenet_q8], capsys)
    assert code == 0 and err.count("warning: int8 runs on the numpy reference kernels") == 1, err
    code, out, _ = run_cli(["--version"], capsys)
    assert "int8 kernels: numpy reference" in out
    code, out, _ = run_cli(["--json", "inspect", lenet_q8], capsys)
    assert json.loads(out)["int8_kernels"].startswith("numpy reference")


@pytest.mark.parametrize(
    ("name", "words"), [("m.pt", "torch.onnx.export"), ("m.pth", "torch.onnx.export"), ("m.pdmodel", "paddle2onnx")]
)
def test_unsupported_formats_say_what_the_file_is_and_what_to_do(
    name: str, words: str, tmp_path: Any, capsys: Any
) -> None:
    p = tmp_path / name
    p.write_bytes(b"PK\x03\x04" + bytes(60))  # a zip archive, as torch.save writes
    code, _, err = run_cli(["inspect", str(p)], capsys)
    assert code == errors.EXIT_CORRUPT_FILE and words in err and err.count("\n") == 1, err


def test_an_onnx_file_named_caffemodel_is_read_as_onnx(tmp_path: Any, capsys: Any) -> None:
    import shutil

    p = tmp_path / "net.caffemodel"
    shutil.copy(fixture_model("lenet5"), p)
    code, out, err = run_cli(["--json", "inspect", str(p)], capsys)
    assert code == 0 and json.loads(out)["format"] == "onnx", err


def test_inspect_labels_a_q8_and_counts_the_original_parameters(lenet_q8: str, capsys: Any) -> None:
    src = fixture_model("lenet5")
    fp32 = json.loads(run_cli(["--json", "inspect", src], capsys)[1])
    q = json.loads(run_cli(["--json", "inspect", lenet_q8], capsys)[1])
    assert (q["format"], q["source_format"]) == ("q8", "onnx") and fp32["format"] == "onnx"
    assert q["parameters"] == fp32["parameters"] and q["window_parameters"] > 0 and fp32["window_parameters"] == 0
    assert fp32["inputs"][0]["type"] == "float32[N,1,28,28]"  # the export's batch is named unk__47
    code, out, _ = run_cli(["inspect", lenet_q8], capsys)
    assert code == 0 and "q8 (source format onnx)" in out


def test_inspect_graph_is_one_line_per_node_when_piped(lenet_q8: str, capsys: Any) -> None:
    import convertmodel

    code, out, _ = run_cli(["inspect", lenet_q8, "--graph"], capsys)
    nodes = convertmodel.load(lenet_q8).graph.nodes
    lines = [ln for ln in out.splitlines() if " = " in ln and ln.lstrip().startswith("%")]
    assert code == 0 and len(lines) == len(nodes), out[-2000:]


def test_integer_shape_tensors_are_not_fp32_left_unquantized(tmp_path: Any, capsys: Any) -> None:
    import onnx
    from onnx import helper, numpy_helper

    w = np.random.default_rng(2).standard_normal((6, 4)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1), helper.make_node("Reshape", ["g", "shape"], ["y"])]
    g = helper.make_graph(
        nodes,
        "r",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([-1, 3, 2], np.int64), "shape")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "r.onnx"))
    q8 = str(tmp_path / "r.q8")
    assert run_cli(["-q", "quantize", str(tmp_path / "r.onnx"), "--out", q8], capsys)[0] == 0
    bd = json.loads(run_cli(["--json", "inspect", q8], capsys)[1])["size_breakdown"]
    assert [r["name"] for r in bd["fp32_kept"]] == [] and bd["parts"]["integer constants (shapes, indices)"] == 24


def test_progress_off_a_terminal_is_a_few_summary_lines(capsys: Any) -> None:
    args = ["verify", fixture_model("lenet5"), "--data", SUBSET_IMAGES, "--batch", "10"]  # 100 batches
    code, _, err = run_cli(args, capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("verify fp32 vs int8")]
    assert code == 0 and 2 <= len(lines) <= 5, err
    assert lines[-1].startswith("verify fp32 vs int8 (local): 1000/1000 in ") and "/s)" in lines[-1]
    assert "\n\n" not in err


def test_every_command_takes_the_reader_options() -> None:
    """README: every command takes --input-shape (and the TensorFlow reader options): bench once lacked them."""
    import importlib

    from convertmodel.cli.main import COMMANDS

    missing = {}
    for name, (module, _) in COMMANDS.items():
        cmd = importlib.import_module(module).command
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        lacking = {"--input-shape", "--tf-inputs", "--tf-outputs", "--signature"} - opts
        if lacking:
            missing[name] = sorted(lacking)
    assert not missing, missing
