"""Upload tables in the query's transaction (db/upload.py through db/query.py): read as the query
role, and gone afterwards whatever happened (rows read, a refused value, a consumer that stops early)."""

from __future__ import annotations

import pytest
from psycopg import pq

from db.upload import TempTable, UploadLoadError
from tests.looped import Looped

pytestmark = pytest.mark.timeout(60)


def table(text: bytes, name: str = "tap_upload_0") -> TempTable:
    return TempTable(name=name, columns=[("id", "integer"), ("when", "timestamp"), ("pos", "spoint")],
                     rows=lambda: [text], label="TAP_UPLOAD.t")


ROWS = b"1\t2020-01-01T00:00:00\t(10d,20d)\n2\t\\N\t\\N\n"


def temp_tables(conn: Looped) -> int:
    return conn.fetchone("SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()")[0]


def rows_of(conn: Looped, tables: list[TempTable], query: str) -> list[bytes]:
    out = []
    for batch in conn.stream(query, ["{0}::text", "{1}::text"], fmt="csv", tables=tables):
        out += batch.data.decode().splitlines()
    return out


def test_read_as_the_query_role_then_dropped(database) -> None:
    with Looped(database.url, autocommit=False) as conn:
        got = rows_of(conn, [table(ROWS)],
                      'SELECT u.id, current_user FROM pg_temp.tap_upload_0 AS u ORDER BY u.id')
        assert got == ["1,vlkb_tap", "2,vlkb_tap"]
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert temp_tables(conn) == 0


def test_two_tables_joined(database) -> None:
    with Looped(database.url, autocommit=False) as conn:
        got = rows_of(conn, [table(ROWS), table(b"2\t\\N\t\\N\n", "tap_upload_1")],
                      "SELECT a.id, b.id FROM pg_temp.tap_upload_0 AS a JOIN pg_temp.tap_upload_1 AS b ON a.id = b.id")
        assert got == ["2,2"]


def test_refused_value_is_an_upload_error_and_leaves_nothing(database) -> None:
    with Looped(database.url, autocommit=False) as conn:
        with pytest.raises(UploadLoadError, match="TAP_UPLOAD.t: invalid input syntax"):
            rows_of(conn, [table(b"1\tyesterday-ish\t\\N\n")], "SELECT id, id FROM pg_temp.tap_upload_0")
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert temp_tables(conn) == 0


def test_early_stop_leaves_nothing(database) -> None:
    many = b"".join(b"%d\t\\N\t\\N\n" % i for i in range(200_000))
    with Looped(database.url, autocommit=False) as conn:
        stream = conn.stream("SELECT id, id FROM pg_temp.tap_upload_0", ["{0}", "{1}"], tables=[table(many)],
                             batch_bytes=1 << 12)
        assert next(stream).nrows > 0
        stream.close()
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert temp_tables(conn) == 0
        assert conn.fetchone("SELECT current_setting('transaction_read_only')")[0] == "off"
