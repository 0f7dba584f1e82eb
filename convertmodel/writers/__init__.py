"""Writers: a graph -> a file of some format. Each format exposes ``write(graph, path, **options)``.

Writers mirror readers (convertmodel/readers/__init__.py): one ``WriterInfo`` entry per format in
:data:`BUILTIN`, the module imported only when that format is written, options checked here
against the entry. The format follows the output path's extension unless given. ``.q8`` is one
entry like the others (module :mod:`convertmodel.serialize`). A new format is a subpackage
``writers/<format>/`` plus one entry here.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import NamedTuple

from convertmodel.errors import UsageError
from convertmodel.ir.graph import Graph
from convertmodel.registry import Registry, check_options


class WriterKey(NamedTuple):
    format: str


@dataclass(frozen=True)
class WriterInfo:
    """One output format: its extensions and where its ``write`` lives."""

    format: str
    extensions: tuple[str, ...]
    #: Module exposing ``write(graph, path, **options)``; imported on first use.
    module: str
    description: str
    #: Keyword options ``write`` accepts; anything else is rejected by :func:`write_model`.
    options: tuple[str, ...] = ()


#: The formats convertmodel writes. New writers add one entry each.
BUILTIN: tuple[WriterInfo, ...] = (
    WriterInfo("q8", (".q8",), "convertmodel.serialize", "convertmodel's own model file (fp32 or int8)"),
    WriterInfo(
        "caffe",
        (".caffemodel",),
        "convertmodel.writers.caffe",
        "Caffe .caffemodel + deploy .prototxt",
        options=("prototxt_out",),
    ),
    WriterInfo(
        "bigdl",
        (".bigdl",),
        "convertmodel.writers.bigdl",
        "BigDL 2.x protobuf model (Module.loadModule); int8 layers as BigDL-quantized modules",
    ),
)

WRITERS: Registry[WriterKey, WriterInfo] = Registry("writer")
for _info in BUILTIN:
    WRITERS.add(WriterKey(_info.format), _info)


def _known() -> str:
    return ", ".join(f"{i.format} ({' '.join(i.extensions)})" for _, i in WRITERS.items())


def writer_for(path: str, format: str | None = None) -> WriterInfo:
    """The writer of ``format``, or of the format ``path``'s extension names."""
    if format is not None:
        info = WRITERS.get(WriterKey(format))
        if info is None:
            raise UsageError(f"{path}: unknown output format {format!r}; known: {_known()}")
        return info
    low = path.lower()
    for _, info in WRITERS.items():
        if low.endswith(info.extensions):
            return info
    raise UsageError(f"{path}: cannot write this format; known output formats: {_known()}")


def write_model(graph: Graph, path: str, format: str | None = None, **options: object) -> None:
    """Write ``graph`` to ``path`` in ``format`` (default: from the extension)."""
    path = os.fspath(path)
    info = writer_for(path, format)
    check_options(f"{info.format} writer", path, options, info.options)
    importlib.import_module(info.module).write(graph, path, **options)
