"""Alembic migrations; applied by :func:`kithkeep.store.migrate` on every start."""
