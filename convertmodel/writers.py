"""Writing a graph to a file; the format follows the output extension."""

from __future__ import annotations

from convertmodel.errors import ConvertModelError
from convertmodel.ir.graph import Graph


def write_model(graph: Graph, path: str, **options: object) -> None:
    low = path.lower()
    if low.endswith(".q8"):
        from convertmodel.serialize import write_q8

        write_q8(graph, path)
    elif low.endswith(".caffemodel"):
        from convertmodel.readers.caffe.writer import write_caffe

        write_caffe(graph, path, **options)
    else:
        raise ConvertModelError(f"{path}: cannot write this format; use .q8 or .caffemodel")
