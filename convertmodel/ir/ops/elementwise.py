"""Op schemas: elementwise family (being written)."""
