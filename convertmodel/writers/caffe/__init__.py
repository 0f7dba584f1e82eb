"""Caffe writer: ``write(graph, path, prototxt_out=None)`` writes a .caffemodel and its deploy .prototxt.

Importing the package registers every layer emitter (``layers``, ``layers_shape``). The message
classes come from the Caffe reader's schema module (``convertmodel.readers.caffe.proto``): writers
sit above readers in the layer order, so a writer may use its format's reader schema and helpers.
"""

from convertmodel.writers.caffe import layers, layers_shape  # noqa: F401  (register emitters)
from convertmodel.writers.caffe.writer import default_prototxt_path, write_caffe

#: The writer registry's entry point (format "caffe").
write = write_caffe

__all__ = ["default_prototxt_path", "write", "write_caffe"]
