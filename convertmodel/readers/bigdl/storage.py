"""BigDL tensors and storages: parse the model file, find the data, resolve tensor views.

A BigDL file's layer tensors carry only size, stride, 1-based offset, tensor id and ``storage.id``.
The data lives once per storage: in the top module's ``attr["global_storage"]`` (single-file
``saveModule``/``saveModel``; a ``NameAttrList`` mapping tensor ids to tensors with full storages),
or in a separate ``.weights`` file (definition + weights): a big-endian Java ``DataOutputStream``
of ``int 3721, int count``, per storage ``int id, int type, int n, n values``, then
``int digest_len`` and the MD5 of everything before it (BigDL's ``ModuleLoader.initTensorStorage``).

Every declared count and extent is checked against the bytes that are actually there before
anything is allocated, so a hostile file fails with a :class:`FormatError` / :class:`InvalidModelError`
and never asks for more memory than its own size.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.errors import FormatError, InvalidModelError
from convertmodel.readers.bigdl.proto import pb
from convertmodel.readers.torchnn.tensors import MAX_ELEMENTS, view

#: SerConst.MAGIC_NO of the .weights stream.
WEIGHTS_MAGIC = 3721
#: BigDLDataType (Types.scala) of the .weights stream -> (numpy big-endian dtype, item size).
_STREAM_TYPES: dict[int, tuple[str, int]] = {0: (">f4", 4), 1: (">f8", 8), 5: (">i4", 4), 6: (">i2", 2), 7: (">i8", 8)}
_STREAM_BYTE = 9  # BigDLDataType.BYTE: raw int8 (the codes of a quantized tensor)
_STREAM_BOOL = 3


@dataclass(frozen=True)
class QuantTensor:
    """A BigDL ``QuantizedTensor``: int8 codes (rows, cols) and per-row max, min, sum of the fp32 row."""

    codes: np.ndarray  # int8 (rows, cols)
    max: np.ndarray  # float32 (rows,)
    min: np.ndarray
    sum: np.ndarray
    sizes: tuple[int, ...]
    params: tuple[int, ...]  # the DescParams array (ConvWeightParams: out, in, kh, kw, format)
    desc_type: int  # 0 ConvData, 1 ConvWeight, 2 LinearData, 3 LinearWeight


def parse_module(path: str, data: bytes) -> Any:
    """The top ``BigDLModule`` message of a BigDL protobuf file."""
    from google.protobuf.message import DecodeError

    m = pb.BigDLModule()
    try:
        m.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as e:
        raise FormatError(path, f"not a valid BigDL protobuf model (truncated or corrupt): {e}") from None
    if not m.moduleType:
        raise FormatError(path, "not a BigDL model: the top module has no moduleType")
    return m


def read_weights_stream(path: str, data: bytes) -> dict[int, np.ndarray]:
    """Storages of a ``.weights`` file: storage id -> numpy array (native byte order)."""
    n_all = len(data)
    pos = 0

    def need(k: int, what: str) -> None:
        if k < 0 or pos + k > n_all:
            raise FormatError(path, f"{what}: needs {k} bytes but only {n_all - pos} are left", pos)

    def read_int(what: str) -> int:
        nonlocal pos
        need(4, what)
        (v,) = struct.unpack_from(">i", data, pos)
        pos += 4
        return int(v)

    magic = read_int("magic number")
    if magic != WEIGHTS_MAGIC:
        raise FormatError(path, f"not a BigDL .weights file: magic {magic}, expected {WEIGHTS_MAGIC}", 0)
    count = read_int("storage count")
    # Each storage takes at least 12 bytes of header: a count larger than that is a lie.
    if count < 0 or count * 12 > n_all - pos:
        raise FormatError(path, f"declares {count} storages but the file has room for at most {(n_all - pos) // 12}", 4)
    out: dict[int, np.ndarray] = {}
    for k in range(count):
        start = pos
        sid = read_int(f"storage {k} id")
        dtype = read_int(f"storage {k} type")
        n = read_int(f"storage {k} length")
        if n < 0:
            raise FormatError(path, f"storage {sid}: negative length {n}", start + 8)
        if dtype == _STREAM_BYTE or dtype == _STREAM_BOOL:
            need(n, f"storage {sid} ({n} bytes)")
            arr = np.frombuffer(data, np.int8 if dtype == _STREAM_BYTE else np.bool_, n, pos)
            pos += n
        elif dtype in _STREAM_TYPES:
            code, size = _STREAM_TYPES[dtype]
            need(n * size, f"storage {sid} ({n} values of {size} bytes)")
            arr = np.frombuffer(data, code, n, pos).astype(np.dtype(code).newbyteorder("="))
            pos += n * size
        else:
            raise FormatError(path, f"storage {sid}: unsupported data type code {dtype}", start + 4)
        if sid in out:
            raise FormatError(path, f"storage id {sid} appears twice", start)
        out[sid] = arr
    body_end = pos
    dlen = read_int("digest length")
    need(dlen, "MD5 digest")
    digest = data[pos : pos + dlen]
    pos += dlen
    if dlen != 16 or hashlib.md5(data[:body_end]).digest() != digest:
        raise FormatError(path, "MD5 checksum mismatch: the weights file is corrupt or was changed", body_end)
    return out


def _storage_array(st: Any) -> np.ndarray | None:
    """The data of a protobuf TensorStorage as a numpy array (None when it carries no data)."""
    dt = st.datatype
    D = pb.DataType
    if dt == D.FLOAT and len(st.float_data):
        return np.asarray(st.float_data, dtype=np.float32)
    if dt == D.DOUBLE and len(st.double_data):
        return np.asarray(st.double_data, dtype=np.float64)
    if dt in (D.INT32, D.SHORT, D.CHAR) and len(st.int_data):
        return np.asarray(st.int_data, dtype=np.int32)
    if dt == D.INT64 and len(st.long_data):
        return np.asarray(st.long_data, dtype=np.int64)
    if dt == D.BOOL and len(st.bool_data):
        return np.asarray(st.bool_data, dtype=np.bool_)
    return None


class Storages:
    """Storage id -> data, from global_storage or a .weights stream; resolves tensor views."""

    def __init__(self, path: str, top: Any, weights: dict[int, np.ndarray] | None) -> None:
        self.path = path
        self.stream = weights
        self.proto: dict[int, Any] = {}  # storage id -> TensorStorage message with data
        self._arrays: dict[int, np.ndarray | None] = {}  # storage id -> its data, decoded once
        g = top.attr.get("global_storage") if "global_storage" in top.attr else None
        if g is not None:
            for _tid, av in g.nameAttrListValue.attr.items():
                st = av.tensorValue.storage
                if st.id not in self.proto:
                    self.proto[st.id] = st

    def _fail(self, where: str, msg: str) -> InvalidModelError:
        return InvalidModelError(f"{self.path}: {where}: {msg}")

    def _proto_storage(self, t: Any) -> Any:
        st = t.storage
        if len(st.float_data) or len(st.double_data) or len(st.bytes_data):
            return st  # data stored inline (tensors inside attributes of some writers)
        return self.proto.get(st.id)

    def tensor(self, t: Any, where: str) -> np.ndarray | QuantTensor | None:
        """The tensor a BigDLTensor message denotes (None for an empty/absent one)."""
        if t is None or not t.HasField("storage"):
            return None
        if t.tensorType == pb.TensorType.QUANT:
            return self._quant(t, where)
        sizes = [int(s) for s in t.size]
        sid = int(t.storage.id)
        data: np.ndarray | None
        if self.stream is not None and sid in self.stream:
            data = self.stream[sid]
        else:
            st = self._proto_storage(t)
            inline = st is not None and st is not self.proto.get(sid)
            if inline or sid not in self._arrays:
                data = None if st is None else _storage_array(st)
                if not inline:
                    self._arrays[sid] = data
            else:
                data = self._arrays[sid]
        if data is None:
            if not sizes or sid == -1 or any(s == 0 for s in sizes):
                if t.isScalar:
                    raise self._fail(where, f"scalar tensor's storage {sid} has no data")
                return np.zeros(sizes if sizes else (0,), np.float32)
            src = "the .weights file" if self.stream is not None else "global_storage"
            raise self._fail(where, f"tensor {t.id} refers to storage {sid}, which {src} does not hold")
        return view(self.path, where, data, sizes, [int(s) for s in t.stride], int(t.offset), bool(t.isScalar))

    def _quant(self, t: Any, where: str) -> QuantTensor:
        st = self._proto_storage(t)
        if st is None:
            raise self._fail(where, f"quantized tensor {t.id}: storage {t.storage.id} not found in global_storage")
        sid = int(t.storage.id)
        if self.stream is not None and sid in self.stream:
            raw = self.stream[sid].view(np.int8)
        elif len(st.bytes_data) == 1:
            raw = np.frombuffer(st.bytes_data[0], np.int8)
        else:
            raise self._fail(where, f"quantized tensor {t.id}: expected 1 byte string, found {len(st.bytes_data)}")
        sizes = tuple(int(s) for s in t.size)
        if not sizes or any(s <= 0 for s in sizes):
            raise self._fail(where, f"quantized tensor {t.id}: bad size {list(sizes)}")
        n = 1
        for s in sizes:
            n *= s
            if n > MAX_ELEMENTS:
                raise self._fail(where, f"quantized tensor {t.id}: size {list(sizes)} overflows")
        if raw.size != n:
            raise self._fail(where, f"quantized tensor {t.id}: {raw.size} int8 codes for size {list(sizes)} ({n})")
        rows = 1 if len(sizes) == 1 else sizes[0]
        fl = np.asarray(st.float_data, np.float32)
        if fl.size != 3 * rows:
            raise self._fail(where, f"quantized tensor {t.id}: {fl.size} max/min/sum floats for {rows} rows")
        ints = [int(v) for v in st.int_data]
        if not ints or ints[0] < 0 or len(ints) != ints[0] + 2:
            raise self._fail(where, f"quantized tensor {t.id}: bad descriptor {ints[:12]}")
        return QuantTensor(
            raw.reshape(rows, n // rows),
            fl[:rows],
            fl[rows : 2 * rows],
            fl[2 * rows :],
            sizes,
            tuple(ints[1 : 1 + ints[0]]),
            ints[-1],
        )
