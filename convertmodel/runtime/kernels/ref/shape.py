"""Reference kernels: shape family (being written)."""
