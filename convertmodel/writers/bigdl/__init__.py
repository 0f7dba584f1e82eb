"""BigDL writer: ``write(graph, path)`` writes a BigDL 2.x protobuf model that BigDL's ``Module.loadModule`` /
``Model.loadModel`` load and run (fp32 modules, and BigDL's quantized modules for QConv / QGemm).

Importing the package registers every module emitter. The message classes come from the BigDL reader's schema
module (``convertmodel.readers.bigdl.proto``): writers sit above readers in the layer order.
"""

from convertmodel.writers.bigdl import modules, modules_shape, quantized  # noqa: F401  (register emitters)
from convertmodel.writers.bigdl.writer import build_model, write_bigdl

#: The writer registry's entry point (format "bigdl").
write = write_bigdl

__all__ = ["build_model", "write", "write_bigdl"]
