"""Op schemas: pool family (being written)."""
