"""Source-format readers. Each format is a subpackage exposing ``read(path, **options) -> Graph``.

Formats are registered here as light descriptors so that detecting a file's format never
imports a heavy library (TensorFlow, onnx) until that format is actually read.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from convertmodel.errors import ConvertModelError, FormatError, ModelIOError
from convertmodel.ir.graph import Graph
from convertmodel.registry import Registry


class ReaderKey(NamedTuple):
    format: str


@dataclass(frozen=True)
class ReaderInfo:
    format: str
    extensions: tuple[str, ...]
    module: str
    sniff: Callable[[str, bytes], bool]
    description: str


READERS: Registry[ReaderKey, ReaderInfo] = Registry("reader")

Q8_MAGIC = b"CMQ8"


def _sniff_q8(path: str, head: bytes) -> bool:
    return head.startswith(Q8_MAGIC)


def _sniff_onnx(path: str, head: bytes) -> bool:
    # A ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
    return len(head) > 2 and head[:1] == b"\x08"


def _sniff_caffe(path: str, head: bytes) -> bool:
    return path.lower().endswith((".caffemodel", ".prototxt", ".prototxt.txt"))


def _register_builtin() -> None:
    READERS.add(
        ReaderKey("q8"),
        ReaderInfo("q8", (".q8",), "convertmodel.serialize", _sniff_q8, "convertmodel's own model file (fp32 or int8)"),
    )
    READERS.add(
        ReaderKey("onnx"),
        ReaderInfo("onnx", (".onnx",), "convertmodel.readers.onnx", _sniff_onnx, "ONNX ModelProto, opsets 7 and newer"),
    )
    READERS.add(
        ReaderKey("caffe"),
        ReaderInfo(
            "caffe",
            (".caffemodel", ".prototxt"),
            "convertmodel.readers.caffe",
            _sniff_caffe,
            "Caffe (BVLC and SSD fork) .caffemodel + .prototxt",
        ),
    )


_register_builtin()


def detect_format(path: str) -> str:
    """The format of ``path``: by magic bytes first, then by extension."""
    if not os.path.exists(path):
        raise ModelIOError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        raise FormatError(path, "is a directory; expected a model file")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read: {e.strerror or e}") from e
    if head.startswith(Q8_MAGIC):
        return "q8"
    low = path.lower()
    for key, info in READERS.items():
        if low.endswith(info.extensions):
            return key.format
    for key, info in READERS.items():
        if info.sniff(path, head):
            return key.format
    known = ", ".join(f"{i.format} ({' '.join(i.extensions)})" for _, i in READERS.items())
    raise FormatError(path, f"unrecognised model format; known formats: {known}")


def read_model(path: str, format: str | None = None, **options: object) -> Graph:
    """Read any supported model file into the IR."""
    fmt = format or detect_format(path)
    info = READERS.get(ReaderKey(fmt))
    if info is None:
        raise ConvertModelError(f"{path}: unknown format {fmt!r}; known: {', '.join(k.format for k in READERS)}")
    mod = importlib.import_module(info.module)
    if fmt == "q8":
        return mod.read_q8(path, **options)  # type: ignore[no-any-return]
    try:
        return mod.read(path, **options)  # type: ignore[no-any-return]
    except FileNotFoundError as e:
        raise ModelIOError(f"{e.filename or path}: no such file") from e
