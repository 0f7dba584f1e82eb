"""Tests of the native int8 kernels (convertmodel/runtime/native)."""
