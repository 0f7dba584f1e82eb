"""Reference kernels: linalg family (being written)."""
