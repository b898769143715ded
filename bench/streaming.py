"""Result streaming: the writers of ``vo/votable`` against PostgreSQL's own ``COPY``.

Creates (once) a scratch table of N rows, 10 numeric columns and a short text, then streams
``SELECT *`` of it through each writer in this process, consuming the generator as a
response would, and prints rows/s, MB/s and the ratio to ``COPY (query) TO STDOUT (FORMAT
BINARY)`` of the same query read with psycopg's ``Copy`` iterator, measured in the same run.
A small run of the naive path (fetch tuples, build an astropy Table, write a VOTable) is
printed for scale.

    python -m bench.streaming [--rows 2000000] [--url postgresql://...] [--repeat 1]

Without ``--url`` (or ``VLKB_DATABASE_URL``) it uses the embedded cluster under VLKB_HOME,
starting it if needed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
from collections.abc import Callable, Sequence

import psycopg

from db.ddl import QUERY_ROLE
from db.query import astream_copy, stream_copy
from vo.adql.output import OutputColumn
from vo.votable.allocator import tune_allocator
from vo.votable.writers import ResultWriter

SCHEMA = "vlkb_bench"


#: result columns described by hand, as the ADQL translator would
Col = OutputColumn.of


COLUMNS = [
    Col("id", "long", "bigint"),
    Col("n", "int", "integer"),
    Col("k", "short", "smallint"),
    *(Col(c, "double", "double precision", unit="deg") for c in ("ra", "dec", "glon", "glat")),
    *(Col(c, "float", "real", unit="Jy") for c in ("f70", "f160", "f250")),
    Col("name", "char", "text", "*"),
]


def _url(arg: str | None) -> str:
    if arg:
        return arg
    if os.environ.get("VLKB_DATABASE_URL"):
        return os.environ["VLKB_DATABASE_URL"]
    from app.database import cluster_for
    from app.settings import Settings

    cluster = cluster_for(Settings())
    cluster.start()
    return cluster.url()


def _prepare(conn: psycopg.Connection, rows: int) -> str:
    """The scratch table of ``rows`` rows (created when missing); its name."""
    table = f"{SCHEMA}.stream_{rows}"
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
        t0 = time.perf_counter()
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            f"CREATE TABLE {table} AS SELECT i::bigint AS id, (i % 100000)::integer AS n, (i % 300)::smallint AS k, "
            "random() * 360 AS ra, random() * 180 - 90 AS dec, random() * 360 AS glon, random() * 2 - 1 AS glat, "
            "random()::real AS f70, random()::real AS f160, random()::real AS f250, "
            f"'G' || lpad(i::text, 9, '0') AS name FROM generate_series(1, {rows}) i"
        )
        conn.execute(f"VACUUM ANALYZE {table}")
        print(f"created {table} in {time.perf_counter() - t0:.1f} s")
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (QUERY_ROLE,)).fetchone():
        conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {QUERY_ROLE}")
        conn.execute(f"GRANT SELECT ON {table} TO {QUERY_ROLE}")
    return table


def _timed(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = run()
        best = min(best, time.perf_counter() - t0)
    return best, size


def _copy_binary(conn: psycopg.Connection, query: str) -> int:
    size = 0
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
        for data in copy:
            size += len(data)
    return size


def _writer(conn: psycopg.Connection, query: str, fmt: str, role: str | None) -> int:
    # the runner's own pipeline (vo.results), with the role chosen by the benchmark
    writer = ResultWriter(fmt, COLUMNS)
    batches = stream_copy(conn, query, writer.select_list, fmt=writer.copy_format, role=role, timeout=None)
    return sum(len(chunk) for chunk in writer.stream(batches))


def _reader(conn: psycopg.Connection, query: str, role: str | None) -> int:
    select = ResultWriter("votable", COLUMNS).select_list
    return sum(len(b.data) for b in stream_copy(conn, query, select, role=role, timeout=None))


def _async_writer(url: str, query: str, fmt: str, role: str | None) -> int:
    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            size = 0
            writer = ResultWriter(fmt, COLUMNS)
            batches = astream_copy(aconn, query, writer.select_list, fmt=writer.copy_format, role=role, timeout=None)
            async for chunk in writer.astream(batches):
                size += len(chunk)
            return size

    return asyncio.run(run())


def _naive(conn: psycopg.Connection, query: str, rows: int) -> int:
    """Fetch tuples into an astropy Table and write a VOTable: the path the writers replace."""
    from astropy.io.votable import from_table
    from astropy.table import Table

    data = conn.execute(f"{query} LIMIT {rows}").fetchall()
    table = Table(rows=data, names=[c.name for c in COLUMNS])
    out = io.BytesIO()
    from_table(table).to_xml(out, tabledata_format="binary2")
    return len(out.getvalue())


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the scratch table")
    parser.add_argument("--url", help="PostgreSQL URL (default: VLKB_DATABASE_URL or the embedded cluster)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each writer; the best is kept")
    parser.add_argument("--all", action="store_true", help="also BINARY, TSV and JSON")
    parser.add_argument("--naive-rows", type=int, default=50_000, help="rows for the naive astropy path (0: skip)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    url = _url(args.url)
    with psycopg.connect(url, autocommit=True) as conn:
        table = _prepare(conn, args.rows)
        has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (QUERY_ROLE,)).fetchone()
        role = QUERY_ROLE if has_role else None
        query = f"SELECT * FROM {table}"
        version = conn.info.server_version
        n = args.rows

        # Every writer run sits between two COPY BINARY runs and is compared with the faster of
        # them, so a machine busy with something else skews both sides alike; with --repeat the
        # whole sequence runs again and each figure keeps its best run.
        copy_size = _copy_binary(conn, query)  # also warms the cache
        labels: list[str] = []
        best: dict[str, tuple[float, int]] = {}
        base_of: dict[str, float] = {}

        def sequence(runs: list[tuple[str, Callable[[], int]]]) -> None:
            previous, _ = _timed(lambda: _copy_binary(conn, query), 1)
            for label, run in runs:
                secs, size = _timed(run, 1)
                after, _ = _timed(lambda: _copy_binary(conn, query), 1)
                if label not in best:
                    labels.append(label)
                if secs < best.get(label, (float("inf"), 0))[0]:
                    best[label] = (secs, size)
                base_of[label] = min(base_of.get(label, float("inf")), previous, after)
                previous = after

        # glibc's default thresholds first, then tuned as the service should run (vo/votable/allocator.py)
        sequence([("VOTable BINARY2, default malloc", lambda: _writer(conn, query, "votable", role))])
        tuned = tune_allocator()
        formats = [("votable", "VOTable BINARY2"), ("votable/td", "VOTable TABLEDATA"), ("csv", "CSV")]
        if args.all:
            formats += [("votable/b", "VOTable BINARY"), ("tsv", "TSV"), ("json", "JSON")]
        runs: list[tuple[str, Callable[[], int]]] = [
            (f"{label} ({ResultWriter(fmt, COLUMNS).media_type.split(';')[0]})",
             lambda fmt=fmt: _writer(conn, query, fmt, role))
            for fmt, label in formats
        ]
        runs.append(("VOTable BINARY2, asyncio connection", lambda: _async_writer(url, query, "votable", role)))
        runs.append(("db.query reader alone (binary batches)", lambda: _reader(conn, query, role)))
        for _ in range(args.repeat):
            sequence(runs)
        base = min(base_of.values())
        results = [("COPY BINARY, psycopg Copy iterator (best)", base, copy_size, base)]
        results += [(label, *best[label], base_of[label]) for label in labels]
        naive = None
        if args.naive_rows:
            t0 = time.perf_counter()
            _naive(conn, query, args.naive_rows)
            naive = args.naive_rows / (time.perf_counter() - t0)

    print(f"\nstreaming {n:,} rows of {table} (10 numeric columns + short text), "
          f"PostgreSQL {version // 10000}.{version % 10000}, writers consumed in-process")
    print(f"{'path':44s} {'seconds':>8s} {'rows/s':>11s} {'MB/s':>7s} {'COPY rows/s':>12s} {'ratio':>6s}")
    for label, secs, size, base in results:
        print(f"{label:44s} {secs:8.2f} {n / secs:11,.0f} {size / secs / 1e6:7.1f} {n / base:12,.0f} "
              f"{base / secs:6.2f}")
    print(f"(ratio: against the fastest COPY BINARY run just before or after that writer's runs; "
          f"malloc tuned after the first writer row: {tuned})")
    if naive:
        print(f"naive path (fetch tuples, astropy Table, write BINARY2), {args.naive_rows:,} rows: {naive:,.0f} rows/s")


if __name__ == "__main__":
    main()
