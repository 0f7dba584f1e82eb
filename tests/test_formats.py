"""The reader and writer registries: detection by content, directories, options checked in one place."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from convertmodel import load, readers
from convertmodel.errors import EXIT_USAGE, FormatError, UsageError
from convertmodel.ir import GraphBuilder
from convertmodel.readers import BUILTIN as READER_LIST
from convertmodel.readers import ReaderInfo, ReaderKey, detect_format, read_model
from convertmodel.registry import Registry
from convertmodel.writers import BUILTIN as WRITER_LIST
from convertmodel.writers import write_model, writer_for


def _graph():
    b = GraphBuilder("g", {"source_format": "test"})
    x = b.add_input("x", "float32", (1, 4))
    w = b.add_const("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    (y,) = b.add_node("Gemm", [x, w], name="fc", transB=1)
    (z,) = b.add_node("Identity", [y], name="id")
    b.mark_output(z)
    return b.build()


@pytest.mark.parametrize("info", READER_LIST, ids=lambda i: i.format)
def test_every_reader_module_has_read(info: ReaderInfo) -> None:
    assert callable(importlib.import_module(info.module).read)


@pytest.mark.parametrize("info", WRITER_LIST, ids=lambda i: i.format)
def test_every_writer_module_has_write(info) -> None:
    assert callable(importlib.import_module(info.module).write)


def test_q8_is_read_through_the_registry_whatever_its_name(tmp_path) -> None:
    g = _graph()
    path = str(tmp_path / "model.onnx")  # content decides, not the name
    write_model(g, str(tmp_path / "m.q8"))
    os.replace(tmp_path / "m.q8", path)
    assert detect_format(path) == "q8"
    got = read_model(path)
    assert [n.op_type for n in got.nodes] == ["Gemm", "Identity"]
    # A .q8 holds a graph as it was saved: the import pipeline does not run (the Identity stays).
    assert [n.op_type for n in load(path).graph.nodes] == ["Gemm", "Identity"]


def test_unknown_reader_option_is_a_usage_error(tmp_path) -> None:
    path = str(tmp_path / "m.q8")
    write_model(_graph(), path)
    with pytest.raises(UsageError, match=r"unknown q8 reader option\(s\) prototxt; accepted: verify_crc") as e:
        load(path, prototxt="x.prototxt")
    assert e.value.exit_code == EXIT_USAGE
    with pytest.raises(UsageError, match="unknown format 'nope'"):
        read_model(path, "nope")


def test_writer_options_and_formats_are_checked(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"unknown q8 writer option\(s\) prototxt_out"):
        write_model(_graph(), str(tmp_path / "m.q8"), prototxt_out="x")
    with pytest.raises(UsageError, match="cannot write this format"):
        write_model(_graph(), str(tmp_path / "m.txt"))
    assert not os.listdir(tmp_path)
    assert writer_for("A.CAFFEMODEL").format == "caffe"


def test_directory_formats(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match="is a directory"):
        detect_format(str(empty))
    # A directory format is found by its sniffer, which looks inside (head is empty for a directory).
    reg: Registry = Registry("reader")
    for info in READER_LIST:
        reg.add(ReaderKey(info.format), info)
    marker = lambda path, head: head == b"" and os.path.isfile(os.path.join(path, "MARK"))  # noqa: E731
    reg.add(ReaderKey("dirfmt"), ReaderInfo("dirfmt", (), "nowhere", marker, "test", directory=True))
    monkeypatch.setattr(readers, "READERS", reg)
    with pytest.raises(FormatError, match="dirfmt directory"):
        detect_format(str(empty))
    (empty / "MARK").write_bytes(b"")
    assert detect_format(str(empty)) == "dirfmt"


def test_content_before_extension(tmp_path) -> None:
    path = tmp_path / "weights.caffemodel"
    path.write_bytes(b"not a model")
    assert detect_format(str(path)) == "caffe"  # no signature: the name decides
    other = tmp_path / "x.bin"
    other.write_bytes(b"\x01\x02")
    with pytest.raises(FormatError, match="unrecognised model format"):
        detect_format(str(other))
