"""Helpers shared by tests (importable as ``support`` from the test directory)."""
