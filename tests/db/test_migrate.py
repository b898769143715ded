"""Migrations started together (two `vlkb serve` or API replicas coming up at once) take turns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg

from db.migrate import migrate


def test_concurrent_migrations_all_succeed(database) -> None:
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: migrate(database.url), range(4)))
    assert done == [None] * 4
    with psycopg.connect(database.url) as conn:
        # the database is whole afterwards: the internal schema at head, TAP_SCHEMA listing obscore
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM tap_schema.tables WHERE table_name = 'ivoa.obscore'"
                            ).fetchone()[0] == 1
