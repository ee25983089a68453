"""Engines, sessions and migrations.

Engines are made by :func:`make_engine` when an app (or a CLI command) starts, never at import.
SQLite gets WAL journaling and a busy timeout so that concurrent requests wait for the writer
instead of failing; PostgreSQL needs nothing special.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Insert, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from meddx.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files are created with their folder.

    Raises:
        ConfigError: the URL cannot be parsed or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(f"MEDDX_DATABASE_URL: {url!r} is not a database URL") from error
    if parsed.get_backend_name() == "sqlite":
        pool = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # One kept connection per thread of the request thread pool (40): with the default
            # 5 (+10 overflow) every request beyond the fifth concurrent one opened a new
            # connection, ran the pragmas below and closed it again (about 3% of the server's
            # time at 16 concurrent clients).
            pool = {"pool_size": 40, "max_overflow": 10}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            # WAL: readers never wait for the writer, and a commit is one append to the log.
            # synchronous=NORMAL skips the fsync per commit (the log is synced at checkpoints):
            # a committed transaction survives the server process dying at any moment (SIGKILL,
            # what benchmarks/workstation_load.py does mid-load), though not a power cut or
            # kernel crash right after it. Put the database on PostgreSQL for that guarantee.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ModuleNotFoundError as error:
        raise ConfigError(f"MEDDX_DATABASE_URL: the driver for {parsed.drivername!r} is not "
                          f"installed ({error.name})") from error


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit at the end, roll back everything on any error."""
    with factory() as session, session.begin():
        yield session


def insert_rows(session: Session, *rows: Any) -> list[int]:
    """Write transient ORM objects of one table by one Core INSERT; each gets its new ``id``.

    Cheaper than ``session.add`` and a flush (no unit of work, nothing loaded into the session),
    in the session's transaction all the same. The objects only carry the values (the columns
    set on them; the table's defaults fill the rest) and stay outside the session. Returns the
    new ids, in order.
    """
    table = type(rows[0]).__table__
    values = [{column.key: row.__dict__[column.key] for column in table.columns
               if column.key in row.__dict__} for row in rows]
    ids = list(session.scalars(_insert_returning_id(table), values))
    for row, new_id in zip(rows, ids, strict=True):
        row.id = new_id
    return ids


@cache
def _insert_returning_id(table: Table) -> Insert:
    # Built once per table: building a statement costs about as much CPU as running it.
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


def alembic_config(engine_or_url: Engine | str) -> Config:
    """Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(engine_or_url, str):
        config.set_main_option("sqlalchemy.url", engine_or_url.replace("%", "%%"))
    else:
        config.attributes["engine"] = engine_or_url
    return config


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (creating it from nothing if empty)."""
    command.upgrade(alembic_config(engine_or_url), revision)


def downgrade(engine_or_url: Engine | str, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (``base``: no tables)."""
    command.downgrade(alembic_config(engine_or_url), revision)
