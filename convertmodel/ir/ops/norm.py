"""Op schemas: norm family (being written)."""
