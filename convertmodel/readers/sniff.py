"""Content sniffers of the source formats: ``sniff(path, head) -> bool``, used by :func:`detect_format`.

Each looks at the file's first bytes (``head``; empty for a directory) and only falls back to the
name where the format has no signature (Caffe's text prototxt). They import nothing heavy, so
detecting a format never loads TensorFlow or onnx. A new format adds its sniffer here and names it
in its ``ReaderInfo`` entry (convertmodel/readers/__init__.py).
"""

from __future__ import annotations

from convertmodel.serialize.format import Q8_MAGIC

#: Bytes of a file handed to the sniffers.
HEAD_BYTES = 512

#: ModelProto field tags that can follow ``ir_version`` (wire types of fields 2-8, 14, 20, 21).
_ONNX_NEXT_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xAA})


def q8(path: str, head: bytes) -> bool:
    return head.startswith(Q8_MAGIC)


def onnx(path: str, head: bytes) -> bool:
    """A ModelProto starts with field 1 (ir_version, a small varint: tag 0x08) then another known field."""
    return len(head) > 2 and head[0] == 0x08 and 1 <= head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS


def caffe(path: str, head: bytes) -> bool:
    # A NetParameter has no magic and the deploy net is text: the extension decides.
    return path.lower().endswith((".caffemodel", ".prototxt", ".prototxt.txt"))
