"""ONNX reader: ``read(path) -> Graph`` for opsets 7 to the installed onnx package's newest.

Steps: load (parse errors -> FormatError, external data relative to the model's folder), check
the opset, scan every node and raise one UnsupportedOpError listing all unsupported op types,
convert node by node with the handlers registered in ``handlers_*.py``, then run the
``fold_constants`` and ``simplify`` passes (each can be turned off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convertmodel.errors import ConvertModelError
from convertmodel.ir.graph import Graph

# Importing the handler modules registers every handler with HANDLERS.
from convertmodel.readers.onnx import handlers_const, handlers_elementwise, handlers_nn, handlers_shape  # noqa: F401
from convertmodel.readers.onnx.context import HANDLERS, HandlerKey, NodeContext, onnx_op
from convertmodel.readers.onnx.converter import convert, scan_unsupported
from convertmodel.readers.onnx.loader import MIN_OPSET, default_opset, load_model, newest_opset

__all__ = ["HANDLERS", "MIN_OPSET", "HandlerKey", "NodeContext", "newest_opset", "onnx_op", "read", "read_proto"]

_OPTIONS = ("fold_constants", "simplify")


def read(path: str, **options: Any) -> Graph:
    """Read an ONNX model file into the IR.

    Options: ``fold_constants`` (default True) evaluates nodes whose inputs are all constants
    and resolves shape computations; ``simplify`` (default True) removes Identity/Dropout and
    inverse Transpose pairs. Turning them off gives the literal translation.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConvertModelError(f"{path}: unknown ONNX reader options {unknown}; known: {', '.join(_OPTIONS)}")
    model = load_model(path)
    return read_proto(model, path, **options)


def read_proto(model: Any, path: str = "<memory>", *, fold_constants: bool = True, simplify: bool = True) -> Graph:
    """Convert an already loaded ModelProto (``path`` is used in messages and metadata)."""
    opset = default_opset(model, path)
    scan_unsupported(model, path, opset)
    g = convert(model, path, opset)
    from convertmodel.passes.fold_constants import fold_constants as _fold
    from convertmodel.passes.manager import run_passes
    from convertmodel.passes.simplify import simplify as _simplify

    passes: list[tuple[str, Callable[[Graph], Graph]]] = [("fold_constants", _fold)] if fold_constants else []
    passes += [("simplify", _simplify)] if simplify else []
    return run_passes(g, passes)
