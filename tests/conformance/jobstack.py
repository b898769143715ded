"""Processes for the job-engine tests: a private cluster of their own, redis-server, ``vlkb serve``
with either executor, and ``vlkb worker`` processes, each killable with SIGKILL.

The job tests get their own database, because a ``vlkb serve`` with the local executor (the
session ``server`` fixture) claims every QUEUED ``tap`` job of its database, which would race
the workers under test. Without demo data, the slow and fast queries use cross joins of
``TAP_SCHEMA.columns`` (some 400 rows).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from db.cluster import EmbeddedCluster
from db.migrate import migrate
from tests.conftest import ROOT, VLKB, free_port, wait_for_http

__all__ = ["FAST", "FOREVER", "STREAM", "JobStack", "Proc", "job_stack", "start_redis", "submit", "wait_phase",
           "wait_until"]

#: a query of a few tenths of a second (a count over some 3 million rows of a cross join)
FAST = ("SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns AS a, TAP_SCHEMA.columns AS b, TAP_SCHEMA.columns AS c"
        " WHERE c.column_index < 2")
#: a result of up to 10 million rows streamed for many seconds (used with MAXREC=10000000)
STREAM = ("SELECT a.column_name, b.column_name AS b, c.column_name AS c"
          " FROM TAP_SCHEMA.columns AS a, TAP_SCHEMA.columns AS b, TAP_SCHEMA.columns AS c")
#: a count over 24 billion rows: runs until cancelled
FOREVER = ("SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns AS a, TAP_SCHEMA.columns AS b,"
           " TAP_SCHEMA.columns AS c, TAP_SCHEMA.columns AS d")


@dataclass
class Proc:
    """A ``vlkb`` subprocess and its log."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop/kill
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=ROOT)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            assert self.process is not None
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{' '.join(self.args)} did not log {text!r}; log ends with:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


def start_redis(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """redis-server on a free port, no persistence; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(home)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


@dataclass
class JobStack:
    """The job tests' database (VLKB_HOME, port) and the processes started on it."""

    home: Path
    db_port: int
    db_url: str
    redis_url: str
    procs: list[Proc] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "VLKB_HOME": str(self.home),
            "VLKB_DB_PORT": str(self.db_port),
            "VLKB_LOG_LEVEL": "INFO",
            "VLKB_BROKER_URL": self.redis_url,
            "VLKB_JOB_HEARTBEAT": "1",
            # one process: these tests kill -9 "the service" and watch what becomes of its jobs
            "VLKB_WORKERS": "1",
        }
        env.pop("VLKB_DATABASE_URL", None)
        env.update(extra)
        return env

    def serve(self, name: str, **extra: str) -> tuple[Proc, str]:
        """``vlkb serve`` on a free port; the process and its base URL."""
        port = free_port()
        proc = Proc([VLKB, "serve"], self.env(VLKB_PORT=str(port), **extra), self.home / f"{name}.log").start()
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(base + "/health")
        except RuntimeError:
            raise RuntimeError(f"vlkb serve did not come up:\n{proc.log()[-3000:]}") from None
        return proc, base

    def workers(self, names: list[str], **extra: str) -> list[Proc]:
        """``vlkb worker`` processes, started together, once they consume from the broker."""
        procs = [Proc([VLKB, "worker"], self.env(**extra), self.home / f"{name}.log").start() for name in names]
        self.procs += procs
        for proc in procs:
            proc.wait_log("worker ready")
            proc.wait_log("ready.")  # celery's own line: consuming from the broker
        return procs

    def worker(self, name: str, **extra: str) -> Proc:
        return self.workers([name], **extra)[0]

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.procs.clear()

    def job(self, job_id: str) -> dict[str, object]:
        """The job's row, read directly from the database."""
        with psycopg.connect(self.db_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT * FROM vlkb.jobs WHERE job_id = %s", (job_id,))
            row = cur.fetchone()
            assert row is not None, f"no job {job_id}"
            return row

    def backends(self, job_id: str) -> int:
        """How many database sessions the job still has (its queries)."""
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                               (f"vlkb-job-{job_id}",)).fetchone()
            return int(row[0]) if row else 0


@contextmanager
def job_stack(prefix: str, *, demo: bool = False) -> Iterator[JobStack]:
    """A cluster (with the demo data if ``demo``) and a redis-server of the caller's own, removed after
    (kept with ``VLKB_TEST_KEEP`` set, to read the logs of a failure)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home=home)
    cluster.start()
    redis_proc = None
    try:
        url = cluster.url()
        migrate(url)
        if demo:
            from demo.load import load_demo

            with psycopg.connect(url) as conn:
                load_demo(conn, home / "data", scale=1, authority="vlkb.test")
        redis_proc, redis_url = start_redis(home)
        s = JobStack(home=home, db_port=cluster.current_port(), db_url=url, redis_url=redis_url)
        try:
            yield s
        finally:
            s.stop_all()
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        cluster.stop()
        if not os.environ.get("VLKB_TEST_KEEP"):
            shutil.rmtree(home, ignore_errors=True)


def submit(http: httpx.Client, query: str, **params: str) -> str:
    """POST a running TAP job; its id."""
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN", **params})
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def wait_phase(stack: JobStack, job_id: str, phases: tuple[str, ...], timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        row = stack.job(job_id)
        if row["phase"] in phases:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {row['phase']} after {timeout} s: {row}")
        time.sleep(0.05)


def wait_until(what: str, check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
