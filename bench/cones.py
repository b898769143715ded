"""Cone searches under load: 8 clients against ``vlkb serve`` with one and with several processes.

For each table size (default 1,000,000 and 10,000,000 rows of ``compactsources.band70um``, built
once per size under ``var/bench-cones-N`` by :mod:`bench.tap_http`'s loader: sources over the
Galactic plane, |b| < 1 deg), runs 0.1 degree cones with ``TOP 10`` (``CONTAINS(POINT, CIRCLE)``,
served by the GiST index on ``pos_gal``) and prints requests/s, p50 and p99:

- the translated SQL run straight with psycopg by the same number of clients (each its own
  connection): what the database alone gives on this machine, the baseline of the ratios;
- ``/tap/sync`` through ``vlkb serve`` with ``VLKB_WORKERS=1`` and ``=N`` (default: the cores),
  from one asyncio httpx client process keeping ``--clients`` requests in flight (keep-alive
  connections, a new random cone each time).

The load generator shares the machine with the server and PostgreSQL; the load average during
the run is printed, since other work on the machine changes every figure.

``--before DIR`` also serves the vlkb source tree in DIR (``git worktree add DIR <commit>``) with
``VLKB_WORKERS=N``, alternating with the current code, for before/after ratios measured in one run.

    python -m bench.cones [--rows 1000000 10000000] [--clients 8] [--requests 400] [--workers 2]
                          [--before DIR] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psycopg

from bench.server import serve
from bench.tap_http import _percentiles, _prepare
from vo.adql import translate
from vo.tap import published_catalog

ROOT = Path(__file__).resolve().parent.parent


def _cones(n: int, seed: int = 11) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        l0, b0 = float(rng.uniform(0, 360)), float(rng.uniform(-0.8, 0.8))
        out.append("SELECT TOP 10 designation, glon, glat, flux FROM compactsources.band70um WHERE "
                   f"1 = CONTAINS(POINT('GALACTIC', glon, glat), CIRCLE('GALACTIC', {l0:.5f}, {b0:.5f}, 0.1))")
    return out


def _direct(url: str, queries: list[str], clients: int) -> tuple[float, float, float]:
    catalog = published_catalog()
    sqls = [translate(q, catalog).sql for q in queries]
    conns = [psycopg.connect(url, autocommit=True) for _ in range(clients)]
    try:
        def worker(k: int) -> list[float]:
            lat = []
            for s in sqls[k::clients]:
                t0 = time.perf_counter()
                conns[k].execute(s).fetchall()
                lat.append(time.perf_counter() - t0)
            return lat

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            lat = [x for part in pool.map(worker, range(clients)) for x in part]
        wall = time.perf_counter() - t0
    finally:
        for c in conns:
            c.close()
    return (len(sqls) / wall, *_percentiles(lat))


async def _http(base: str, queries: list[str], clients: int) -> tuple[float, float, float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        # warm up, with other cones than those measured (no cached translation); sent one at a time,
        # these reach one process only, the others having warmed themselves as they started (app/main.py)
        for q in _cones(2 * clients, seed=99):
            (await client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q})).raise_for_status()
        todo = iter(queries)
        lat: list[float] = []

        async def worker() -> None:
            for q in todo:
                t0 = time.perf_counter()
                r = await client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q})
                r.raise_for_status()
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        run = asyncio.gather(*(worker() for _ in range(clients)))
        await asyncio.sleep(0.5)
        spread = _connections(base)
        await run
        wall = time.perf_counter() - t0
    if spread:
        print(f"  {base}: client connections per server process {spread}", flush=True)
    return (len(queries) / wall, *_percentiles(lat))


def _connections(base: str) -> list[int]:
    """How the clients' connections are spread over the server's processes (``ss``; [] without it):
    the processes share one listening socket and the first awake accepts every waiting connection,
    so 8 connections opened at once often land 7 + 1, and one process serves most requests."""
    port = base.rsplit(":", 1)[1]
    try:
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cones", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="processes of the multi-process run")
    parser.add_argument("--before", type=Path, help="a vlkb source tree to measure too (before/after)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate before/after this many times")
    args = parser.parse_args(argv)
    queries = _cones(args.requests)
    for rows in args.rows:
        home = (ROOT / "var" / f"bench-cones-{rows}").resolve()
        cluster, url = _prepare(home, rows)
        try:
            results = [("psycopg direct (baseline)", *_direct(url, queries, args.clients))]
            runs: list[tuple[str, Path | None, int]] = [("", None, 1), ("", None, args.workers)]
            if args.before is not None:
                runs = [("before ", args.before, args.workers), ("", None, args.workers)] * args.rounds
            loads = []
            for tag, code, workers in runs:
                with serve(home, cluster.current_port(), code=code, workers=str(workers)) as (base, _):
                    results.append((f"{tag}/tap/sync, VLKB_WORKERS={workers}",
                                    *asyncio.run(_http(base, queries, args.clients))))
                    loads.append(os.getloadavg()[0])
            load = os.getloadavg()
        finally:
            cluster.stop()
        base_rate = results[0][1]
        print(f"\n0.1 deg cone, TOP 10, on {rows:,} rows; {args.clients} clients, {args.requests} requests; "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
        print(f"{'path':41s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'ratio':>6s} {'load':>5s}")
        for k, (label, rate, p50, p99) in enumerate(results):
            at = f"{loads[k - 1]:5.1f}" if k else ""
            print(f"{label:41s} {rate:8.1f} {p50:8.1f} {p99:8.1f} {rate / base_rate:6.2f} {at}")


if __name__ == "__main__":
    main()
