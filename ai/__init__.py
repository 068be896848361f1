"""Pixels and metadata in, findings out: no networking, no database (DESIGN §2)."""
