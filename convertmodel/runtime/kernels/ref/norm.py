"""Reference kernels: norm family (being written)."""
