"""Pixels and metadata in, findings out: no networking, no database (docs/ARCHITECTURE.md)."""
