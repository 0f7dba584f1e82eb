"""Reference kernels: detection family (being written)."""
