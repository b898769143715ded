"""TAP UPLOAD: what reading, loading and cross-matching an uploaded table cost.

Runs against the service's configured database (the embedded cluster under VLKB_HOME, with
the demo data: ``vlkb demo-data``) and prints, for a table of N rows (default 100,000: the
default VLKB_UPLOAD_MAX_ROWS) of id, ra, dec and a name:

- reading: rows/s of ``vo.upload.read_upload`` (safety checks, astropy parse, typing, COPY
  text) for TABLEDATA and BINARY2, against astropy's own parse of the same bytes (baseline);
- loading: rows/s of the temporary table's ``COPY FROM STDIN`` plus ANALYZE;
- cross-match: the upload joined with ``compactsources.band70um`` within 5 arcsec, written
  with CONTAINS and with DISTANCE, as translated (index scan per uploaded row).

    python -m bench.upload [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections.abc import Sequence

import numpy as np
import psycopg
from astropy.io import votable
from astropy.table import Table

from app.database import database_url
from app.settings import Settings
from db.ddl import QUERY_ROLE
from db.session import setup_statement
from db.upload import aload_tables
from vo.adql import translate
from vo.tap import published_catalog
from vo.upload import UploadedTable, UploadRef, read_upload, upload_catalog

QUERIES = {
    "CONTAINS": "SELECT u.id, s.designation FROM TAP_UPLOAD.t AS u JOIN compactsources.band70um AS s "
                "ON 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ra, u.dec, 5.0/3600))",
    "DISTANCE": "SELECT u.id, s.designation FROM TAP_UPLOAD.t AS u JOIN compactsources.band70um AS s "
                "ON DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < 5.0/3600",
}


def _table(rows: int) -> Table:
    rng = np.random.default_rng(3)
    return Table({
        "id": np.arange(rows, dtype=np.int64), "ra": rng.uniform(264.7, 268.2, rows),
        "dec": rng.uniform(-30.7, -27.3, rows), "name": [f"T{i:08d}" for i in range(rows)],
    })


def _vot(table: Table, fmt: str) -> bytes:
    doc = votable.from_table(table)
    doc.get_first_table().format = fmt
    out = io.BytesIO()
    doc.to_xml(out)
    return out.getvalue()


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    n = args.rows
    table = _table(n)
    ref = UploadRef("t", "p")
    print(f"# TAP UPLOAD, {n:,} rows (id, ra, dec, name)")
    print("| step | format | MB | seconds | rows/s | ratio to astropy parse |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    uploaded = None
    for fmt in ("tabledata", "binary2"):
        data = _vot(table, fmt)
        base = _best(lambda data=data: votable.parse(io.BytesIO(data), verify="ignore").get_first_table())
        ours = _best(lambda data=data: read_upload(ref, data, 0))
        mb = len(data) / 1e6
        print(f"| astropy parse (baseline) | {fmt} | {mb:.1f} | {base:.3f} | {n / base:,.0f} | 1.00 |")
        print(f"| read_upload | {fmt} | {mb:.1f} | {ours:.3f} | {n / ours:,.0f} | {base / ours:.2f} |")
        uploaded = read_upload(ref, data, 0)
    assert uploaded is not None
    asyncio.run(_load_and_match(database_url(Settings()), uploaded, n))


async def _load_and_match(url: str, uploaded: UploadedTable, n: int) -> None:
    """Loading the upload into pg_temp (as a query's transaction does, db/upload.py), and the cross-matches."""
    async with await psycopg.AsyncConnection.connect(url) as conn:

        async def load(timeout: float) -> None:
            conn.pgconn.exec_(setup_statement(None, timeout, conn.info.server_version, read_only=False).as_bytes(conn))
            await aload_tables(conn, [uploaded.temp_table()], grant_to=QUERY_ROLE)

        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            await load(60)
            times.append(time.perf_counter() - t0)
            await conn.rollback()
        secs = min(times)
        print(f"| COPY into pg_temp + ANALYZE | | {len(uploaded.copy_text) / 1e6:.1f} | {secs:.3f} | "
              f"{n / secs:,.0f} | |")
        print()
        print("| cross-match (5 arcsec) | matches | seconds | uploaded rows/s |")
        print("| --- | ---: | ---: | ---: |")
        catalog = upload_catalog(published_catalog(), [uploaded])
        for name, query in QUERIES.items():
            tr = translate(query, catalog)
            await load(600)
            t0 = time.perf_counter()
            found = len(await (await conn.execute(tr.sql)).fetchall())
            secs = time.perf_counter() - t0
            await conn.rollback()
            print(f"| {name} | {found:,} | {secs:.3f} | {n / secs:,.0f} |")


if __name__ == "__main__":
    main()
