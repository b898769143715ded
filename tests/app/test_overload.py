"""Overload is not an outage: valid queries wait for a database connection in a bounded queue,
and only past that bound are answered 503 *busy* with Retry-After; a database that cannot be
reached still says *unavailable*.

The burst runs more clients than pool connections while busy subprocesses load every CPU.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg
from astropy.io import votable

from app.main import create_app
from app.settings import Settings
from tests.conftest import free_port, running_server
from tests.serving import SLOW, adql, running, start_query, wait_for

#: non-trivial queries of a few hundred ms each: a whole-table stream and an aggregate
DUMP = "SELECT designation, glon, glat, flux FROM compactsources.band70um"
STATS = "SELECT COUNT(*) AS n, MIN(flux) AS lo, MAX(flux) AS hi FROM compactsources.band70um WHERE glat > 0"


@contextmanager
def cpu_load(seconds: float = 240) -> Iterator[None]:
    """One spinning process per CPU, each ending by itself after ``seconds`` at most."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def rows(resp: httpx.Response) -> list:
    return votable.parse_single_table(io.BytesIO(resp.content)).to_table().as_array().tolist()


def test_burst_over_a_small_pool_waits_and_answers_every_query(database) -> None:
    with psycopg.connect(database.url) as c:  # the answers, computed from the rows with numpy
        glat, flux = np.array(c.execute("SELECT glat, flux FROM compactsources.band70um").fetchall()).T
        want_names = sorted(r[0] for r in c.execute("SELECT designation FROM compactsources.band70um"))
    north = flux[glat > 0]
    want_stats = (len(north), north.min(), north.max())
    clients, rounds = 20, 3
    # The wait bound is raised from its 60 s default: what is tested is that valid work queues and is
    # served; on a slow shared machine 60 queries over 2 connections may queue longer than a minute
    # (the bound itself is the next test's subject).
    with running_server(database, db_pool_min="1", db_pool_max="2", db_pool_wait="600") as srv, cpu_load():

        def client(i: int) -> list[tuple[int, str, object]]:
            out = []
            with httpx.Client(base_url=srv.url, timeout=180) as http:
                for k in range(rounds):
                    query = STATS if (i + k) % 2 else DUMP
                    r = http.post("/tap/sync", data=adql(query))
                    got = None
                    if r.status_code == 200:
                        got = tuple(rows(r)[0]) if query is STATS else sorted(x[0] for x in rows(r))
                    out.append((r.status_code, query, got))
            return out

        t0 = time.monotonic()
        with ThreadPoolExecutor(clients) as ex:
            answers = [a for got in ex.map(client, range(clients)) for a in got]
        took = time.monotonic() - t0
    print(f"{len(answers)} queries from {clients} clients over 2 connections, CPUs loaded: {took:.1f} s")
    assert [a[:2] for a in answers if a[0] != 200] == []
    assert {got for _, q, got in answers if q is STATS} == {want_stats}
    assert all(got == want_names for _, q, got in answers if q is DUMP)


def test_past_the_queue_bound_the_answer_is_busy_with_retry_after(database) -> None:
    settings = {"db_pool_min": "1", "db_pool_max": "1", "db_pool_queue": "1", "db_pool_wait": "3"}
    with running_server(database, **settings) as srv, psycopg.connect(database.url, autocommit=True) as watch:
        results: list[tuple[float, httpx.Response]] = []

        def run() -> None:
            t0 = time.monotonic()
            r = httpx.post(srv.url + "/tap/sync", data=adql(DUMP), timeout=120)
            results.append((time.monotonic() - t0, r))

        slow = start_query(srv.url, SLOW)
        wait_for(lambda: running(watch))  # the only connection is taken
        first = threading.Thread(target=run)
        first.start()
        time.sleep(1)  # most often the first request is waiting for the connection by now (the queue of 1 full)
        run()
        first.join()
        # Which of the two reaches the queue first is the server's order, not the test's (a loaded
        # machine can delay the first): one is refused at once, past the queue bound, the other
        # after waiting its 3 s, past the wait bound.
        (refused_in, over), (waited, queued) = sorted(results, key=lambda t: t[0])
        for r in (over, queued):
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert "busy" in r.text and "unavailable" not in r.text
            assert "QUERY_STATUS" in r.text
        assert "requests are waiting" in over.text and refused_in < 3
        assert "stayed in use for 3 s" in queued.text and waited >= 3
        print(f"the request over the queue bound was refused in {refused_in * 1000:.0f} ms")
        # the health probe says busy, not down
        health = httpx.get(srv.url + "/health", timeout=30)
        assert health.status_code == 200 and "busy" in health.json()["detail"]
        slow.close()  # the client gives up: its query goes, and the connection serves again
        wait_for(lambda: not running(watch), timeout=30)
        assert httpx.post(srv.url + "/tap/sync", data=adql(DUMP), timeout=60).status_code == 200


def test_an_unreachable_database_is_unavailable_not_busy(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(home=tmp_path, database_url=f"postgresql://vlkb@127.0.0.1:{port}/vlkb", db_pool_wait=1)
    app = create_app(settings)

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                query = await client.post("/tap/sync", data=adql(DUMP))
                health = await client.get("/health")
                return query, health

    query, health = asyncio.run(ask())
    assert query.status_code == 503
    assert "unavailable" in query.text and "busy" not in query.text
    assert "retry-after" not in query.headers
    assert health.status_code == 503
