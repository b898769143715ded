"""Catalogue ingest: rows/s of ``vlkb ingest catalog`` against ``COPY FROM`` of the same rows.

Generates a Hi-GAL-like band catalogue (default 1,000,000 rows) and writes it as FITS, CSV
and Parquet (fluxes in mJy, no ICRS columns: the loader converts units and derives ra/dec
with astropy). A throwaway copy of ``compactsources.band70um`` (same columns, generated
point columns, indexes and access policy) is created as ``public.bench_catalog``. Then, in the
same run and into the same empty table:

- the baseline: ``COPY ... FROM STDIN (FORMAT csv)`` of the rows already in published form
  (Jy, ra/dec included), the server's own parsing and index maintenance and nothing else;
- :func:`vo.ingest.catalog.load_catalog` from each file (read, map, convert, derive, check,
  binary COPY into the staging table, duplicate checks, INSERT ... SELECT);
- a replace of the full table from Parquet (a new table built beside it, its indexes built in
  bulk, swapped in), then the ANALYZE that follows it;
- the same replace in place, as for a table a view depends on (DELETE + INSERT, until the
  commit), then apart the VACUUM and REINDEX CONCURRENTLY that follow it (readers are not
  blocked by either).

    python -m bench.ingest_catalog [--rows 1000000] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psycopg
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table as AstropyTable
from psycopg import sql

from bench.server import start_cluster
from db import staging
from db.ddl import access_ddl, table_ddl
from schemas import find_table
from vo.ingest.catalog import ColumnMap, load_catalog

BENCH_TABLE = "bench_catalog"


def _catalogue(n: int) -> AstropyTable:
    """The rows as published (Jy, degrees, ICRS derived with astropy)."""
    rng = np.random.default_rng(42)
    glon, glat = rng.uniform(0, 360, n), rng.uniform(-1, 1, n)
    icrs = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").icrs
    flux = rng.lognormal(0, 1, n)
    t = AstropyTable()
    t["designation"] = np.char.add("HIGALPB", np.char.zfill(np.arange(n).astype(str), 8))
    t["glon"], t["glat"], t["ra"], t["dec"] = glon, glat, icrs.ra.deg, icrs.dec.deg
    t["fwhma"], t["fwhmb"], t["pa"] = rng.uniform(5, 10, n), rng.uniform(5, 8, n), rng.uniform(0, 180, n)
    t["flux"], t["err_flux"] = flux, flux * 0.1
    t["peak_flux"], t["err_peak_flux"], t["rms"] = flux * 0.5, flux * 0.05, rng.uniform(0.01, 0.1, n)
    t["snr"] = (t["peak_flux"] / t["rms"]).astype(np.float32)
    t["survey"] = np.full(n, "Hi-GAL")
    t["tile"] = np.char.add("l", np.char.zfill((glon // 2 * 2).astype(int).astype(str), 3))
    return t


def _as_file(published: AstropyTable) -> AstropyTable:
    """The rows as an operator's file holds them: fluxes in mJy, no ra/dec, no survey."""
    t = published.copy(copy_data=False)
    t.remove_columns(["ra", "dec", "survey"])
    for name in ("glon", "glat", "pa"):
        t[name].unit = u.deg
    for name in ("fwhma", "fwhmb"):
        t[name].unit = u.arcsec
    for name in ("flux", "err_flux", "peak_flux", "err_peak_flux", "rms"):
        t[name] = t[name] * 1000
        t[name].unit = u.mJy if "peak" not in name and name != "rms" else u.mJy / u.beam
    return t


