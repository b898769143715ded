"""Bring a database up to date: Alembic for the internal schema, then the published schemas.

One entry point, :func:`migrate`, used by ``vlkb db migrate``, ``vlkb serve`` (embedded
default) and the test fixtures, so every path builds the database the same way.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from db import ddl, tap_schema, usertables

__all__ = ["migrate", "sqlalchemy_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy form (psycopg 3 driver) of a libpq URL."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _alembic_upgrade(url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


#: the advisory lock that makes migrations of one database take turns (any constant of our own)
_LOCK = 0x766C6B62  # "vlkb"


def migrate(url: str) -> None:
    """Upgrade the internal schema, create/complete the published tables, refresh TAP_SCHEMA.

    Several processes may call it at once (two ``vlkb serve`` or API replicas starting together):
    they take turns on a session advisory lock, and each finds the work of the one before done.
    """
    # Connect first with psycopg, so an unreachable database raises psycopg.OperationalError
    # (which the CLI explains in one line) rather than SQLAlchemy's wrapper.
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            _alembic_upgrade(url)
            with psycopg.connect(url, autocommit=True) as conn:
                ddl.apply(conn)
                usertables.apply_access(conn)
                tap_schema.refresh(conn)
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
