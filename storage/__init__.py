"""Durable storage: the database (SQLAlchemy 2 + Alembic) and the fsynced file store."""
