"""Alembic migrations on a fresh database: up to head matches the models, down leaves nothing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from meddx.workstation.db.models import Base
from meddx.workstation.db.session import MIGRATIONS_DIR, downgrade, make_engine, upgrade

TABLES = {"users", "auth_tokens", "patients", "models", "studies", "study_files", "predictions",
          "feedback", "audit_events"}


def check_round_trip(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() == "0001"
            assert compare_metadata(context, Base.metadata) == [], "models and migrations differ"
        upgrade(engine)  # idempotent at head
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_sqlite_upgrade_and_downgrade(tmp_path):
    check_round_trip(f"sqlite:///{tmp_path / 'fresh.db'}")


def test_migrations_ship_inside_the_package():
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert MIGRATIONS_DIR.parent.name == "workstation"
