"""Constants of the ``.q8`` format and the preamble codec (docs/format.md, sections 1-2).

Everything here is pure: no file access, so the writer, the reader and the tests share one
definition of the layout.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

#: The first four bytes of every .q8 file (convertmodel/readers/__init__.py sniffs them too).
Q8_MAGIC = b"CMQ8"
#: The major version this code reads and writes; an unknown major is rejected.
MAJOR = 1
#: The minor version this code writes; any minor of MAJOR is read.
MINOR = 0
#: ``byte_order`` value meaning little-endian, the only one defined.
LITTLE_ENDIAN = 1
#: Every tensor offset and ``data_start`` are multiples of this.
ALIGNMENT = 64
#: Cap on ``header_len``: see docs/format.md "Why the header length is capped at 16 MiB".
MAX_HEADER_LEN = 16 * 1024 * 1024
#: Rank limit of shapes (numpy 2 allows 64; no CNN tensor comes close).
MAX_RANK = 32
#: Integers in the header: 0 <= x < 2**63 (sizes) or -2**63 <= x < 2**63 (int attributes).
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Chunk size of the streaming writer.
CHUNK_BYTES = 16 * 1024 * 1024

# magic(4s) major(H) minor(H) byte_order(B) reserved(3s) header_crc32(I) header_len(Q), little-endian.
PREAMBLE = struct.Struct("<4sHHB3sIQ")
PREAMBLE_SIZE = PREAMBLE.size  # 24
#: Byte offsets of preamble fields, for error messages.
OFF_MAJOR, OFF_MINOR, OFF_BYTE_ORDER, OFF_RESERVED, OFF_CRC, OFF_HEADER_LEN = 4, 6, 8, 9, 12, 16

#: dtype name -> little-endian numpy dtype. Names are the IR's (convertmodel.ir.graph.DTYPES).
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
}

#: Attribute type tags (the values of convertmodel.ir.schema.AttrType).
ATTR_TYPES = ("int", "float", "string", "ints", "floats", "strings", "tensor")


def align(x: int) -> int:
    """``x`` rounded up to a multiple of :data:`ALIGNMENT`."""
    return (x + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def header_crc(preamble_head: bytes, header_len_field: bytes, header: bytes) -> int:
    """CRC-32 of preamble bytes [0, 12), the header_len field (bytes [16, 24)) and the header."""
    return zlib.crc32(header, zlib.crc32(header_len_field, zlib.crc32(preamble_head)))


def pack_preamble(header: bytes, major: int = MAJOR, minor: int = MINOR) -> bytes:
    """The 24-byte preamble of a file whose header is ``header``."""
    head = PREAMBLE.pack(Q8_MAGIC, major, minor, LITTLE_ENDIAN, b"\0\0\0", 0, len(header))
    crc = header_crc(head[:OFF_CRC], head[OFF_HEADER_LEN:], header)
    return PREAMBLE.pack(Q8_MAGIC, major, minor, LITTLE_ENDIAN, b"\0\0\0", crc, len(header))


def encode_float(x: float) -> float | str:
    """A float as JSON: itself when finite (``repr`` is exact for binary64), else a tag string."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


SPECIAL_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
