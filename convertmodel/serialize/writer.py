"""Write a graph as a ``.q8`` file: deterministic, atomic, streaming (docs/format.md, section 7)."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from convertmodel.errors import FormatError, InvalidModelError
from convertmodel.fsutil import atomic_open
from convertmodel.ir.graph import AttrValue, Graph, ValueInfo
from convertmodel.serialize.format import (
    CHUNK_BYTES,
    DTYPES,
    INT64_MAX,
    INT64_MIN,
    MAX_HEADER_LEN,
    PREAMBLE_SIZE,
    align,
    encode_float,
    pack_preamble,
)
from convertmodel.serialize.header import decode_header

_CRC_PLACEHOLDER = "00000000"


class _Plan:
    """The header (with placeholder CRCs) and the arrays to write, in file order."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.arrays: list[np.ndarray] = []
        self.names: set[str] = set()
        self.end = 0  # end of the last tensor, relative to data_start

    def add(self, name: str, arr: np.ndarray, what: str) -> None:
        dtype = arr.dtype.name if isinstance(arr, np.ndarray) else ""
        if dtype not in DTYPES:
            raise InvalidModelError(
                f"{what}: dtype {dtype or type(arr).__name__!r} cannot be stored in .q8; supported: {', '.join(DTYPES)}"
            )
        offset = align(self.end)
        nbytes = int(arr.nbytes)
        self.entries.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": [int(d) for d in arr.shape],
                "offset": offset,
                "nbytes": nbytes,
                "crc32": _CRC_PLACEHOLDER,
            }
        )
        self.arrays.append(arr)
        self.names.add(name)
        self.end = offset + nbytes


def _encode_attr(value: AttrValue, where: str, tensor_name: str | None) -> dict[str, Any]:
    def int_(x: int) -> int:
        if not INT64_MIN <= x <= INT64_MAX:
            raise InvalidModelError(f"{where}: int {x} does not fit in int64")
        return int(x)

    if isinstance(value, np.ndarray):
        return {"type": "tensor", "tensor": tensor_name}
    if isinstance(value, bool):  # the IR stores booleans as int; be exact if one slips through
        return {"type": "int", "value": int(value)}
    if isinstance(value, int):
        return {"type": "int", "value": int_(value)}
    if isinstance(value, float):
        return {"type": "float", "value": encode_float(value)}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, tuple):
        if all(isinstance(x, int) and not isinstance(x, bool) for x in value):  # incl. the empty tuple
            return {"type": "ints", "value": [int_(x) for x in value]}  # type: ignore[arg-type]
        if all(isinstance(x, float) for x in value):
            return {"type": "floats", "value": [encode_float(x) for x in value]}  # type: ignore[arg-type]
        if all(isinstance(x, str) for x in value):
            return {"type": "strings", "value": list(value)}
    raise InvalidModelError(f"{where}: value {value!r} of type {type(value).__name__} cannot be stored in .q8")


def _value_info(vi: ValueInfo) -> dict[str, Any]:
    shape = None if vi.type.shape is None else [d if d is None or isinstance(d, str) else int(d) for d in vi.type.shape]
    return {"name": vi.name, "dtype": vi.type.dtype, "shape": shape}