def _timed(fn) -> float:  # noqa: ANN001 - any callable
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", help="PostgreSQL URL (default: the embedded cluster under VLKB_HOME)")
    args = parser.parse_args(argv)
    if args.url is None:
        _, args.url = start_cluster()
    n = args.rows
    table = find_table("compactsources.band70um").model_copy(update={"name": BENCH_TABLE, "schema_name": "public"})
    target = sql.Identifier("public", BENCH_TABLE)
    published = _catalogue(n)
    cols = [c.name for c in table.columns if not c.generated]
    buf = io.StringIO()
    published[cols].write(buf, format="ascii.csv")
    csv_rows = buf.getvalue().split("\n", 1)[1].encode()
    with tempfile.TemporaryDirectory() as tmp, psycopg.connect(args.url, autocommit=True) as conn:
        files = {}
        for suffix in ("fits", "csv", "parquet"):
            files[suffix] = str(Path(tmp) / f"cat.{suffix}")
            _as_file(published).write(files[suffix], overwrite=True,
                                      format={"csv": "ascii.csv", "fits": "fits", "parquet": "parquet"}[suffix])
        units = ColumnMap(values={"survey": "Hi-GAL"}, units={
            "flux": "mJy", "err_flux": "mJy", "peak_flux": "mJy/beam", "err_peak_flux": "mJy/beam", "rms": "mJy/beam"})
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        for stmt in table_ddl(table) + access_ddl(table):
            conn.execute(stmt)  # type: ignore[call-overload]  # psycopg's stubs want Composed
        try:
            def copy_baseline() -> None:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                            target, sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
                        step = 8 << 20
                        for i in range(0, len(csv_rows), step):
                            copy.write(csv_rows[i:i + step])
                    cur.execute(sql.SQL("ANALYZE {}").format(target))

            def empty() -> None:
                conn.execute(sql.SQL("TRUNCATE {}").format(target))

            empty()
            base = _timed(copy_baseline)
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()
            assert count is not None and count[0] == n
            print(f"catalogue ingest, {n:,} rows of {table.name} ({len(cols)} columns, 2 GiST + 3 btree indexes)")
            print(f"  COPY FROM (csv, published form)   {base:7.2f} s  {n / base:>10,.0f} rows/s  (baseline)")
            for fmt, path in files.items():
                empty()
                cmap = ColumnMap(values={"survey": "Hi-GAL"}) if fmt != "csv" else units
                report = None

                def run(path: str = path, cmap: ColumnMap = cmap) -> None:
                    nonlocal report
                    report = load_catalog(conn, table, [path], cmap=cmap)

                t = _timed(run)
                assert report is not None and report.loaded == n, report and report.summary()
                print(f"  vlkb ingest catalog, {fmt:<8}     {t:7.2f} s  {n / t:>10,.0f} rows/s  "
                      f"{base / t:.2f}x COPY")
            def replace() -> None:
                load_catalog(conn, table, [files["parquet"]], cmap=ColumnMap(values={"survey": "Hi-GAL"}),
                             replace=True, tidy=False)

            t = _timed(replace)
            print(f"  replace (full table), parquet     {t:7.2f} s  {n / t:>10,.0f} rows/s  {base / t:.2f}x COPY"
                  "  (built beside the table, indexes in bulk, swapped in)")
            t = _timed(lambda: staging.tidy(conn, table, replace=False))
            print(f"  after it: ANALYZE                 {t:7.2f} s")
            # a view on the table forbids the swap: the replace happens in place (DELETE + INSERT)
            view = sql.Identifier("public", f"{BENCH_TABLE}_view")
            conn.execute(sql.SQL("CREATE VIEW {} AS SELECT designation FROM {}").format(view, target))
            try:
                t = _timed(replace)
            finally:
                conn.execute(sql.SQL("DROP VIEW {}").format(view))
            print(f"  replace in place (a view on it)   {t:7.2f} s  {n / t:>10,.0f} rows/s  {base / t:.2f}x COPY"
                  "  (DELETE + INSERT: until readers see the new rows)")
            t = _timed(lambda: staging.tidy(conn, table, replace=True))
            print(f"  after it: VACUUM (ANALYZE) + REINDEX CONCURRENTLY  {t:7.2f} s  (readers not blocked)")
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))


if __name__ == "__main__":
    main()
