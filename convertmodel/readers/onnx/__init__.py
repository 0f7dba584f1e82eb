"""ONNX reader: ``read(path) -> Graph`` for opsets 7 to the installed onnx package's newest.

Steps: load (parse errors -> FormatError, external data relative to the model's folder), check
the opset, scan every node and raise one UnsupportedOpError listing all unsupported op types,
then convert node by node with the handlers registered in ``handlers_*.py``. The result is the
literal translation; constant folding and simplification run after any reader
(:mod:`convertmodel.passes.pipeline`, from :func:`convertmodel.load`).
"""

from __future__ import annotations

from typing import Any

from convertmodel.ir.graph import Graph

# Importing the handler modules registers every handler with HANDLERS.
from convertmodel.readers.onnx import handlers_const, handlers_elementwise, handlers_nn, handlers_shape  # noqa: F401
from convertmodel.readers.onnx.context import HANDLERS, HandlerKey, NodeContext, onnx_op
from convertmodel.readers.onnx.converter import convert, scan_unsupported
from convertmodel.readers.onnx.loader import MIN_OPSET, default_opset, load_model, newest_opset

__all__ = ["HANDLERS", "MIN_OPSET", "HandlerKey", "NodeContext", "newest_opset", "onnx_op", "read", "read_proto"]


def read(path: str) -> Graph:
    """Translate an ONNX model file into the IR (no folding: see :mod:`convertmodel.passes.pipeline`)."""
    return read_proto(load_model(path), path)


def read_proto(model: Any, path: str = "<memory>") -> Graph:
    """Convert an already loaded ModelProto (``path`` is used in messages and metadata)."""
    opset = default_opset(model, path)
    scan_unsupported(model, path, opset)
    return convert(model, path, opset)
