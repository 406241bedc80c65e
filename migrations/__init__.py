"""Alembic environment and versions for the ``write`` and ``read`` schemas."""
