"""Op schemas: linalg family (being written)."""
