"""Alembic migrations of the workstation database (packaged; run through meddx.workstation.db)."""
