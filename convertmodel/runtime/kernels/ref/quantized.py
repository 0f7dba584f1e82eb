"""Reference kernels: quantized family (being written)."""
