"""Read a ``.q8`` file: validate every byte before trusting it, map tensors zero-copy (docs/format.md)."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from convertmodel.errors import FormatError, InvalidModelError, ModelIOError
from convertmodel.fsutil import check_regular_file
from convertmodel.ir.graph import AttrValue, Graph, Node
from convertmodel.serialize.format import (
    DTYPES,
    LITTLE_ENDIAN,
    MAJOR,
    MAX_HEADER_LEN,
    OFF_BYTE_ORDER,
    OFF_CRC,
    OFF_HEADER_LEN,
    OFF_MAJOR,
    OFF_RESERVED,
    PREAMBLE,
    PREAMBLE_SIZE,
    Q8_MAGIC,
    align,
    header_crc,
)
from convertmodel.serialize.header import DecodedHeader, TensorRef, decode_header, parse_header


@dataclass(frozen=True)
class Q8Layout:
    """Where things are in a validated file (absolute byte offsets)."""

    path: str
    major: int
    minor: int
    header_len: int
    data_start: int
    file_size: int
    #: The parsed header JSON object (unknown keys included, as found).
    header: dict[str, Any]
    decoded: DecodedHeader


def read_layout(path: str) -> Q8Layout:
    """Read and validate the preamble and header (not the tensor data)."""
    return _read_layout(os.fspath(path), only_q8=False)


@overload
def _read_layout(path: str, only_q8: Literal[False]) -> Q8Layout: ...
@overload
def _read_layout(path: str, only_q8: bool) -> Q8Layout | None: ...
def _read_layout(path: str, only_q8: bool) -> Q8Layout | None:
    """:func:`read_layout`; with ``only_q8``, None for a file that does not start with the .q8 magic."""
    check_regular_file(path, "a .q8 file")  # a FIFO or device could block or never end
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pre = f.read(PREAMBLE_SIZE)
            if only_q8 and pre[: len(Q8_MAGIC)] != Q8_MAGIC:
                return None
            if len(pre) < PREAMBLE_SIZE:
                if not Q8_MAGIC.startswith(pre[:4]) or len(pre) == 0:
                    raise FormatError(path, f"not a .q8 file: {len(pre)} bytes, no {Q8_MAGIC!r} magic", 0)
                raise FormatError(
                    path, f"truncated: {len(pre)} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble", len(pre)
                )
            magic, major, minor, byte_order, reserved, crc, header_len = PREAMBLE.unpack(pre)
            _check_preamble(path, magic, major, byte_order, reserved, header_len, size)
            header = f.read(header_len)
            if len(header) != header_len:  # the file shrank under us
                raise FormatError(
                    path,
                    f"truncated header: expected {header_len} bytes, read {len(header)}",
                    PREAMBLE_SIZE + len(header),
                )
            actual = header_crc(pre[:OFF_CRC], pre[OFF_HEADER_LEN:], header)
            if actual != crc:
                raise FormatError(
                    path,
                    f"header checksum mismatch: stored crc32 {crc:08x}, computed {actual:08x} "
                    "(the preamble or header is corrupt)",
                    OFF_CRC,
                )
            data_start = align(PREAMBLE_SIZE + header_len)
            padding = f.read(data_start - PREAMBLE_SIZE - header_len)
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read: {e.strerror or e}") from e
    raw = parse_header(header, path)
    decoded = decode_header(raw, path)
    pad_start = PREAMBLE_SIZE + header_len
    if padding.strip(b"\0"):
        bad = pad_start + next(i for i, b in enumerate(padding) if b)
        raise FormatError(path, "header padding must be zero bytes", bad)
    if data_start + decoded.data_size != size:
        raise FormatError(
            path,
            f"file is {size} bytes; the header says {data_start + decoded.data_size} "
            f"(data section of {decoded.data_size} bytes at {data_start}): "
            f"{'truncated' if size < data_start + decoded.data_size else 'trailing bytes'}",
            min(size, data_start + decoded.data_size),
        )
    return Q8Layout(path, major, minor, header_len, data_start, size, raw, decoded)


def _check_preamble(
    path: str, magic: bytes, major: int, byte_order: int, reserved: bytes, header_len: int, size: int
) -> None:
    if magic != Q8_MAGIC:
        raise FormatError(path, f"not a .q8 file: magic {magic!r}, expected {Q8_MAGIC!r}", 0)
    if major != MAJOR:
        raise FormatError(
            path,
            f"unsupported .q8 major version {major}; this convertmodel reads major {MAJOR} "
            "(a newer convertmodel may read it)",
            OFF_MAJOR,
        )
    if byte_order != LITTLE_ENDIAN:
        raise FormatError(
            path, f"byte-order flag is {byte_order}, expected {LITTLE_ENDIAN} (little-endian)", OFF_BYTE_ORDER
        )
    if reserved != b"\0\0\0":
        raise FormatError(path, f"reserved bytes must be zero, found {reserved.hex()}", OFF_RESERVED)
    if header_len == 0 or header_len > MAX_HEADER_LEN:
        raise FormatError(path, f"header length {header_len} is outside 1..{MAX_HEADER_LEN}", OFF_HEADER_LEN)
    if PREAMBLE_SIZE + header_len > size:
        raise FormatError(
            path, f"header of {header_len} bytes runs past the end of the {size}-byte file (truncated?)", OFF_HEADER_LEN
        )


def read_header(path: str) -> dict[str, Any]:
    """The parsed, validated header of a .q8 file, without mapping any tensor.

    For size breakdowns (``inspect``): ``header["tensors"]`` lists name, dtype, shape, offset,
    nbytes and crc32 of every tensor; ``header["graph"]`` the nodes; ``header["metadata"]``
    the metadata. Raises :class:`FormatError` for anything invalid, :class:`ModelIOError` when
    the file cannot be read.
    """
    return read_layout(path).header


def read_q8(path: str, *, verify_crc: bool = False) -> Graph:
    """Load a .q8 file into a :class:`Graph`; constants are read-only views of a memory map.

    ``verify_crc=True`` also checks each tensor's CRC-32 (reads every page of the file).
    Raises :class:`FormatError` (with the byte offset) for anything invalid,
    :class:`UnsupportedOpError` for ops this version does not know, :class:`ModelIOError` when
    the file cannot be read.
    """
    layout = read_layout(path)
    path = layout.path
    d = layout.decoded
    arrays = _map_tensors(layout, verify_crc)

    def attr(v: AttrValue | TensorRef) -> AttrValue:
        return arrays[v.name] if isinstance(v, TensorRef) else v

    nodes = [
        Node(n.op_type, n.name, n.inputs, n.outputs, {k: attr(v) for k, v in n.attrs.items()}, n.domain)
        for n in d.nodes
    ]
    constants = {name: arrays[name] for name in d.constants}
    g = Graph(d.name, tuple(d.inputs), tuple(d.outputs), tuple(nodes), constants, metadata=d.metadata)
    # replace() = toposort (linear: order was checked) + type inference, which resolves every node's
    # schema and attributes. With the header checks (unique definitions, defined before use, unique
    # node names) that is everything check_graph verifies, so it is not run a second time here.
    try:
        g = g.replace()
    except InvalidModelError as e:
        raise FormatError(path, f"the graph stored in the file is invalid: {e}", PREAMBLE_SIZE) from e
    return g


def _check_crc(layout: Q8Layout, name: str, raw: np.ndarray, start: int) -> None:
    t = layout.decoded.tensors[name]
    crc = zlib.crc32(raw.data)
    if crc != t.crc32:
        raise FormatError(
            layout.path,
            f"tensor {name!r} ({t.dtype}{list(t.shape)}) checksum mismatch: "
            f"stored crc32 {t.crc32:08x}, computed {crc:08x}: the tensor data is corrupt",
            start,
        )


def check_crcs(path: str) -> int:
    """Check the CRC-32 of every tensor in a .q8 file (used or not); returns how many were checked.

    FormatError (exit 5) naming the first tensor whose bytes do not match its stored checksum.
    The header's own checksum is checked by :func:`read_layout` as always.
    """
    return _check_all_crcs(read_layout(path))


def check_crcs_if_q8(path: str) -> int | None:
    """:func:`check_crcs` when ``path`` is a .q8 file (by its magic bytes), else None (nothing to check):
    the magic is the first bytes of the one preamble read, not a separate open."""
    if not os.path.isfile(path):
        return None  # a directory (SavedModel) or missing: the reader reports it
    layout = _read_layout(os.fspath(path), only_q8=True)
    return None if layout is None else _check_all_crcs(layout)


def _check_all_crcs(layout: Q8Layout) -> int:
    tensors = layout.decoded.tensors
    if not tensors:
        return 0
    try:
        mm: np.ndarray = np.memmap(layout.path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise ModelIOError(f"{layout.path}: cannot map: {e}") from e
    for name in sorted(tensors, key=lambda n: tensors[n].offset):
        start = layout.data_start + tensors[name].offset
        _check_crc(layout, name, mm[start : start + tensors[name].nbytes], start)
    return len(tensors)


def _map_tensors(layout: Q8Layout, verify_crc: bool) -> dict[str, np.ndarray]:
    d = layout.decoded
    needed = set(d.constants) | {a.name for n in d.nodes for a in n.attrs.values() if isinstance(a, TensorRef)}
    if not needed:
        return {}
    try:
        mm: np.ndarray = np.memmap(layout.path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise ModelIOError(f"{layout.path}: cannot map: {e}") from e
    if mm.shape[0] != layout.file_size:
        raise FormatError(layout.path, f"file changed size while reading: {layout.file_size} -> {mm.shape[0]}")
    out: dict[str, np.ndarray] = {}
    for name in sorted(needed, key=lambda n: d.tensors[n].offset):
        t = d.tensors[name]
        start = layout.data_start + t.offset
        raw = mm[start : start + t.nbytes]
        if verify_crc:
            _check_crc(layout, name, raw, start)
        out[name] = raw.view(DTYPES[t.dtype]).reshape(t.shape)
    return out
