"""The ``.q8`` file format (normative spec: docs/format.md).

``write_q8(graph, path)`` writes a graph deterministically and atomically, streaming tensors;
``read_q8(path)`` validates the file and maps its tensors zero-copy; ``read_header(path)``
returns the validated header alone (for size breakdowns).
"""

from convertmodel.serialize.format import MAJOR, MINOR, Q8_MAGIC
from convertmodel.serialize.reader import Q8Layout, read_header, read_layout, read_q8
from convertmodel.serialize.writer import write_q8

__all__ = ["MAJOR", "MINOR", "Q8_MAGIC", "Q8Layout", "read_header", "read_layout", "read_q8", "write_q8"]
