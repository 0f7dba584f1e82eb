"""Tests of int8 quantization: scheme, kernels, passes, CLI, real-model accuracy."""
