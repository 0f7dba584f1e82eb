"""The generated BigDL message classes (bigdl_pb2, built from bigdl.proto), typed ``Any`` for mypy.

protoc's Python output creates its classes dynamically, so static checkers cannot see them; the BigDL
reader and writer use ``pb.BigDLModule`` etc. through this alias instead of importing bigdl_pb2 directly.
Regenerate with ``python3 -m grpc_tools.protoc -I. --python_out=. bigdl.proto`` (grpcio-tools 1.85.1,
protoc 35.1, matching the protobuf pin) from this directory.
"""

from __future__ import annotations

from typing import Any

from convertmodel.readers.bigdl import bigdl_pb2 as _bigdl_pb2

pb: Any = _bigdl_pb2
