"""What the benchmarks share: a started cluster (with the demo data), a free port, ``vlkb serve``
started and stopped, memory readings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from db.cluster import EmbeddedCluster
from db.migrate import migrate

__all__ = ["demo_cluster", "free_port", "proc_mb", "serve", "start_cluster"]


def start_cluster(home: Path | None = None) -> tuple[EmbeddedCluster, str]:
    """The embedded cluster of ``home`` (None: the configured VLKB_HOME's), started and migrated; its URL."""
    if home is None:
        from app.database import cluster_for
        from app.settings import Settings

        cluster = cluster_for(Settings())
    else:
        home.mkdir(parents=True, exist_ok=True)
        cluster = EmbeddedCluster(home=home)
    cluster.start()
    url = cluster.url()
    migrate(url)
    return cluster, url


def demo_cluster(home: Path) -> tuple[EmbeddedCluster, str]:
    """:func:`start_cluster` with the demo data loaded (once: it is kept in ``home``)."""
    from demo.load import demo_loaded, load_demo

    cluster, url = start_cluster(home)
    with psycopg.connect(url) as conn:
        if not demo_loaded(conn):
            load_demo(conn, home / "data", scale=1, authority="vlkb.bench")
    return cluster, url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_mb(pid: int, key: str = "VmRSS:") -> float:
    """A memory figure of process ``pid`` from /proc (VmRSS, VmHWM, RssAnon ...), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def serve(home: Path, db_port: int, *, code: Path | None = None,
          **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``vlkb serve`` on a free port for the database of ``home``, with extra ``VLKB_*`` settings;
    yields its base URL and process once ``/health`` answers. ``code``: serve the vlkb source tree
    there instead (e.g. ``git worktree add /tmp/before <commit>``), for before/after figures in one run."""
    port = free_port()
    env = {**os.environ, "VLKB_HOME": str(home), "VLKB_PORT": str(port), "VLKB_DB_PORT": str(db_port),
           "VLKB_LOG_LEVEL": "WARNING", **{f"VLKB_{k.upper()}": v for k, v in settings.items()}}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    server = subprocess.Popen([str(Path(sys.executable).parent / "vlkb"), "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)
