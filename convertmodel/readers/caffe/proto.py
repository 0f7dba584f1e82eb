"""The generated Caffe message classes (caffe_pb2, built from caffe.proto), typed ``Any`` for mypy.

protoc's Python output creates its classes dynamically, so static checkers cannot see them; every
module uses ``pb.NetParameter`` etc. through this alias instead of importing caffe_pb2 directly.
"""

from __future__ import annotations

from typing import Any

from convertmodel.readers.caffe import caffe_pb2 as _caffe_pb2

pb: Any = _caffe_pb2
