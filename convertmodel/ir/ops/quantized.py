"""Op schemas: quantized family (being written)."""
