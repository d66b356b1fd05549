"""Batch rendering from a spec file: parsing and expansion, and the runner."""
