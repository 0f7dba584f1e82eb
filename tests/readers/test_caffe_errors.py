"""Malformed Caffe inputs each give one clear error of the documented type (and exit code)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from convertmodel.errors import (
    EXIT_CORRUPT_FILE,
    EXIT_INVALID_MODEL,
    EXIT_UNSUPPORTED,
    FormatError,
    InvalidModelError,
    ModelIOError,
    UnsupportedOpError,
)
from convertmodel.readers.caffe import read
from tests.readers.caffe_util import input_block, write_net

CONV = (
    'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" '
    "convolution_param { num_output: 4 kernel_size: 3 } }\n"
)


def _conv_net(d: str, weight: np.ndarray, bias: np.ndarray | None = None) -> str:
    blobs = [weight] + ([bias] if bias is not None else [])
    _, model = write_net(d, input_block("data", (1, 3, 8, 8)) + CONV, {"conv1": blobs})
    return model


def test_prototxt_syntax_error_names_file_and_line(tmp_path: object) -> None:
    d = str(tmp_path)
    model = _conv_net(d, np.zeros((4, 3, 3, 3), np.float32), np.zeros(4, np.float32))
    proto = os.path.join(d, "net.prototxt")
    with open(proto) as f:
        lines = f.read().splitlines()
    lines.insert(1, 'layer { name: "broken" type: "ReLU" bottom: "data" top: "x" ')  # unclosed brace
    lines.insert(2, "  relu_param { negative_slope: = 3 }")
    with open(proto, "w") as f:
        f.write("\n".join(lines))
    with pytest.raises(FormatError) as ei:
        read(model)
    msg = str(ei.value)
    assert proto in msg and "line 3," in msg, msg
    assert ei.value.exit_code == EXIT_CORRUPT_FILE


def test_truncated_caffemodel_is_format_error(tmp_path: object) -> None:
    d = str(tmp_path)
    model = _conv_net(d, np.ones((4, 3, 3, 3), np.float32), np.ones(4, np.float32))
    with open(model, "rb") as f:
        data = f.read()
    with open(model, "wb") as f:
        f.write(data[: len(data) - 37])
    with pytest.raises(FormatError, match="truncated or corrupt") as ei:
        read(model)
    assert model in str(ei.value)


def test_garbage_caffemodel_is_format_error(tmp_path: object) -> None:
    d = str(tmp_path)
    model = _conv_net(d, np.ones((4, 3, 3, 3), np.float32), np.ones(4, np.float32))
    with open(model, "wb") as f:
        f.write(bytes(range(7, 255)) * 3)
    with pytest.raises(FormatError):
        read(model)


def test_wrong_blob_shape_names_layer_blob_and_shapes(tmp_path: object) -> None:
    model = _conv_net(str(tmp_path), np.zeros((4, 3, 5, 5), np.float32), np.zeros(4, np.float32))
    with pytest.raises(InvalidModelError) as ei:
        read(model)
    msg = str(ei.value)
    assert "'conv1'" in msg and "blob 0" in msg and "(4, 3, 5, 5)" in msg and "(4, 3, 3, 3)" in msg, msg
    assert ei.value.exit_code == EXIT_INVALID_MODEL


def test_wrong_blob_count(tmp_path: object) -> None:
    model = _conv_net(str(tmp_path), np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(InvalidModelError, match=r"'conv1'.*expected 2 weight blobs, found 1"):
        read(model)


def test_missing_weights(tmp_path: object) -> None:
    _, model = write_net(str(tmp_path), input_block("data", (1, 3, 8, 8)) + CONV)
    with pytest.raises(InvalidModelError, match=r"'conv1'.*found 0"):
        read(model)


def test_unsupported_layers_reported_once_with_counts(tmp_path: object) -> None:
    body = input_block("data", (1, 3, 4, 4))
    for k in range(4):
        body += f'layer {{ name: "py{k}" type: "Python" bottom: "data" top: "py{k}" python_param {{ module: "m" layer: "L" }} }}\n'
    body += 'layer { name: "odd" type: "MyCustomLayer" bottom: "data" top: "odd" }\n'
    body += 'layer { name: "sto" type: "Pooling" bottom: "data" top: "sto" pooling_param { pool: STOCHASTIC kernel_size: 2 } }\n'
    body += 'layer { name: "odd2" type: "MyCustomLayer" bottom: "data" top: "odd2" }\n'
    _, model = write_net(str(tmp_path), body)
    with pytest.raises(UnsupportedOpError) as ei:
        read(model)
    e = ei.value
    assert e.unsupported == {
        "Python(m.L)": ["py0", "py1", "py2", "py3"],
        "MyCustomLayer": ["odd", "odd2"],
        "Pooling(STOCHASTIC)": ["sto"],
    }
    assert "x4" in str(e) and "x2" in str(e) and "Convolution" in str(e)
    assert e.exit_code == EXIT_UNSUPPORTED


def test_missing_caffemodel_is_io_error(tmp_path: object) -> None:
    with pytest.raises(ModelIOError):
        read(os.path.join(str(tmp_path), "nope.caffemodel"), prototxt=os.path.join(str(tmp_path), "nope.prototxt"))


def test_bottom_not_produced(tmp_path: object) -> None:
    body = input_block("data", (1, 3)) + 'layer { name: "r" type: "ReLU" bottom: "ghost" top: "r" }\n'
    _, model = write_net(str(tmp_path), body)
    with pytest.raises(InvalidModelError, match="'ghost' is not produced"):
        read(model)


def test_cli_exit_codes(tmp_path: object) -> None:
    """The documented exit codes through the real CLI entry point (inspect loads the model)."""
    from convertmodel.cli.main import main

    d = str(tmp_path)
    model = _conv_net(d, np.zeros((4, 3, 5, 5), np.float32), np.zeros(4, np.float32))
    with pytest.raises(SystemExit) as ei:
        main(["inspect", model])
    assert ei.value.code == EXIT_INVALID_MODEL
    with open(model, "wb") as f:
        f.write(b"\x0a\xff\xff\xff")
    with pytest.raises(SystemExit) as ei:
        main(["inspect", model])
    assert ei.value.code == EXIT_CORRUPT_FILE
