"""TensorFlow reader: frozen GraphDefs (``.pb`` binary, ``.pbtxt`` text), TF1 and TF2 exports.

``read(path, inputs=None, outputs=None) -> Graph``. ``inputs`` (``NAME[:SHAPE]`` entries, e.g.
``input:1,160,160,3``) and ``outputs`` (node names) cut the graph as BigDL's ``--tf_inputs`` /
``--tf_outputs`` did; by default the inputs are the placeholders and the outputs the sink nodes.
NHWC tensors become NCHW IR values (see ``context.py``); graph inputs and outputs keep TensorFlow's
layout and names. TensorFlow itself is not needed: the file is parsed with convertmodel's own
protobuf schema (``tf_graph.proto``). SavedModel directories: :mod:`.savedmodel`; Keras files:
:mod:`.keras`. This module imports nothing heavy until ``read`` is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convertmodel.ir.graph import Graph

OPTIONS = ("inputs", "outputs")


def read(path: str, *, inputs: str | Sequence[str] | None = None, outputs: str | Sequence[str] | None = None) -> Graph:
    """Read a frozen TensorFlow GraphDef (binary or text format) into the IR."""
    from convertmodel.fsutil import file_sha256, read_head
    from convertmodel.readers.tensorflow.graphdef import convert_graphdef
    from convertmodel.readers.tensorflow.protos import load_graphdef, size_limit

    if read_head(path, 3) == b"\x08\x01\x12":  # a SavedModel's saved_model.pb: read its directory
        import os

        from convertmodel.readers.tensorflow import savedmodel

        return savedmodel.read(os.path.dirname(os.path.abspath(path)), inputs=inputs, outputs=outputs)
    gd = load_graphdef(path)
    meta = {"source_sha256": file_sha256(path)}
    return convert_graphdef(gd, path, inputs=inputs, outputs=outputs, limit=size_limit(path), metadata=meta)
