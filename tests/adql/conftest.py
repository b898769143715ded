"""Fixtures of the ADQL tests: the test tables in a real PostgreSQL + pgSphere.

The tables live as temporary tables of one session-wide connection to the session database
(``database`` in tests/conftest.py); each corpus query runs in its own transaction, rolled
back. ``VLKB_TEST_ADQL_URL`` points the ADQL tests at another running cluster instead (for
working on the translator without the full test session).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.types.composite import CompositeInfo, register_composite

from tests.adql.tables import TABLES, Raw, corpus_catalog, create, sql_name
from vo.adql import Catalog, functions_sql
from vo.adql.geometry import TWIN_PG


@dataclass
class AdqlDb:
    """A connection holding the test tables, the catalog naming them and their raw rows."""

    conn: psycopg.Connection
    catalog: Catalog
    raw: dict[str, Raw]


def _array(values: list) -> np.ndarray:
    """Numbers without NULLs as a float/int array, anything else as an object array."""
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float if any(isinstance(v, float) for v in values) else np.int64)
    return np.array(values, dtype=object)


@pytest.fixture(scope="session")
def adql_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("VLKB_TEST_ADQL_URL")
    return url if url else request.getfixturevalue("database").url


@pytest.fixture(scope="session")
def adql_db(adql_url: str) -> Iterator[AdqlDb]:
    with psycopg.connect(adql_url) as conn:
        conn.execute(functions_sql())
        create(conn)
        conn.commit()
        # DALI forms (a POINT's output) come back as (b, t) pairs, which test_corpus.py decodes
        register_composite(CompositeInfo.fetch(conn, TWIN_PG), conn)
        raw = {}
        for table in TABLES:
            cur = conn.execute(sql.SQL("SELECT * FROM pg_temp.{}").format(sql.Identifier(sql_name(table))))
            names = [d.name for d in cur.description]
            data = cur.fetchall()
            raw[table.name] = Raw({n: _array([r[i] for r in data]) for i, n in enumerate(names)})
        conn.rollback()
        yield AdqlDb(conn=conn, catalog=corpus_catalog(), raw=raw)
