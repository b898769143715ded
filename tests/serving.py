"""Helpers for tests of the serving layer: a query that runs for long, a client that walks away,
and what PostgreSQL says is running."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

import psycopg

#: a self-join over the demo catalogue that computes for tens of seconds before its one row
#: (ADQL has no pg_sleep); ``SLOW_MARK`` finds it in pg_stat_activity
SLOW = ("SELECT COUNT(*) AS n FROM compactsources.band70um AS a, compactsources.band70um AS b "
        "WHERE ABS(a.glon - b.glon) + ABS(a.glat - b.glat) < 0.01")
SLOW_MARK = "abs("


def adql(query: str) -> dict[str, str]:
    return {"LANG": "ADQL", "QUERY": query, "MAXREC": "1000000"}


def start_query(base: str, query: str) -> socket.socket:
    """POST ``query`` to ``/tap/sync`` on a raw socket and return without reading: the caller
    closes the socket to walk away like a client that gave up."""
    url = urlsplit(base)
    body = urlencode(adql(query)).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.sendall(
        f"POST /tap/sync HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    return sock


def running(conn: psycopg.Connection, mark: str = SLOW_MARK) -> list[int]:
    """Backend pids of the service running a statement containing ``mark``."""
    return [r[0] for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'vlkb' AND state = 'active' "
        "AND position(%s in lower(query)) > 0", (mark,)).fetchall()]


def wait_for(cond: Callable[[], object], timeout: float = 60, step: float = 0.02) -> float:
    """Seconds until ``cond()`` is true; fails after ``timeout``."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not met in time"
        time.sleep(step)
    return time.monotonic() - t0
