"""Op schemas: shape family (being written)."""
