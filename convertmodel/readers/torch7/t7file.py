"""A parser of Torch7's serialization format (``torch.save`` / ``File:writeObject``), binary and ascii.

The stream is a sequence of typed objects: an int type code, then nil (0), a number (1: double),
a string (2: int length + bytes), a table (3), a torch object (4), a boolean (5: int) or a function
(6-8, refused: no code is ever run). Tables, torch objects and functions carry a reference index;
an index seen before refers back to the same object (a memo), which is how shared and cyclic data
are written. A torch object has a version string (``"V 1"``) and a class name, then either its
storage/tensor payload (``torch.FloatStorage``: long n + n values; ``torch.FloatTensor``: int ndim,
long sizes, long strides, long 1-based offset, storage object) or its serialized table.

Binary files are little-endian with 4-byte ints and 8-byte longs (4-byte longs are detected).
Ascii files hold numbers as text separated by whitespace and raw bytes for strings and byte
storages, each write followed by a newline (Torch's ``DiskFile`` auto-spacing).

Every declared length is checked against the bytes left before anything is allocated, nesting
is bounded, and malformed input raises :class:`~convertmodel.errors.FormatError` with the offset.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.errors import FormatError

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
TYPE_FUNCTION, LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8

#: Storage class -> (numpy dtype, is raw bytes in ascii files).
STORAGE_TYPES: dict[str, tuple[str, bool]] = {
    "torch.FloatStorage": ("<f4", False),
    "torch.DoubleStorage": ("<f8", False),
    "torch.HalfStorage": ("<f2", False),
    "torch.ByteStorage": ("u1", True),
    "torch.CharStorage": ("i1", True),
    "torch.ShortStorage": ("<i2", False),
    "torch.IntStorage": ("<i4", False),
    "torch.LongStorage": ("<i8", False),
}
TENSOR_TYPES = {name.replace("Storage", "Tensor"): name for name in STORAGE_TYPES}
MAX_DEPTH = 150
MAX_DIMS = 64
_NUM = re.compile(rb"[-+]?(?:inf|nan|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)", re.IGNORECASE)


@dataclass
class TorchObject:
    """A torch class instance: its class name and serialized table (nn modules)."""

    cls: str
    fields: dict[Any, Any] = field(default_factory=dict)
    version: int = 0


@dataclass
class T7Tensor:
    """A torch tensor: a view into a storage (sizes, strides, 1-based offset)."""

    cls: str
    sizes: list[int]
    strides: list[int]
    offset: int
    storage: np.ndarray | None


class T7Reader:
    def __init__(self, path: str, data: bytes, ascii: bool | None = None, long_size: int = 8) -> None:
        self.path = path
        self.data = data
        self.pos = 0
        self.ascii = self._is_ascii(data) if ascii is None else ascii
        self.long_size = long_size
        self.memo: dict[int, Any] = {}

    @staticmethod
    def _is_ascii(data: bytes) -> bool:
        head = data[:16]
        return bool(head) and head[:1] in b"0123456789" and b"\n" in head

    # -- primitives -------------------------------------------------------------------------
    def fail(self, msg: str, at: int | None = None) -> FormatError:
        return FormatError(self.path, msg, self.pos if at is None else at)

    def left(self) -> int:
        return len(self.data) - self.pos

    def _need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left():
            raise self.fail(f"{what}: declares {n} bytes but only {self.left()} are left (truncated or corrupt)")

    def _end_write(self) -> None:
        if self.ascii and self.pos < len(self.data) and self.data[self.pos : self.pos + 1] == b"\n":
            self.pos += 1

    def _token(self, what: str) -> bytes:
        d = self.data
        while self.pos < len(d) and d[self.pos : self.pos + 1].isspace():
            self.pos += 1
        m = _NUM.match(d, self.pos)
        if m is None or not m.group(0):
            raise self.fail(f"expected a number ({what})")
        self.pos = m.end()
        return m.group(0)

    def _numbers(self, n: int, kind: str, what: str) -> list[Any]:
        if self.ascii:
            if n > self.left():
                raise self.fail(f"{what}: declares {n} values but only {self.left()} bytes are left")
            conv = float if kind == "f" else int
            try:
                vals = [conv(self._token(what)) for _ in range(n)]
            except ValueError as e:
                raise self.fail(f"bad number in {what}: {e}") from None
            self._end_write()
            return vals
        size = {"i": 4, "l": self.long_size, "f": 8}[kind]
        self._need(n * size, what)
        code = {"i": "i", "l": "q" if self.long_size == 8 else "i", "f": "d"}[kind]
        vals = list(struct.unpack_from(f"<{n}{code}", self.data, self.pos))
        self.pos += n * size
        return vals

    def read_int(self, what: str = "int") -> int:
        return int(self._numbers(1, "i", what)[0])

    def read_long(self, what: str = "long") -> int:
        return int(self._numbers(1, "l", what)[0])

    def read_double(self, what: str = "number") -> float:
        return float(self._numbers(1, "f", what)[0])

    def read_bytes(self, n: int, what: str) -> bytes:
        self._need(n, what)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        self._end_write()
        return out

    def read_string(self, what: str = "string") -> str:
        n = self.read_int(f"{what} length")
        return self.read_bytes(n, what).decode("utf-8", "replace")

    # -- objects ----------------------------------------------------------------------------
    def read_object(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"objects nested deeper than {MAX_DEPTH}")
        start = self.pos
        t = self.read_int("type code")
        if t == TYPE_NIL:
            return None
        if t == TYPE_NUMBER:
            return self.read_double()
        if t == TYPE_BOOLEAN:
            return self.read_int("boolean") == 1
        if t == TYPE_STRING:
            return self.read_string()
        if t not in (TYPE_TABLE, TYPE_TORCH, TYPE_FUNCTION, LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION):
            raise self.fail(f"unknown object type code {t}", start)
        index = self.read_int("reference index")
        if index in self.memo:
            return self.memo[index]
        if t in (TYPE_FUNCTION, LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION):
            raise self.fail("the file holds a Lua function; convertmodel never loads code", start)
        if t == TYPE_TABLE:
            size = self.read_int("table size")
            if size < 0 or size * (8 if not self.ascii else 4) > self.left():
                raise self.fail(f"table declares {size} entries but only {self.left()} bytes are left")
            table: dict[Any, Any] = {}
            self.memo[index] = table
            for _ in range(size):
                k = self.read_object(depth + 1)
                v = self.read_object(depth + 1)
                if isinstance(k, float) and k.is_integer():
                    k = int(k)  # Lua numbers are doubles: array keys 1.0, 2.0 ... become ints
                elif not isinstance(k, (str, int, float, bool)) and k is not None:
                    k = id(k)  # a table or object as key: keep the entry, keyed by identity
                table[k] = v
            return table
        return self._read_torch(index, depth)

    def _read_torch(self, index: int, depth: int) -> Any:
        version_s = self.read_string("class version")
        if version_s.startswith("V "):
            try:
                version = int(version_s[2:])
            except ValueError:
                raise self.fail(f"bad class version {version_s!r}") from None
            cls = self.read_string("class name")
        else:
            version, cls = 0, version_s  # files written before versioning: the name comes first
        if cls in STORAGE_TYPES:
            arr = self._read_storage(cls)
            self.memo[index] = arr
            return arr
        if cls in TENSOR_TYPES:
            t = self._read_tensor(cls, depth)
            self.memo[index] = t
            return t
        obj = TorchObject(cls, {}, version)
        self.memo[index] = obj
        content = self.read_object(depth + 1)
        if isinstance(content, dict):
            obj.fields = content
        elif content is not None:
            obj.fields = {"_value": content}
        return obj

    def _read_storage(self, cls: str) -> np.ndarray:
        dtype, raw = STORAGE_TYPES[cls]
        n = self.read_long(f"{cls} size")
        item = np.dtype(dtype).itemsize
        if n < 0 or (n * (1 if self.ascii else item)) > self.left():
            raise self.fail(f"{cls} declares {n} elements but only {self.left()} bytes are left")
        if not self.ascii:
            arr = np.frombuffer(self.data, dtype, n, self.pos).copy()
            self.pos += n * item
            return arr
        if raw:
            return np.frombuffer(self.read_bytes(n, cls), dtype).copy()
        vals = self._numbers(n, "f" if dtype[-2] == "f" else "i", cls)
        return np.asarray(vals, dtype=dtype)

    def _read_tensor(self, cls: str, depth: int) -> T7Tensor:
        ndim = self.read_int(f"{cls} dimension count")
        if not 0 <= ndim <= MAX_DIMS:
            raise self.fail(f"{cls} declares {ndim} dimensions")
        sizes = [int(v) for v in self._numbers(ndim, "l", f"{cls} sizes")] if ndim else []
        strides = [int(v) for v in self._numbers(ndim, "l", f"{cls} strides")] if ndim else []
        offset = self.read_long(f"{cls} storage offset")
        st = self.read_object(depth + 1)
        if st is not None and not isinstance(st, np.ndarray):
            raise self.fail(f"{cls} refers to a {type(st).__name__}, not a storage")
        return T7Tensor(cls, sizes, strides, offset, st)


def parse(path: str, data: bytes) -> Any:
    """The top object of a .t7 file. Binary files with 4-byte longs are retried when 8 fails."""
    r = T7Reader(path, data)
    if r.ascii:
        return r.read_object()
    try:
        return r.read_object()
    except FormatError as first:
        # Old Torch builds wrote 4-byte longs; accept that reading only when it explains every byte.
        r4 = T7Reader(path, data, ascii=False, long_size=4)
        try:
            obj = r4.read_object()
        except FormatError:
            raise first from None
        if r4.pos != len(data):
            raise first from None
        return obj
