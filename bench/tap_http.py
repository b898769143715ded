"""TAP over HTTP on a big table: streaming throughput and cone-search latency.

Builds (once) a private cluster under ``var/bench`` whose ``compactsources.band70um`` holds
N synthetic sources (default 10,000,000) spread over the whole Galactic plane (|b| < 1 deg,
about 14,000 per square degree, some 440 per 0.1 degree cone: a Hi-GAL-like density, two
orders of magnitude denser than the real 70 um catalogue), starts ``vlkb serve``
on it, and prints:

- streaming: rows/s and MB/s of ``SELECT TOP 2000000 *`` through ``/tap/sync`` as BINARY2,
  TABLEDATA and CSV, against ``COPY (same SQL) TO STDOUT (FORMAT BINARY)`` measured in the
  same run, and the server's peak RSS after a 100,000-row and after a 2,000,000-row result;
- cone search: requests/s and p50/p99 latency of 0.1 degree cones through ``/tap/sync`` with
  1 and 8 concurrent clients, against the same SQL run directly with psycopg.

    python -m bench.tap_http [--rows 10000000] [--stream-rows 2000000] [--cones 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psycopg
from psycopg import sql

from bench.server import proc_mb, serve, start_cluster
from db.cluster import EmbeddedCluster
from db.ddl import pg_schema
from db.load import copy_columns
from db.migrate import migrate
from schemas import find_table
from vo.adql import translate
from vo.tap import published_catalog

ROOT = Path(__file__).resolve().parent.parent
TABLE = "compactsources.band70um"


def _fill(conn: psycopg.Connection, rows: int, seed: int = 7) -> None:
    """Replace the table's rows with ``rows`` synthetic sources (indexes rebuilt after the load)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    table = find_table(TABLE)
    qname = sql.Identifier(pg_schema(table.schema_name), table.name)
    conn.execute(sql.SQL("TRUNCATE {}").format(qname))
    indexes = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexname NOT LIKE %s",
        (pg_schema(table.schema_name), table.name, "%pkey"),
    ).fetchall()
    for (name,) in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(pg_schema(table.schema_name), name)))
    conn.commit()
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        glon = rng.uniform(0, 360, n)
        glat = rng.uniform(-1, 1, n)
        icrs = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").icrs
        flux = rng.lognormal(0, 1, n)
        data = {
            "designation": [f"PLANE{start + i:09d}" for i in range(n)],
            "glon": glon, "glat": glat, "ra": icrs.ra.deg, "dec": icrs.dec.deg,
            "fwhma": rng.uniform(6, 12, n), "fwhmb": rng.uniform(5, 6, n), "pa": rng.uniform(0, 180, n),
            "flux": flux, "err_flux": flux * 0.1, "peak_flux": flux * 0.5, "err_peak_flux": flux * 0.05,
            "rms": np.full(n, 0.02), "snr": flux / 0.02, "survey": ["Hi-GAL"] * n, "tile": ["bench"] * n,
        }
        copy_columns(conn, table, data)
        conn.commit()
        print(f"  loaded {start + n:,} rows", flush=True)


def _prepare(home: Path, rows: int) -> tuple[EmbeddedCluster, str]:
    cluster, url = start_cluster(home)
    with psycopg.connect(url) as conn:
        have = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        first = conn.execute(f"SELECT designation FROM {TABLE} LIMIT 1").fetchone()
        if have != rows or not first or not first[0].startswith("PLANE"):
            print(f"building {TABLE} with {rows:,} rows (once; kept in {home})", flush=True)
            _fill(conn, rows)
    migrate(url)  # recreates the indexes
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    return cluster, url


def _stream(client: httpx.Client, query: str, fmt: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    size = 0
    with client.stream("GET", "/tap/sync", params={"LANG": "ADQL", "QUERY": query, "FORMAT": fmt,
                                                  "MAXREC": "100000000"}) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw(1 << 20):
            size += len(chunk)
    return time.perf_counter() - t0, size


def _copy_binary(url: str, sql_text: str) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        size = 0
        with conn.cursor().copy(f"COPY ({sql_text}) TO STDOUT (FORMAT BINARY)") as copy:
            for data in copy:
                size += len(data)
        return time.perf_counter() - t0, size


def _cone_query(rng: np.random.Generator) -> str:
    l0, b0 = float(rng.uniform(0, 360)), float(rng.uniform(-0.8, 0.8))
    return ("SELECT designation, glon, glat, flux FROM compactsources.band70um WHERE "
            f"1 = CONTAINS(POINT('GALACTIC', glon, glat), CIRCLE('GALACTIC', {l0:.5f}, {b0:.5f}, 0.1))")


def _percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tap_http", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--stream-rows", type=int, default=2_000_000)
    parser.add_argument("--cones", type=int, default=300)
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        args.home.parent.mkdir(parents=True, exist_ok=True)
    cluster, url = _prepare(args.home.resolve(), args.rows)
    try:
        with serve(args.home.resolve(), cluster.current_port(), maxrec_limit="100000000") as (base, server):
            catalog = published_catalog()
            with httpx.Client(base_url=base, timeout=600) as client:
                print(f"\n== streaming SELECT TOP n * FROM {TABLE} through /tap/sync ==")
                small = f"SELECT TOP 100000 * FROM {TABLE}"
                _stream(client, small, "votable")
                rss_small = proc_mb(server.pid, "VmHWM:")
                query = f"SELECT TOP {args.stream_rows} * FROM {TABLE}"
                sql_text = translate(query, catalog).sql
                base_s, base_b = _copy_binary(url, sql_text)
                print(f"{'COPY BINARY (baseline)':<24} {args.stream_rows / base_s:>12,.0f} rows/s "
                      f"{base_b / base_s / 1e6:>8.1f} MB/s")
                for fmt in ("votable", "votable/td", "csv"):
                    secs, size = _stream(client, query, fmt)
                    rate = args.stream_rows / secs
                    print(f"{fmt:<24} {rate:>12,.0f} rows/s {size / secs / 1e6:>8.1f} MB/s  "
                          f"ratio to COPY {rate / (args.stream_rows / base_s):.2f}")
                rss_big = proc_mb(server.pid, "VmHWM:")
                print(f"server peak RSS: {rss_small:.0f} MB after 100,000 rows, {rss_big:.0f} MB after "
                      f"{args.stream_rows:,} rows x 4 formats")

                print(f"\n== 0.1 degree cone on {args.rows:,} rows ==")
                rng = np.random.default_rng(11)
                cones = [_cone_query(rng) for _ in range(args.cones)]
                with psycopg.connect(url) as conn:
                    direct = []
                    for q in cones:
                        s = translate(q, catalog).sql
                        t0 = time.perf_counter()
                        conn.execute(s).fetchall()
                        direct.append(time.perf_counter() - t0)
                p50, p99 = _percentiles(direct)
                print(f"{'psycopg direct':<24} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")

                def one(q: str) -> float:
                    t0 = time.perf_counter()
                    r = client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q})
                    r.raise_for_status()
                    return time.perf_counter() - t0

                for clients in (1, 8):
                    t0 = time.perf_counter()
                    with ThreadPoolExecutor(clients) as pool:
                        lat = list(pool.map(one, cones))
                    wall = time.perf_counter() - t0
                    p50, p99 = _percentiles(lat)
                    print(f"{f'/tap/sync, {clients} client(s)':<24} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                          f"{len(cones) / wall:7.1f} req/s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
