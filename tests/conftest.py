"""Session fixtures: a private PostgreSQL + pgSphere cluster with demo data, and a real server.

The cluster is the service's own embedded cluster (``db/cluster.py``) in a temporary
VLKB_HOME, migrated by ``db/migrate.py`` and loaded by the real demo loader, so the tests
exercise the exact path ``make demo`` takes. The server is ``vlkb serve`` in a subprocess on
a free port, talked to over HTTP as a client would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from db.cluster import EmbeddedCluster
from db.migrate import migrate
from tests.oidc_issuer import TestIssuer

ROOT = Path(__file__).resolve().parent.parent
VLKB = str(Path(sys.executable).parent / "vlkb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Database:
    """The test database: its URL and the VLKB_HOME it lives in."""

    url: str
    home: Path
    port: int


@pytest.fixture(scope="session")
def vlkb_home() -> Iterator[Path]:
    # mkdtemp gives 0700; the cluster runs as the postgres user when tests run as root,
    # so the directory must be searchable by it.
    home = Path(tempfile.mkdtemp(prefix="vlkb-test-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def database(vlkb_home: Path) -> Iterator[Database]:
    """The embedded cluster, started, migrated and loaded with the demo data."""
    from demo.load import load_demo

    cluster = EmbeddedCluster(home=vlkb_home)
    cluster.start()
    try:
        url = cluster.url()
        migrate(url)
        with psycopg.connect(url) as conn:
            load_demo(conn, vlkb_home / "data", scale=1, authority="vlkb.test")
        yield Database(url=url, home=vlkb_home, port=cluster.current_port())
    finally:
        cluster.stop()


@pytest.fixture()
def conn(database: Database) -> Iterator[psycopg.Connection]:
    """A connection whose work is rolled back at the end of the test."""
    with psycopg.connect(database.url) as c:
        yield c
        c.rollback()


def forget_survey(url: str, survey: str) -> None:
    """Remove every trace of a survey a test ingested (its datasets, ObsCore rows, listing and policy)."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM ivoa.obscore WHERE obs_collection = %s", (survey,))
        conn.execute("DELETE FROM vlkb.datasets WHERE survey = %s", (survey,))
        conn.execute("DELETE FROM datasets.surveys WHERE name = %s", (survey,))
        conn.execute("DELETE FROM vlkb.survey_policies WHERE survey = %s", (survey,))


@dataclass(frozen=True)
class Server:
    """A running ``vlkb serve`` and its base URL."""

    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]


def wait_for_http(url: str, timeout: float = 120, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers (not 5xx); a generous bound, since importing the app takes half a
    minute on a loaded 2-core machine; a server process that exits ends the wait at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


@contextmanager
def running_server(database: Database, command: Sequence[str] = (VLKB, "serve"), **settings: str) -> Iterator[Server]:
    """``vlkb serve`` (or ``command``) on a free port against the session database, with extra ``VLKB_*``
    settings; its output goes to ``VLKB_HOME/server-PORT.log``."""
    port = free_port()
    env = {
        **os.environ,
        "VLKB_HOME": str(database.home),
        "VLKB_PORT": str(port),
        "VLKB_DB_PORT": str(database.port),
        "VLKB_LOG_LEVEL": "WARNING",
        # one process unless a test asks for more (tests/app/test_workers.py): in-process state
        # (quotas, pool queues) stays what those tests measure
        "VLKB_WORKERS": "1",
        **{f"VLKB_{k.upper()}": v for k, v in settings.items()},
    }
    env.pop("VLKB_DATABASE_URL", None)
    log_path = database.home / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(list(command), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_http(base + "/health", proc=proc)
        except RuntimeError:
            log.flush()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"vlkb serve did not come up; its log ends with:\n{tail}") from None
        yield Server(url=base, process=proc, env=env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server(database: Database) -> Iterator[Server]:
    """``vlkb serve`` in the embedded default (development token issuer on) against the session database."""
    with running_server(database) as srv:
        yield srv


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    """An OIDC issuer of the tests' own, over HTTP on loopback."""
    iss = TestIssuer()
    yield iss
    iss.close()


@pytest.fixture(scope="session")
def auth_server(database: Database, issuer: TestIssuer) -> Iterator[Server]:
    """``vlkb serve`` accepting tokens of :func:`issuer` (keys refetched at once on rotation)."""
    with running_server(database, oidc_issuer=issuer.url, oidc_jwks_refresh="0") as srv:
        yield srv


@pytest.fixture()
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
