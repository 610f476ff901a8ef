"""Test kit: helpers shared by tests/ and bench/ (never shipped in the service image)."""
