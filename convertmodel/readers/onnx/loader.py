"""Loading an ONNX file: parse errors, external data files, opset checks."""

from __future__ import annotations

import os
from typing import Any

from convertmodel.errors import FormatError, InvalidModelError, ModelIOError, UnsupportedOpError
from convertmodel.fsutil import open_regular

#: Oldest default-domain opset the reader accepts (opset 7 introduced numpy broadcasting for
#: elementwise ops, the form every handler assumes).
MIN_OPSET = 7
DEFAULT_DOMAINS = ("", "ai.onnx")


def newest_opset() -> int:
    """The newest default-domain opset the installed onnx package knows."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


def load_model(path: str) -> Any:
    """Parse ``path`` into a ModelProto with external data loaded from the model's folder."""
    import onnx
    from google.protobuf.message import DecodeError

    if not os.path.exists(path):
        raise ModelIOError(f"{path}: no such file")
    try:
        with open_regular(path, "an ONNX file") as f:  # a FIFO or device is refused, never read
            data = f.read()
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read: {e.strerror or e}") from e
    if not data:
        raise FormatError(path, "file is empty; expected an ONNX ModelProto", offset=0)
    try:
        model = onnx.load_from_string(data)
    except DecodeError as e:
        raise FormatError(path, f"not a valid ONNX protobuf (corrupt or truncated, {len(data)} bytes): {e}") from e
    except Exception as e:  # protobuf raises a few other types (RuntimeError from the C++ parser)
        raise FormatError(path, f"cannot parse ONNX protobuf: {type(e).__name__}: {e}") from e
    if not model.HasField("graph"):
        raise FormatError(path, f"parsed {len(data)} bytes but found no graph; not an ONNX model or truncated")
    if not len(model.opset_import):
        # Every ONNX model since IR version 3 declares opset_import, serialized after the graph
        # (field 8 follows field 7): missing, the file most likely ends early.
        raise FormatError(path, f"parsed {len(data)} bytes but found no opset_import; truncated or not ONNX")
    _load_external(model, path)
    return model


def _external_tensors(model: Any) -> list[Any]:
    from onnx import TensorProto
    from onnx.external_data_helper import _get_all_tensors

    return [t for t in _get_all_tensors(model) if t.data_location == TensorProto.EXTERNAL]


def _load_external(model: Any, path: str) -> None:
    """Resolve external data relative to the model's folder; a missing file raises ModelIOError naming it."""
    tensors = _external_tensors(model)
    if not tensors:
        return
    base = os.path.dirname(os.path.abspath(path))
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location")
        if not loc:
            raise InvalidModelError(f"{path}: tensor {t.name!r} is stored externally but names no location")
        full = os.path.normpath(os.path.join(base, loc))
        # Reject paths escaping the model folder (ONNX's own rule for external data).
        if os.path.isabs(loc) or not full.startswith(base + os.sep):
            raise InvalidModelError(f"{path}: tensor {t.name!r} external location {loc!r} leaves the model folder")
        if not os.path.exists(full):
            raise ModelIOError(f"{full}: external data file of tensor {t.name!r} (model {path}) is missing")
        size = os.path.getsize(full)
        offset = int(info.get("offset", 0) or 0)
        length = int(info.get("length", 0) or 0)
        if offset + length > size:
            raise FormatError(
                full,
                f"tensor {t.name!r} needs bytes {offset}..{offset + length} but the file has {size}",
                offset=offset,
            )
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, base)
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read external data: {e}") from e
    except Exception as e:  # onnx raises ValueError for inconsistent external data entries
        raise FormatError(path, f"external data cannot be loaded: {e}") from e


def default_opset(model: Any, path: str) -> int:
    """The default-domain opset of ``model``, checked against the supported range."""
    versions = [int(o.version) for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise InvalidModelError(f"{path}: model imports no default-domain (ai.onnx) opset")
    v = max(versions)
    newest = newest_opset()
    if v < MIN_OPSET or v > newest:
        raise UnsupportedOpError(
            path, {f"ai.onnx opset {v}": ["model"]}, [f"ai.onnx opsets {MIN_OPSET}..{newest}"], what="opset"
        )
    return v
