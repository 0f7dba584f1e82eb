"""Hostile and broken BigDL files: one typed error naming the file (and module), bounded memory,
no output written."""

from __future__ import annotations

import os
import shutil
import struct
import tracemalloc

import numpy as np
import pytest

from convertmodel.errors import (
    EXIT_CORRUPT_FILE,
    EXIT_INVALID_MODEL,
    EXIT_UNSUPPORTED,
    ConvertModelError,
    FormatError,
    InvalidModelError,
    UnsupportedOpError,
)
from convertmodel.readers.bigdl import read
from convertmodel.readers.bigdl.proto import pb
from tests.cli import run_cli
from tests.helpers import FIXTURES
from tests.readers.bigdl.bigdl_util import linear_relu, module, write

LENET = os.path.join(FIXTURES, "bigdl", "v2.4", "lenet.bigdl")
SPLIT = os.path.join(FIXTURES, "bigdl", "v2.4", "lenet_split.bigdl")
SPLIT_W = os.path.join(FIXTURES, "bigdl", "v2.4", "lenet_split.weights")


def _bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _put(tmp: object, name: str, data: bytes) -> str:
    p = os.path.join(str(tmp), name)
    with open(p, "wb") as f:
        f.write(data)
    return p


@pytest.mark.parametrize("frac", [0.001, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_protobuf_is_a_typed_error(tmp_path: object, frac: float) -> None:
    data = _bytes(LENET)
    p = _put(tmp_path, "cut.bigdl", data[: int(len(data) * frac)])
    with pytest.raises((FormatError, InvalidModelError)) as ei:
        read(p)
    assert "cut.bigdl" in str(ei.value) and "\n" not in str(ei.value)


def test_garbage_is_a_format_error(tmp_path: object) -> None:
    p = _put(tmp_path, "junk.bigdl", np.random.default_rng(0).integers(0, 256, 4096).astype(np.uint8).tobytes())
    with pytest.raises(FormatError):
        read(p)


def _first(top: object, cls: str) -> object:
    stack = [top]
    while stack:
        m = stack.pop(0)
        if m.moduleType.endswith("." + cls):  # type: ignore[attr-defined]
            return m
        stack.extend(m.subModules)  # type: ignore[attr-defined]
    raise AssertionError(cls)


def _lenet() -> object:
    m = pb.BigDLModule()
    m.ParseFromString(_bytes(LENET))
    return m


def test_storage_offset_past_the_storage(tmp_path: object) -> None:
    top = _lenet()
    conv = _first(top, "SpatialConvolution")
    conv.parameters[0].offset = 1_000_000  # type: ignore[attr-defined]
    p = write(os.path.join(str(tmp_path), "off.bigdl"), top)
    with pytest.raises(InvalidModelError, match=r"off\.bigdl: module 'SpatialConvolution[0-9a-f]*'.*offset 1000000"):
        read(p)


def test_size_stride_product_overflow(tmp_path: object) -> None:
    top = _lenet()
    conv = _first(top, "SpatialConvolution")
    t = conv.parameters[0]  # type: ignore[attr-defined]
    del t.size[:], t.stride[:]
    t.size.extend([1 << 20, 1 << 20, 1 << 20])
    t.stride.extend([0, 0, 0])
    p = write(os.path.join(str(tmp_path), "big.bigdl"), top)
    tracemalloc.start()
    with pytest.raises(InvalidModelError, match="declares"):
        read(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def test_unknown_module_class_lists_name(tmp_path: object) -> None:
    top = _lenet()
    relu = _first(top, "ReLU")
    relu.moduleType = "com.intel.analytics.bigdl.dllib.nn.FancyLayer"  # type: ignore[attr-defined]
    p = write(os.path.join(str(tmp_path), "fancy.bigdl"), top)
    with pytest.raises(
        UnsupportedOpError, match=r"fancy\.bigdl: unsupported BigDL module types: FancyLayer x1 \('FancyLayer[0-9a-f]+'"
    ):
        read(p)


def test_nesting_is_bounded(tmp_path: object) -> None:
    top, _, _ = linear_relu()
    for _ in range(80):
        outer = module("Sequential")
        outer.subModules.append(top)
        top = outer
    p = write(os.path.join(str(tmp_path), "deep.bigdl"), top)
    with pytest.raises((FormatError, InvalidModelError)):
        read(p)


def test_graph_cycle(tmp_path: object) -> None:
    g = module("StaticGraph", "g")
    a, b, inp = module("ReLU", "a"), module("ReLU", "b"), module("Input", "in")
    a.preModules.extend(["in", "b"])
    b.preModules.append("a")
    g.subModules.extend([a, b, inp])
    p = write(os.path.join(str(tmp_path), "cyc.bigdl"), g)
    with pytest.raises(InvalidModelError, match="cycle"):
        read(p, input_shape=[1, 4])


def _split_copy(tmp: object, weights: bytes) -> str:
    d = str(tmp)
    shutil.copy(SPLIT, os.path.join(d, "net.bigdl"))
    _put(tmp, "net.weights", weights)
    return os.path.join(d, "net.bigdl")


def test_weights_count_disagrees(tmp_path: object) -> None:
    w = bytearray(_bytes(SPLIT_W))
    (count,) = struct.unpack_from(">i", w, 4)
    struct.pack_into(">i", w, 4, count + 1)
    with pytest.raises(FormatError, match=r"net\.weights"):
        read(_split_copy(tmp_path, bytes(w)))


def test_weights_storage_length_larger_than_file(tmp_path: object) -> None:
    w = bytearray(_bytes(SPLIT_W))
    struct.pack_into(">i", w, 16, 0x7FFFFFF0)  # first storage's element count
    tracemalloc.start()
    with pytest.raises(FormatError, match=r"only \d+ are left"):
        read(_split_copy(tmp_path, bytes(w)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def test_weights_checksum(tmp_path: object) -> None:
    w = bytearray(_bytes(SPLIT_W))
    w[100] ^= 0xFF
    with pytest.raises(FormatError, match="MD5"):
        read(_split_copy(tmp_path, bytes(w)))


def test_definition_without_weights(tmp_path: object) -> None:
    d = str(tmp_path)
    shutil.copy(SPLIT, os.path.join(d, "alone.bigdl"))
    with pytest.raises(InvalidModelError, match=r"alone\.weights"):
        read(os.path.join(d, "alone.bigdl"))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [("truncate", EXIT_CORRUPT_FILE), ("offset", EXIT_INVALID_MODEL), ("class", EXIT_UNSUPPORTED)],
)
def test_cli_one_line_exit_code_no_output(
    tmp_path: object, capsys: pytest.CaptureFixture[str], mutate: str, code: int
) -> None:
    top = _lenet()
    if mutate == "truncate":
        p = _put(tmp_path, "bad.bigdl", _bytes(LENET)[:5000])
    else:
        if mutate == "offset":
            _first(top, "Linear").parameters[1].offset = 99_999  # type: ignore[attr-defined]
        else:
            _first(top, "LogSoftMax").moduleType = "com.intel.analytics.bigdl.nn.Mystery"  # type: ignore[attr-defined]
        p = write(os.path.join(str(tmp_path), "bad.bigdl"), top)
    out_path = os.path.join(str(tmp_path), "out.q8")
    rc, _out, err = run_cli(["quantize", "--in", p, "--out", out_path], capsys)
    assert rc == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.bigdl" in lines[0] and "Traceback" not in err
    assert not os.path.exists(out_path)
    assert [f for f in os.listdir(str(tmp_path)) if f != "bad.bigdl"] == []


def test_errors_are_convertmodel_errors() -> None:
    assert issubclass(FormatError, ConvertModelError) and issubclass(InvalidModelError, ConvertModelError)
