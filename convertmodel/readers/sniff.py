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
    """A ModelProto starts with field 1 (ir_version, a small varint: tag 0x08) then another known field.

    ir_version is 3 or more for every opset the reader takes (7+); a TensorFlow SavedModel proto
    starts with the same tag and its schema version 1 (08 01 12 ...), so 1 and 2 are not ONNX.
    """
    return len(head) > 2 and head[0] == 0x08 and 3 <= head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS


def caffe(path: str, head: bytes) -> bool:
    # A NetParameter has no magic and the deploy net is text: the extension decides.
    return path.lower().endswith((".caffemodel", ".prototxt", ".prototxt.txt"))


def tensorflow(path: str, head: bytes) -> bool:
    """A frozen GraphDef (binary: field 1 ``node`` whose NodeDef starts with its name; or text
    format), or a SavedModel's saved_model.pb (schema version 1: 08 01 12)."""
    if head[:3] == b"\x08\x01\x12":
        return path.lower().endswith(".pb")
    if len(head) > 3 and head[0] == 0x0A:
        i = 1
        while i < len(head) and head[i] & 0x80:  # skip the NodeDef's length varint
            i += 1
        return i + 1 < len(head) and head[i + 1] == 0x0A
    text = head.lstrip()
    while text.startswith(b"#"):  # comment lines of a text-format file
        text = text.partition(b"\n")[2].lstrip()
    return text.startswith((b"node {", b"node{")) or path.lower().endswith(".pbtxt")


def savedmodel(path: str, head: bytes) -> bool:
    """A SavedModel directory: saved_model.pb (or .pbtxt) inside."""
    import os

    return any(os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt"))


def keras(path: str, head: bytes) -> bool:
    """Keras HDF5 (the HDF5 signature) or the Keras 3 ``.keras`` zip (metadata.json/config.json first)."""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return True
    if head.startswith(b"PK\x03\x04") and len(head) > 30:
        name = head[30 : 30 + int.from_bytes(head[26:28], "little")]
        return path.lower().endswith(".keras") or name in (b"metadata.json", b"config.json")
    return False


def bigdl(path: str, head: bytes) -> bool:
    """A BigDL protobuf model: a BigDLModule (field 1 name, 2 subModules, 3/4 tensors, 7 moduleType ...)
    naming a ``com.intel.analytics.bigdl`` class early, or the ``.bigdl`` extension with such a tag first."""
    if b"com.intel.analytics.bigdl" in head and head[:1] in (b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x3a"):
        return True
    return path.lower().endswith(".bigdl") and head[:1] in (b"\x0a", b"\x12", b"\x3a")


def torch7(path: str, head: bytes) -> bool:
    """A Torch7 .t7 file: binary (int32 type 4 = torch object, its index, then the "V 1" version
    string) or ascii ("4\\n1\\n3\\nV 1\\n"), or a table of them (type 3)."""
    if len(head) >= 12 and head[:4] in (b"\x04\x00\x00\x00", b"\x03\x00\x00\x00") and b"V 1" in head[:32]:
        return True
    if head[:2] in (b"4\n", b"3\n") and b"V 1" in head[:24]:
        return True
    return path.lower().endswith(".t7") and len(head) >= 4 and head[:4] in (b"\x04\x00\x00\x00", b"\x03\x00\x00\x00")
