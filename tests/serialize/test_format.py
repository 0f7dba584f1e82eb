"""The .q8 format: golden bytes, determinism, alignment, zero-copy, atomic writes, versioning.

Round trips of every dtype and attribute type are in test_roundtrip.py, damaged files in test_corruption.py.

Regenerate the golden file (only for a deliberate, documented format change) with
``python -m tests.serialize.test_format --regenerate``.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import sys
import zlib

import numpy as np
import pytest

from convertmodel.errors import FormatError, InvalidModelError, ModelIOError
from convertmodel.ir import Graph, Node, check_graph
from convertmodel.ir.graph import TensorType, ValueInfo
from convertmodel.serialize import Q8_MAGIC, read_header, read_q8, write_q8
from convertmodel.serialize import writer as writer_mod
from convertmodel.serialize.format import DTYPES
from tests.serialize.graphs import (
    GOLDEN,
    assert_graph_equal,
    mixed_graph,
    pack_file,
    probe_op,
    split_file,
    tiny_conv_graph,
    write_bytes,
)


@pytest.fixture(scope="module", autouse=True)
def _probe():
    with probe_op():
        yield


def regenerate() -> None:
    """Rewrite fixtures/q8/tiny_conv_v1.q8 from :func:`tiny_conv_graph`."""
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    write_q8(tiny_conv_graph(), GOLDEN)
    print(f"wrote {GOLDEN} ({os.path.getsize(GOLDEN)} bytes)")


# -- golden bytes -----------------------------------------------------------------------------------------------
def test_golden_bytes(tmp_path):
    """Writing the tiny graph must give exactly the committed bytes.

    A diff means the on-disk format changed (layout, header encoding, tensor order, padding) or
    the writer stopped being deterministic. Files already on users' disks were written the old
    way: if the change is intended, it needs a version bump in docs/format.md (minor for added
    keys, major otherwise), a reader that still reads the old file, and a regenerated fixture
    kept next to this one (tiny_conv_v1.q8 must keep reading, see test_golden_reads_back).
    """
    new = write_bytes(tiny_conv_graph(), str(tmp_path / "t.q8"))
    with open(GOLDEN, "rb") as f:
        golden = f.read()
    assert new == golden, f"written {len(new)} bytes differ from {GOLDEN} ({len(golden)} bytes)"


def test_golden_layout_by_hand():
    """Decode the committed file with struct/json/zlib only, following docs/format.md section 1."""
    with open(GOLDEN, "rb") as f:
        data = f.read()
    magic, major, minor, order, reserved, crc, header_len = struct.unpack_from("<4sHHB3sIQ", data, 0)
    assert (magic, major, minor, order, reserved) == (b"CMQ8", 1, 0, 1, b"\0\0\0")
    assert crc == zlib.crc32(data[:12] + data[16 : 24 + header_len])
    text = data[24 : 24 + header_len]
    header = json.loads(text)
    assert text == json.dumps(header, sort_keys=True, separators=(",", ":")).encode()  # canonical form
    data_start = (24 + header_len + 63) // 64 * 64
    assert data[24 + header_len : data_start] == b"\0" * (data_start - 24 - header_len)
    assert len(data) == data_start + header["data_size"] and header["data_size"] % 64 == 0
    assert header["graph"]["constants"] == ["conv1_b", "conv1_w"]
    assert [n["op_type"] for n in header["graph"]["nodes"]] == ["Conv", "Relu"]
    assert header["graph"]["inputs"] == [{"name": "data", "dtype": "float32", "shape": ["N", 1, 5, 5]}]
    assert header["graph"]["nodes"][0]["attrs"]["pads"] == {"type": "ints", "value": [1, 1, 1, 1]}
    table = {t["name"]: t for t in header["tensors"]}
    # First-use order: the weight (input 1 of conv1) precedes the bias (input 2).
    assert [t["name"] for t in header["tensors"]] == ["conv1_w", "conv1_b"]
    expected = {
        "conv1_w": (np.arange(18, dtype="<f4").reshape(2, 1, 3, 3) - 9) / 8,
        "conv1_b": np.array([0.5, -0.25], "<f4"),
    }
    for name, arr in expected.items():
        t = table[name]
        assert t["offset"] % 64 == 0 and t["nbytes"] == arr.nbytes and t["shape"] == list(arr.shape)
        raw = data[data_start + t["offset"] : data_start + t["offset"] + t["nbytes"]]
        assert raw == arr.astype("<f4").tobytes()
        assert t["crc32"] == f"{zlib.crc32(raw):08x}"


def test_golden_reads_back():
    g = read_q8(GOLDEN, verify_crc=True)
    check_graph(g)
    assert_graph_equal(tiny_conv_graph(), g)
    # The loaded model computes: Conv+Relu against a numpy formula written here.
    from convertmodel.runtime import run_graph

    x = np.linspace(-1, 1, 2 * 25, dtype=np.float32).reshape(2, 1, 5, 5)
    y = run_graph(g, {"data": x})["relu1"]
    w = (np.arange(18, dtype=np.float64).reshape(2, 1, 3, 3) - 9) / 8
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 2, 5, 5))
    for i in range(5):
        for j in range(5):
            ref[:, :, i, j] = np.einsum("nchw,mchw->nm", xp[:, :, i : i + 3, j : j + 3], w)
    ref = np.maximum(ref + np.array([0.5, -0.25])[None, :, None, None], 0)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


# -- determinism, alignment, zero-copy ------------------------------------------------------------------------------
def test_deterministic_and_independent_of_dict_order(tmp_path):
    g = mixed_graph()
    a = write_bytes(g, str(tmp_path / "a.q8"))
    b = write_bytes(g, str(tmp_path / "b.q8"))
    assert a == b
    shuffled = Graph(
        g.name,
        g.inputs,
        g.outputs,
        tuple(n.with_(attrs=dict(reversed(list(n.attrs.items())))) for n in g.nodes),
        dict(reversed(list(g.constants.items()))),
        metadata=dict(reversed(list(g.metadata.items()))),
    )
    assert write_bytes(shuffled.replace(), str(tmp_path / "c.q8")) == a
    # Byte order and memory layout of the arrays do not matter either.
    swapped = {k: np.array(v, dtype=v.dtype.newbyteorder(">"), order="F") for k, v in g.constants.items()}
    assert write_bytes(g.replace(constants=swapped, infer=False), str(tmp_path / "d.q8")) == a


def test_every_offset_is_aligned(tmp_path):
    p = str(tmp_path / "m.q8")
    write_q8(mixed_graph(), p)
    header = read_header(p)
    (header_len,) = struct.unpack_from("<Q", open(p, "rb").read(24), 16)
    data_start = (24 + header_len + 63) // 64 * 64
    assert data_start % 64 == 0
    assert len(header["tensors"]) == len(DTYPES) + 1
    for t in header["tensors"]:
        assert t["offset"] % 64 == 0, t
    g = read_q8(p)
    for name, arr in g.constants.items():
        if arr.size:
            assert arr.ctypes.data % 64 == 0, f"{name} mapped at a misaligned address"


def test_zero_copy_memmap(tmp_path):
    p = str(tmp_path / "t.q8")
    write_q8(tiny_conv_graph(), p)
    g = read_q8(p)
    w = g.constants["conv1_w"]
    assert isinstance(w, np.memmap)
    assert not w.flags.writeable and not w.flags.owndata
    base = w
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    assert isinstance(base, mmap.mmap)
    with pytest.raises(ValueError):
        w[0, 0, 0, 0] = 1.0


# -- atomic writes --------------------------------------------------------------------------------------------------
def _leftovers(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.endswith(".tmp") or ".cm-tmp-" in n)


@pytest.mark.parametrize("existing", [False, True])
def test_failure_midway_leaves_nothing(tmp_path, monkeypatch, existing):
    p = tmp_path / "out.q8"
    if existing:
        p.write_bytes(b"previous content")
    real = writer_mod._chunks
    calls = []

    def failing(a):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        yield from real(a)

    monkeypatch.setattr(writer_mod, "_chunks", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_q8(tiny_conv_graph(), str(p))
    assert len(calls) == 2  # it really failed between two tensors
    assert _leftovers(tmp_path) == []
    if existing:
        assert p.read_bytes() == b"previous content"
    else:
        assert not p.exists()


def test_fsync_error_is_model_io_error_and_cleans_up(tmp_path, monkeypatch):
    p = tmp_path / "out.q8"
    p.write_bytes(b"old")

    def bad_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_mod.os, "fsync", bad_fsync)
    with pytest.raises(ModelIOError, match="No space left"):
        write_q8(tiny_conv_graph(), str(p))
    assert p.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_missing_directory_is_model_io_error(tmp_path):
    with pytest.raises(ModelIOError):
        write_q8(tiny_conv_graph(), str(tmp_path / "nope" / "x.q8"))


def test_overwrite_a_file_that_is_mapped(tmp_path):
    """Re-saving a loaded model over its own file: os.replace keeps the old mapping valid."""
    p = str(tmp_path / "t.q8")
    a = write_bytes(tiny_conv_graph(), p)
    g = read_q8(p)
    before = np.array(g.constants["conv1_w"])
    assert write_bytes(g, p) == a
    np.testing.assert_array_equal(g.constants["conv1_w"], before)


@pytest.mark.parametrize("bad", ["complex", "int_range", "metadata"])
def test_unrepresentable_graph_is_rejected_before_any_file(tmp_path, bad):
    g = tiny_conv_graph()
    if bad == "complex":
        g = Graph(g.name, g.inputs, g.outputs, g.nodes, {**g.constants, "conv1_b": np.zeros(2, np.complex64)})
    elif bad == "int_range":
        n = g.nodes[0]
        g = Graph(g.name, g.inputs, g.outputs, (n.with_(attrs={**n.attrs, "group": 2**63}), g.nodes[1]), g.constants)
    else:
        g = Graph(g.name, g.inputs, g.outputs, g.nodes, g.constants, metadata={"k": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidModelError):
        write_q8(g, str(tmp_path / "x.q8"))
    assert os.listdir(tmp_path) == []


def test_duplicate_value_names_are_rejected_by_the_writer(tmp_path):
    g = tiny_conv_graph()
    dup = Node("Relu", "relu2", ("relu1",), ("conv1",))  # redefines conv1
    bad = Graph(g.name, g.inputs, g.outputs, (*g.nodes, dup), g.constants)
    with pytest.raises(InvalidModelError, match="defined twice"):
        write_q8(bad, str(tmp_path / "x.q8"))
    assert os.listdir(tmp_path) == []


# -- versioning and reading errors ------------------------------------------------------------------------------
def test_unknown_major_is_rejected(tmp_path):
    header, data = split_file(open(GOLDEN, "rb").read())
    p = tmp_path / "v2.q8"
    p.write_bytes(pack_file(header, data, major=2))
    with pytest.raises(FormatError, match="major version 2") as e:
        read_q8(str(p))
    assert e.value.offset == 4 and e.value.path == str(p)


def test_newer_minor_with_unknown_keys_is_read(tmp_path):
    header, data = split_file(open(GOLDEN, "rb").read())
    header["future_top"] = {"anything": [1, 2]}
    header["graph"]["future"] = 1
    header["graph"]["nodes"][0]["future"] = "x"
    header["graph"]["nodes"][0]["attrs"]["pads"]["future"] = None
    header["graph"]["inputs"][0]["future"] = True
    header["tensors"][0]["future"] = {"a": 1}
    p = tmp_path / "v1_7.q8"
    p.write_bytes(pack_file(header, data, minor=7))
    g = read_q8(str(p), verify_crc=True)
    assert_graph_equal(tiny_conv_graph(), g)
    assert read_header(str(p))["future_top"] == {"anything": [1, 2]}


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelIOError):
        read_q8(str(tmp_path / "absent.q8"))
    with pytest.raises(FormatError, match="directory"):
        read_q8(str(tmp_path))
    with pytest.raises(ModelIOError):
        read_header(str(tmp_path / "absent.q8"))


def test_read_header_matches_layout():
    header = read_header(GOLDEN)
    assert Q8_MAGIC == b"CMQ8" == open(GOLDEN, "rb").read(4)
    assert sorted(t["name"] for t in header["tensors"]) == ["conv1_b", "conv1_w"]
    assert sum(t["nbytes"] for t in header["tensors"]) == (18 + 2) * 4
    assert header["metadata"]["producer"] == "convertmodel tests"


def test_value_info_types_stay_exact(tmp_path):
    g = tiny_conv_graph()
    p = str(tmp_path / "g.q8")
    write_q8(g, p)
    h = read_q8(p)
    assert h.outputs == (ValueInfo("relu1", TensorType("float32", ("N", 2, 5, 5))),)


def test_load_and_save_through_the_public_api(tmp_path):
    """convertmodel.load sniffs the CMQ8 magic (even without the extension); Model.save writes .q8."""
    import shutil

    import convertmodel.model

    p = str(tmp_path / "model.bin")
    shutil.copy(GOLDEN, p)
    m = convertmodel.model.load(p)
    assert_graph_equal(tiny_conv_graph(), m.graph)
    out = str(tmp_path / "again.q8")
    m.save(out)
    assert open(out, "rb").read() == open(GOLDEN, "rb").read()


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        regenerate()
    else:
        print("usage: python -m tests.serialize.test_format --regenerate")
