"""Pass tests."""
