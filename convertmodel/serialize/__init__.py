"""The ``.q8`` file format (normative spec: docs/format.md).

``write_q8(graph, path)`` writes a graph deterministically and atomically, streaming tensors;
``read_q8(path)`` validates the file and maps its tensors zero-copy; ``read_header(path)``
returns the validated header alone (for size breakdowns). ``read``/``write`` are the same two
functions under the names the reader and writer registries call (format "q8").
"""

from convertmodel.serialize.format import ALIGNMENT, MAJOR, MINOR, Q8_MAGIC
from convertmodel.serialize.reader import Q8Layout, read_header, read_layout, read_q8
from convertmodel.serialize.writer import write_q8

#: The reader registry's entry point (convertmodel/readers/__init__.py, format "q8").
read = read_q8
#: The writer registry's entry point (convertmodel/writers/__init__.py, format "q8").
write = write_q8

__all__ = [
    "ALIGNMENT",
    "MAJOR",
    "MINOR",
    "Q8_MAGIC",
    "Q8Layout",
    "read",
    "read_header",
    "read_layout",
    "read_q8",
    "write",
    "write_q8",
]
