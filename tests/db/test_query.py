"""db/query.py against a real PostgreSQL: read-only transaction as the query role, timeouts,
COPY batches of whole rows, and a transaction that always ends, even when the reader stops early.

The database is the session one (``database`` in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import errors as pgerrors

from db.ddl import QUERY_ROLE
from db.query import BINARY_SIGNATURE, CopyBatch, astream_copy, copy_statement
from tests.looped import Looped

SCHEMA = "vlkb_test_query"


@pytest.fixture(scope="module")
def db_url(database) -> str:
    """The session database (tests/conftest.py)."""
    return database.url


@pytest.fixture(scope="module")
def scratch(db_url: str) -> Iterator[str]:
    """A scratch schema the query role may read, with a table it may not."""
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        c.execute(f"CREATE SCHEMA {SCHEMA}")
        c.execute(f"CREATE TABLE {SCHEMA}.hidden (x int)")
        c.execute(f"CREATE SEQUENCE {SCHEMA}.seq")
        c.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {QUERY_ROLE}")
        c.execute(f"GRANT SELECT, USAGE ON SEQUENCE {SCHEMA}.seq TO {QUERY_ROLE}")
        yield db_url
        c.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


@pytest.fixture()
def conn(scratch: str) -> Iterator[Looped]:
    with Looped(scratch) as c:
        yield c


def _rows(conn: Looped, query: str, ncols: int, **kw: object) -> list[CopyBatch]:
    return list(conn.stream(query, [f"{{{i}}}" for i in range(ncols)], **kw))


def _text_rows(batches: list[CopyBatch]) -> list[list[str]]:
    return [line.split("\t") for b in batches for line in b.data.decode().splitlines()]


def _backend_state(url: str, pid: int) -> str | None:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        return row[0] if row else None


# -- the COPY statement ----------------------------------------------------------------------------


def test_copy_statement_renames_columns_positionally_and_limits() -> None:
    stmt = copy_statement("SELECT a, a FROM t", ["{1}::text", "{0}"], fmt="csv", limit=11)
    assert stmt.startswith("COPY (SELECT q.c1::text, q.c0 FROM (\nSELECT a, a FROM t\n) AS q(c0, c1) LIMIT 11)")
    assert stmt.endswith("TO STDOUT (FORMAT CSV)")
    with pytest.raises(ValueError):
        copy_statement("SELECT 1", ["{0}"], fmt="json")  # type: ignore[arg-type]


def test_duplicate_output_names_and_limit(conn: Looped) -> None:
    batches = _rows(conn, "SELECT 1 AS a, 2 AS a FROM generate_series(1, 10)", 2, fmt="text", limit=3)
    assert _text_rows(batches) == [["1", "2"]] * 3


# -- batches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["binary", "text", "csv"])
def test_batches_hold_whole_rows(conn: Looped, fmt: str) -> None:
    n = 60_000
    batches = _rows(conn, f"SELECT i, repeat('x', i % 37) FROM generate_series(1, {n}) i", 2, fmt=fmt,
                    batch_bytes=1 << 16)
    assert len(batches) > 3
    assert sum(b.nrows for b in batches) == n
    for b in batches:
        assert int(b.lengths.sum()) == len(b.data)
        starts = np.cumsum(b.lengths) - b.lengths
        if fmt == "binary":  # header and trailer removed: every row starts with its field count
            assert all(struct.unpack_from(">h", b.data, int(s))[0] == 2 for s in starts)
        else:
            assert all(b.data[int(e) - 1] == ord("\n") for e in np.cumsum(b.lengths))
    first = batches[0]
    if fmt == "binary":
        assert struct.unpack_from(">hii", first.data, 0) == (2, 4, 1)
    else:
        sep = "\t" if fmt == "text" else ","
        assert first.data.decode().splitlines()[0] == sep.join(["1", "x"])


def test_zero_rows_give_no_batches(conn: Looped) -> None:
    for fmt in ("binary", "text"):
        assert _rows(conn, "SELECT 1 WHERE false", 1, fmt=fmt) == []
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# -- the transaction -------------------------------------------------------------------------------


def test_runs_read_only_as_the_query_role_with_timeout(conn: Looped) -> None:
    query = ("SELECT current_user, current_setting('transaction_read_only'), "
             "current_setting('statement_timeout'), current_setting('extra_float_digits')")
    (row,) = _text_rows(_rows(conn, query, 4, fmt="text", timeout=1.5))
    assert row == [QUERY_ROLE, "on", "1500ms", "1"]
    # nothing survives the transaction
    assert conn.fetchone("SELECT current_user, current_setting('transaction_read_only')") != (
        QUERY_ROLE, "on")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_role_is_a_parameter(conn: Looped) -> None:
    me = conn.fetchone("SELECT current_user")[0]
    assert _text_rows(_rows(conn, "SELECT current_user", 1, fmt="text", role=None)) == [[me]]


def test_query_role_cannot_read_unpublished_tables(conn: Looped) -> None:
    with pytest.raises(pgerrors.InsufficientPrivilege):
        _rows(conn, f"SELECT * FROM {SCHEMA}.hidden", 1)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_transaction_is_read_only(conn: Looped) -> None:
    with pytest.raises(pgerrors.ReadOnlySqlTransaction):
        _rows(conn, f"SELECT nextval('{SCHEMA}.seq')", 1)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_only_one_statement_runs(conn: Looped) -> None:
    with pytest.raises(psycopg.Error):
        _rows(conn, f"SELECT 1) TO STDOUT; CREATE TABLE {SCHEMA}.evil (x int); COPY (SELECT 1", 1)
    assert conn.fetchone(f"SELECT to_regclass('{SCHEMA}.evil')") == (None,)


def test_statement_timeout_cancels(conn: Looped) -> None:
    with pytest.raises(pgerrors.QueryCanceled):
        _rows(conn, "SELECT pg_sleep(5)", 1, timeout=0.3)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_error_after_rows_raises_after_them(conn: Looped) -> None:
    got = 0
    with pytest.raises(pgerrors.DivisionByZero):
        for batch in conn.stream("SELECT 1 / (300000 - i) FROM generate_series(1, 400000) i", ["{0}"]):
            got += batch.nrows
    assert got > 0
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_needs_an_idle_connection(scratch: str) -> None:
    with Looped(scratch, autocommit=False) as c:
        c.fetchone("SELECT 1")
        with pytest.raises(psycopg.ProgrammingError, match="idle"):
            next(c.stream("SELECT 1", ["{0}"]))


def test_closing_early_cancels_and_rolls_back(conn: Looped, scratch: str) -> None:
    # a set-returning function in the select list streams (in FROM it would be materialised first)
    stream = conn.stream("SELECT i, md5(i::text) FROM (SELECT generate_series(1, 100000000) AS i) s",
                         ["{0}", "{1}"])
    first = next(stream)
    assert first.nrows > 0
    stream.close()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert _backend_state(scratch, conn.info.backend_pid) == "idle"
    assert conn.fetchone("SELECT 42") == (42,)


def test_garbage_collected_stream_rolls_back(conn: Looped) -> None:
    stream = conn.stream("SELECT generate_series(1, 100000000)", ["{0}"])
    next(stream)
    del stream
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# -- asyncio ---------------------------------------------------------------------------------------


def test_stream_matches_psycopgs_own_copy(conn: Looped, scratch: str) -> None:
    """The rows read from libpq are what psycopg's own COPY reader gets, without the binary file
    header and trailer (an independent reading of the same statement)."""
    query, select = "SELECT i, i * 0.5, 'r' || i FROM generate_series(1, 50000) i", ["{0}", "{1}", "{2}"]
    with psycopg.connect(scratch) as c, c.cursor().copy(copy_statement(query, select)) as cp:
        raw = b"".join(bytes(block) for block in cp)
    assert raw[:11] == BINARY_SIGNATURE and raw[-2:] == b"\xff\xff"
    assert b"".join(b.data for b in _rows(conn, query, 3)) == raw[19:-2]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_async_aclose_early_rolls_back(scratch: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(scratch, autocommit=True) as ac:
            stream = astream_copy(ac, "SELECT generate_series(1, 100000000)", ["{0}"])
            async with contextlib.aclosing(stream):
                batch = await anext(stream)
                assert batch.nrows > 0
            assert ac.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert _backend_state(scratch, ac.info.backend_pid) == "idle"
            assert await (await ac.execute("SELECT 7")).fetchone() == (7,)

    asyncio.run(run())


def test_async_task_cancelled_while_waiting_closes_the_connection(scratch: str) -> None:
    async def run() -> None:
        ac = await psycopg.AsyncConnection.connect(scratch, autocommit=True)
        pid = ac.info.backend_pid

        async def consume() -> None:
            async for _ in astream_copy(ac, "SELECT pg_sleep(30)", ["{0}"]):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ac.closed or ac.broken
        for _ in range(50):  # the server notices the closed socket and ends the backend
            if _backend_state(scratch, pid) is None:
                break
            await asyncio.sleep(0.1)
        assert _backend_state(scratch, pid) is None
        await ac.close()

    asyncio.run(run())