def build_header(graph: Graph) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The header dict (CRCs still placeholders) and the arrays in data order (docs/format.md section 4)."""
    plan = _Plan()
    consts = {k: v for k, v in graph.constants.items()}
    placed: set[str] = set()
    nodes = []
    # (table name, array, description, the encoded attrs dict holding the reference, attr name)
    attr_tensors: list[tuple[str, np.ndarray, str, dict[str, Any], str]] = []
    for n in graph.nodes:
        for v in n.inputs:
            if v in consts and v not in placed:
                plan.add(v, consts[v], f"constant {v!r}")
                placed.add(v)
        attrs: dict[str, Any] = {}
        for k in sorted(n.attrs):
            value = n.attrs[k]
            where = f"{n.op_type} {n.name!r} attribute {k!r}"
            attrs[k] = _encode_attr(value, where, None)
            if isinstance(value, np.ndarray):
                attr_tensors.append((f"{n.name}/{k}", value, where, attrs, k))
        nodes.append(
            {
                "name": n.name,
                "op_type": n.op_type,
                "domain": n.domain,
                "inputs": list(n.inputs),
                "outputs": list(n.outputs),
                "attrs": attrs,
            }
        )
    # Tensor attributes follow the constants the nodes use, in node order (docs/format.md section 4).
    taken = set(consts)
    for tname, arr, where, attrs, k in attr_tensors:
        final, suffix = tname, 0
        while final in taken:
            final, suffix = f"{tname}#{suffix}", suffix + 1
        taken.add(final)
        attrs[k]["tensor"] = final
        plan.add(final, arr, where)
    for v in sorted(set(consts) - placed):
        plan.add(v, consts[v], f"constant {v!r}")
    for k, v in graph.metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidModelError(f"graph {graph.name!r}: metadata {k!r}: {v!r} is not str -> str")
    header = {
        "data_size": align(plan.end),
        "graph": {
            "name": graph.name,
            "inputs": [_value_info(v) for v in graph.inputs],
            "outputs": [_value_info(v) for v in graph.outputs],
            "constants": sorted(consts),
            "nodes": nodes,
        },
        "metadata": dict(graph.metadata),
        "tensors": plan.entries,
    }
    return header, plan.arrays


def encode_header(header: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, ASCII, no NaN literals (docs/format.md section 3)."""
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _chunks(a: np.ndarray) -> Iterator[np.ndarray]:
    """C-order, little-endian, contiguous pieces of ``a`` of at most CHUNK_BYTES (one row at least)."""
    le = DTYPES[a.dtype.name]
    if a.ndim == 0:
        yield np.ascontiguousarray(a.reshape(1), dtype=le)
    elif a.ndim == 1 or a.nbytes <= CHUNK_BYTES:
        if a.nbytes <= CHUNK_BYTES:
            yield np.ascontiguousarray(a, dtype=le)
        else:
            step = max(1, CHUNK_BYTES // a.itemsize)
            for i in range(0, a.shape[0], step):
                yield np.ascontiguousarray(a[i : i + step], dtype=le)
    else:
        row = a[0].nbytes
        rows = max(1, CHUNK_BYTES // max(row, 1))
        for i in range(0, a.shape[0], rows):
            block = a[i : i + rows]
            if block.nbytes <= CHUNK_BYTES:
                yield np.ascontiguousarray(block, dtype=le)
            else:  # a single row above the chunk size: split it further
                for r in block:
                    yield from _chunks(r)


def _write_tensors(f: IO[bytes], header: dict[str, Any], arrays: list[np.ndarray], data_start: int) -> None:
    pos = data_start
    for entry, arr in zip(header["tensors"], arrays, strict=True):
        start = data_start + entry["offset"]
        if start > pos:
            f.write(b"\0" * (start - pos))
        crc = 0
        for chunk in _chunks(arr):
            if not chunk.size:
                continue
            buf = chunk.reshape(-1).view(np.uint8).data  # contiguous: a view, no copy
            crc = zlib.crc32(buf, crc)
            f.write(buf)
        pos = start + entry["nbytes"]
        entry["crc32"] = f"{crc:08x}"
    end = data_start + header["data_size"]
    if end > pos:
        f.write(b"\0" * (end - pos))


def write_q8(graph: Graph, path: str) -> None:
    """Write ``graph`` to ``path`` as a .q8 file (docs/format.md).

    Same graph, same bytes. The file appears atomically: it is written to a temporary file in
    the same directory, fsynced and renamed over ``path``; on failure nothing is left behind and
    an existing ``path`` is untouched. Raises :class:`InvalidModelError` for a graph the format
    cannot hold, :class:`ModelIOError` when the file cannot be written.
    """
    path = os.fspath(path)
    header, arrays = build_header(graph)
    encoded = encode_header(header)
    # Run the reader's own validation on what we are about to write: never write a file we reject.
    try:
        from convertmodel.serialize.header import parse_header

        decode_header(parse_header(encoded, path), path)
    except FormatError as e:
        raise InvalidModelError(f"{path}: cannot write graph {graph.name!r}: {e}") from None
    if len(encoded) > MAX_HEADER_LEN:
        raise InvalidModelError(
            f"{path}: header of graph {graph.name!r} is {len(encoded)} bytes, "
            f"above the format's cap of {MAX_HEADER_LEN}"
        )
    data_start = align(PREAMBLE_SIZE + len(encoded))
    # Temp file .NAME.cm-tmp-PID beside path, fsync, rename; removed on any error or SIGTERM, and a
    # stale one left by a killed run is removed by the next write (convertmodel.fsutil).
    with atomic_open(path, "wb", what=".q8 model") as f:
        f.write(pack_preamble(encoded))
        f.write(encoded)
        f.write(b"\0" * (data_start - PREAMBLE_SIZE - len(encoded)))
        _write_tensors(f, header, arrays, data_start)
        final = encode_header(header)  # now with the real CRCs; same length by construction
        if len(final) != len(encoded):
            raise InvalidModelError(
                f"{path}: internal error: header length changed from {len(encoded)} "
                f"to {len(final)} after the CRCs were filled in"
            )
        f.seek(0)
        f.write(pack_preamble(final))
        f.write(final)
