"""BigDL reader: protobuf model files written by BigDL 0.3.x and 2.x (the schema is bigdl.proto)."""
