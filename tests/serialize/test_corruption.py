"""Corrupt .q8 files: every truncation, flipped byte and crafted inconsistency raises FormatError.

The reader must never crash (IndexError, struct.error, JSON errors), hang or return garbage for a
damaged preamble/header; tensor data damage is caught with ``verify_crc=True``.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convertmodel.errors import FormatError, UnsupportedOpError
from convertmodel.serialize import read_header, read_q8, write_q8
from tests.serialize.graphs import GOLDEN, assert_graph_equal, pack_file, split_file, tiny_conv_graph

GOOD = open(GOLDEN, "rb").read()
HEADER, DATA = split_file(GOOD)
(HEADER_LEN,) = struct.unpack_from("<Q", GOOD, 16)
DATA_START = (24 + HEADER_LEN + 63) // 64 * 64
TENSOR_RANGES = [(DATA_START + t["offset"], DATA_START + t["offset"] + t["nbytes"]) for t in HEADER["tensors"]]


def _in_tensor(i: int) -> bool:
    return any(a <= i < b for a, b in TENSOR_RANGES)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "c.q8")


def _expect_format_error(path: str, data: bytes, verify_crc: bool = False) -> FormatError:
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(FormatError) as e:
        read_q8(path, verify_crc=verify_crc)
    assert e.value.path == path
    return e.value


def test_golden_file_is_valid(path):
    with open(path, "wb") as f:
        f.write(GOOD)
    assert_graph_equal(tiny_conv_graph(), read_q8(path, verify_crc=True))
    assert len(TENSOR_RANGES) == 2


def test_truncation_at_every_offset(path):
    for n in range(len(GOOD)):
        err = _expect_format_error(path, GOOD[:n])
        assert err.offset is not None and err.offset <= n, (n, err)


def test_trailing_bytes_rejected(path):
    err = _expect_format_error(path, GOOD + b"\0")
    assert "trailing" in str(err)


def test_every_flipped_byte_outside_tensor_data(path):
    """Preamble, header and header padding are covered by the header CRC: any flip is an error."""
    for i in range(DATA_START):
        bad = bytearray(GOOD)
        bad[i] ^= 0x5A
        _expect_format_error(path, bytes(bad))


def test_every_flipped_byte_in_tensor_data_caught_by_crc(path):
    flipped = 0
    for i in range(DATA_START, len(GOOD)):
        bad = bytearray(GOOD)
        bad[i] ^= 0x01
        with open(path, "wb") as f:
            f.write(bad)
        if _in_tensor(i):
            with pytest.raises(FormatError, match="checksum mismatch") as e:
                read_q8(path, verify_crc=True)
            a, _ = next(r for r in TENSOR_RANGES if r[0] <= i < r[1])
            assert e.value.offset == a
            read_q8(path)  # without verify_crc the damaged values load (documented): no crash
            flipped += 1
        else:  # gap bytes between tensors carry no value (docs/format.md section 4): loads either way
            read_q8(path, verify_crc=True)
    assert flipped == sum(b - a for a, b in TENSOR_RANGES)


@pytest.mark.parametrize("length", [0, 2**64 - 1, 2**63, 2**40, 16 * 2**20 + 1, 64 * 2**20, len(GOOD)])
def test_absurd_header_length(path, length):
    bad = bytearray(GOOD)
    bad[16:24] = struct.pack("<Q", length)
    err = _expect_format_error(path, bytes(bad))
    assert err.offset == 16


def test_header_length_with_recomputed_crc(path):
    # A header_len that is consistent with the CRC but points into the data section.
    err = _expect_format_error(path, pack_file(json.dumps(HEADER).encode(), DATA, header_len=HEADER_LEN + 64))
    assert err.offset is not None


@pytest.mark.parametrize(
    "field,kw,match",
    [
        ("major", {"major": 0}, "major version 0"),
        ("major", {"major": 65535}, "major version 65535"),
        ("order", {"byte_order": 2}, "byte-order"),
        ("reserved", {"reserved": b"\0\1\0"}, "reserved"),
    ],
)
def test_preamble_fields_with_valid_crc(path, field, kw, match):
    _expect_format_error(path, pack_file(HEADER, DATA, **kw))
    with pytest.raises(FormatError, match=match):
        read_q8(path)


def test_wrong_magic_and_short_files(path):
    for data in [b"", b"CM", b"CMQ8", b"\x08\x01\x12\x00" * 10, b"GGUF" + GOOD[4:], b"PK\x03\x04" + b"\0" * 100]:
        _expect_format_error(path, data)


def _mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    h = copy.deepcopy(HEADER)
    fn(h)
    return h


def _t(h: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in h["tensors"] if t["name"] == name)


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    d[key] = value


BAD_HEADERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "misaligned offset": (lambda h: _set(_t(h, "conv1_b"), "offset", _t(h, "conv1_b")["offset"] + 4), "multiple of 64"),
    "overlapping offsets": (lambda h: _set(_t(h, "conv1_b"), "offset", 0), "overlaps"),
    "out of bounds": (lambda h: _set(_t(h, "conv1_b"), "offset", h["data_size"]), "exceed"),
    "nbytes mismatch": (lambda h: _set(_t(h, "conv1_w"), "nbytes", 68), "needs 72 bytes"),
    "shape mismatch": (lambda h: _set(_t(h, "conv1_w"), "shape", [2, 1, 3, 4]), "needs 96 bytes"),
    "shape overflow": (lambda h: _set(_t(h, "conv1_w"), "shape", [2**40, 2**40, 0]), "overflows"),
    "empty but absurd": (lambda h: _set(_t(h, "conv1_b"), "shape", [0, 2**62]), "overflows"),
    "negative dim": (lambda h: _set(_t(h, "conv1_w"), "shape", [-2, 1, 3, 3]), "integer in"),
    "float dim": (lambda h: _set(_t(h, "conv1_w"), "shape", [2.0, 1, 3, 3]), "expected an integer"),
    "bool dim": (lambda h: _set(_t(h, "conv1_b"), "shape", [True, True]), "boolean"),
    "rank 40": (lambda h: _set(_t(h, "conv1_b"), "shape", [1] * 40), "rank 40"),
    "unknown dtype": (lambda h: _set(_t(h, "conv1_w"), "dtype", "float8"), "unknown dtype"),
    "bad crc field": (lambda h: _set(_t(h, "conv1_w"), "crc32", 12345), "expected a string"),
    "duplicate tensor names": (lambda h: _set(_t(h, "conv1_b"), "name", "conv1_w"), "appears twice"),
    "duplicate node names": (lambda h: _set(h["graph"]["nodes"][1], "name", "conv1"), "used twice"),
    "value defined twice": (lambda h: _set(h["graph"]["nodes"][1], "outputs", ["conv1"]), "defined twice"),
    "input shadowed by constant": (lambda h: _set(h["graph"]["inputs"][0], "name", "conv1_w"), "defined twice"),
    "undefined constant": (lambda h: h["graph"]["constants"].append("ghost"), "not in the tensor table"),
    "undefined input": (lambda h: _set(h["graph"]["nodes"][0], "inputs", ["data", "ghost"]), "before it is defined"),
    "not topological": (lambda h: h["graph"]["nodes"].reverse(), "before it is defined"),
    "undefined output": (lambda h: _set(h["graph"]["outputs"][0], "name", "ghost"), "not defined"),
    "missing key": (lambda h: h["graph"]["nodes"][0].pop("op_type"), "'op_type' is missing"),
    "missing data_size": (lambda h: h.pop("data_size"), "'data_size' is missing"),
    "data_size mismatch": (lambda h: _set(h, "data_size", h["data_size"] + 64), "truncated"),
    "unknown attr type": (
        lambda h: _set(h["graph"]["nodes"][0]["attrs"]["pads"], "type", "graph"),
        "unknown attribute type",
    ),
    "int given for float": (
        lambda h: _set(h["graph"]["nodes"][0]["attrs"], "x", {"type": "float", "value": 1}),
        "expected a float",
    ),
    "float in ints": (
        lambda h: _set(h["graph"]["nodes"][0]["attrs"]["pads"], "value", [1, 1.5]),
        "expected an integer",
    ),
    "int attr too big": (lambda h: _set(h["graph"]["nodes"][0]["attrs"]["pads"], "value", [2**63]), "integer in"),
    "tensor attr dangling": (
        lambda h: _set(h["graph"]["nodes"][0]["attrs"], "t", {"type": "tensor", "tensor": "?"}),
        "not in the tensor table",
    ),
    "metadata not str": (lambda h: _set(h["metadata"], "k", 1), "expected a string"),
    "graph not object": (lambda h: _set(h, "graph", []), "expected an object"),
    "nodes not array": (lambda h: _set(h["graph"], "nodes", {}), "expected an array"),
    "input dtype": (lambda h: _set(h["graph"]["inputs"][0], "dtype", "float128"), "unknown dtype"),
    "input dim": (lambda h: _set(h["graph"]["inputs"][0], "shape", [1.5]), "expected an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_crafted_header_inconsistency(path, case):
    fn, match = BAD_HEADERS[case]
    err = _expect_format_error(path, pack_file(_mutate(fn), DATA))
    assert match in str(err), f"{case}: {err}"
    with pytest.raises(FormatError):
        read_header(path)


@pytest.mark.parametrize(
    "raw,match",
    [
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"data_size":NaN}', "NaN"),
        (b'{"x":Infinity}', "Infinity"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[1,2]", "JSON object"),
        (b"{", "not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (b'{"data_size":' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"{}", "missing"),
        (b" " * 100, "not valid JSON"),
    ],
)
def test_malformed_json_header(path, raw, match):
    err = _expect_format_error(path, pack_file(raw, b""))
    assert match in str(err) and err.offset is not None and err.offset >= 24


def test_invalid_graph_in_valid_file(path):
    # An attribute Conv does not have: structurally valid file, invalid graph -> FormatError.
    h = _mutate(lambda h: _set(h["graph"]["nodes"][0]["attrs"], "bogus", {"type": "int", "value": 1}))
    err = _expect_format_error(path, pack_file(h, DATA))
    assert "bogus" in str(err)
    # An op this version does not know (a newer writer): UnsupportedOpError names it.
    h = _mutate(lambda h: _set(h["graph"]["nodes"][1], "op_type", "FutureOp"))
    with open(path, "wb") as f:
        f.write(pack_file(h, DATA))
    with pytest.raises(UnsupportedOpError, match="FutureOp"):
        read_q8(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(GOOD))),
    extra=st.binary(max_size=8),
)
def test_hypothesis_random_damage_never_crashes(tmp_path, edits, cut, extra):
    bad = bytearray(GOOD)
    for i, x in edits:
        bad[i] ^= x
    data = bytes(bad[:cut] if cut is not None else bad) + extra
    p = str(tmp_path / "r.q8")
    with open(p, "wb") as f:
        f.write(data)
    try:
        g = read_q8(p, verify_crc=True)
    except FormatError:
        return
    # Only damage confined to gap bytes can load (edits may also cancel out); then every value is intact.
    assert len(data) == len(GOOD)
    changed = [i for i in range(len(GOOD)) if data[i] != GOOD[i]]
    assert all(not _in_tensor(i) and i >= DATA_START for i in changed), changed
    assert_graph_equal(tiny_conv_graph(), g)


@st.composite
def _json_values(draw, depth: int = 0) -> Any:
    leaf = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=6)
    )
    if depth >= 2:
        return draw(leaf)
    return draw(
        st.one_of(
            leaf,
            st.lists(_json_values(depth + 1), max_size=3),
            st.dictionaries(st.text(max_size=6), _json_values(depth + 1), max_size=3),
        )
    )


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = [p for p in _paths(HEADER) if p]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(ALL_PATHS), value=_json_values())
def test_hypothesis_any_field_replaced(tmp_path, where, value):
    """Replace any one header field by any JSON value (valid CRC): FormatError or a valid graph, nothing else."""
    h = copy.deepcopy(HEADER)
    node = h
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    p = str(tmp_path / "f.q8")
    with open(p, "wb") as f:
        f.write(pack_file(h, DATA))
    try:
        g = read_q8(p, verify_crc=True)
    except (FormatError, UnsupportedOpError):
        return
    assert isinstance(g.constants.get("conv1_w", np.zeros(0)), np.ndarray)


def test_multi_chunk_tensor_round_trips_and_flip_is_caught(tmp_path):
    """A tensor above the writer's 16 MiB streaming chunk round-trips; a flip in its tail is caught."""
    from convertmodel.ir import GraphBuilder

    b = GraphBuilder("big")
    x = b.add_input("x", "float32", (1, 3, 2, 2))
    w = (np.arange(1_600_000 * 3, dtype=np.float32) % 7).reshape(1_600_000, 3, 1, 1)  # 19.2 MB
    (y,) = b.add_node("Conv", [x, b.add_const("w", w)], name="c")
    b.mark_output(y)
    g = b.build()
    p = str(tmp_path / "big.q8")
    write_q8(g, p)
    h = read_q8(p, verify_crc=True)
    np.testing.assert_array_equal(h.constants["w"], w)
    with open(p, "r+b") as f:
        f.seek(-1000, 2)
        f.write(b"\x7f")
    with pytest.raises(FormatError, match="checksum mismatch"):
        read_q8(p, verify_crc=True)
