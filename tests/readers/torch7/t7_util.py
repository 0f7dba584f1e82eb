"""A small Torch7 serializer for tests (binary and ascii), the inverse of convertmodel's parser."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from convertmodel.readers.torch7.t7file import STORAGE_TYPES, T7Tensor, TorchObject

_STORAGE_OF = {np.dtype(v[0]).newbyteorder("=").str: k for k, v in STORAGE_TYPES.items()}


class T7Writer:
    def __init__(self, ascii: bool = False) -> None:
        self.ascii = ascii
        self.out = bytearray()
        self.memo: dict[int, int] = {}

    def _nums(self, vals: list[Any], kind: str) -> None:
        if self.ascii:
            fmt = "%.17g" if kind == "f" else "%d"
            self.out += (" ".join(fmt % v for v in vals) + "\n").encode()
        else:
            code = {"i": "i", "l": "q", "f": "d"}[kind]
            self.out += struct.pack(f"<{len(vals)}{code}", *vals)

    def int(self, v: int) -> None:
        self._nums([v], "i")

    def raw(self, b: bytes) -> None:
        self.out += b
        if self.ascii:
            self.out += b"\n"

    def string(self, s: str) -> None:
        b = s.encode()
        self.int(len(b))
        self.raw(b)

    def obj(self, o: Any) -> None:
        if o is None:
            self.int(0)
        elif isinstance(o, bool):
            self.int(5)
            self.int(1 if o else 0)
        elif isinstance(o, (int, float)):
            self.int(1)
            self._nums([float(o)], "f")
        elif isinstance(o, str):
            self.int(2)
            self.string(o)
        else:
            self.int(3 if isinstance(o, dict) else 4)
            if id(o) in self.memo:
                self.int(self.memo[id(o)])
                return
            self.memo[id(o)] = len(self.memo) + 1
            self.int(self.memo[id(o)])
            if isinstance(o, dict):
                self.int(len(o))
                for k, v in o.items():
                    self.obj(k)
                    self.obj(v)
            elif isinstance(o, TorchObject):
                self.string("V 1")
                self.string(o.cls)
                self.obj(o.fields)
            elif isinstance(o, T7Tensor):
                self.string("V 1")
                self.string(o.cls)
                self.int(len(o.sizes))
                if o.sizes:
                    self._nums(o.sizes, "l")
                    self._nums(o.strides, "l")
                self._nums([o.offset], "l")
                self.obj(o.storage)
            elif isinstance(o, np.ndarray):
                cls = _STORAGE_OF[o.dtype.newbyteorder("=").str]
                self.string("V 1")
                self.string(cls)
                self._nums([o.size], "l")
                if self.ascii and o.dtype.itemsize == 1:
                    self.raw(o.tobytes())
                elif self.ascii:
                    self._nums(o.tolist(), "f" if o.dtype.kind == "f" else "i")
                else:
                    self.out += o.astype(o.dtype.newbyteorder("<")).tobytes()
            else:
                raise TypeError(type(o))


def dumps(o: Any, ascii: bool = False) -> bytes:
    w = T7Writer(ascii)
    w.obj(o)
    return bytes(w.out)


def tensor(a: np.ndarray) -> T7Tensor:
    a = np.ascontiguousarray(a, dtype=np.float32)
    strides = [s // 4 for s in a.strides]
    return T7Tensor("torch.FloatTensor", list(a.shape), strides, 1, a.ravel().copy())


def module(cls: str, **fields: Any) -> TorchObject:
    return TorchObject(cls, dict(fields), 1)


def seq(*mods: TorchObject) -> TorchObject:
    return module("nn.Sequential", modules={i + 1: m for i, m in enumerate(mods)})
