"""Op schemas: detection family (being written)."""
