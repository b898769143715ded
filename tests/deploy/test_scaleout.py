"""Scale-out as separate processes (issue 21): two ``vlkb serve`` behind Debian's haproxy, 1-3 ``vlkb
worker``, 200 async cutout jobs per batch (bench/scaleout.py, run here against the test database).

Throughput is printed, never asserted (the machine is shared). What is asserted is what an operator
relies on: every job completes, none is run twice, none is stuck, with 1, 2 or 3 workers and when a
worker and then an API process are killed with SIGKILL mid-run (clients retry what failed), and every
job is run by one of the ``vlkb worker`` processes started here (by pid: workers run jobs in threads).

The test has a database of its own. On the session database, the session ``vlkb serve`` of the other
tests (local executor) claims every QUEUED job of its database too: after the other slow tests had
started it, the 200 jobs of "1 worker" were run under two pids, the worker's and that server's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.scaleout import cutout_params, describe, kill_midway, run_batch, topology
from db.cluster import EmbeddedCluster
from db.migrate import migrate
from tests.conftest import Database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

JOBS = 200


@pytest.fixture(scope="module")
def tools() -> None:
    for tool in ("haproxy", "redis-server"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Makefile APT_PACKAGES)")


@pytest.fixture(scope="module")
def own_database() -> Iterator[Database]:
    """A cluster of this test's own with the demo data: no process of another test claims its jobs."""
    from demo.load import load_demo

    home = Path(tempfile.mkdtemp(prefix="vlkb-scaleout-"))
    home.chmod(0o755)  # the cluster runs as the postgres user when the tests run as root
    cluster = EmbeddedCluster(home=home)
    cluster.start()
    try:
        url = cluster.url()
        migrate(url)
        with psycopg.connect(url) as conn:
            load_demo(conn, home / "data", scale=1, authority="vlkb.test")
        yield Database(url=url, home=home, port=cluster.current_port())
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def _check(report, what: str) -> None:
    print(f"{what}: {describe(report)}")
    assert report.completed == report.jobs and not report.lost, report.lost[:10]
    assert not report.run_twice, report.run_twice
    assert not report.stuck, report.stuck


def test_scale_out_and_failures(tools, own_database) -> None:
    database = own_database
    params = cutout_params(database.url, JOBS)
    with topology(database.home, database.port) as topo:
        rates = {}
        for n in (1, 2, 3):
            topo.set_workers(n)
            report = run_batch(topo, database.url, params, f"t{n}-{time.time_ns()}")
            _check(report, f"{n} worker(s)")
            assert report.orphans == 0 and report.reaped == 0
            # the jobs were run by the workers started, each of them taking some
            assert set(report.per_worker) == {str(w.pid) for w in topo.workers}
            rates[n] = report.jobs_per_second
        print("jobs/s by workers: " + ", ".join(f"{n}: {r:.1f} (x{r / rates[1]:.2f})" for n, r in rates.items()))
        topo.set_workers(2)
        started = {str(w.pid) for w in topo.workers}
        report = run_batch(topo, database.url, params, f"kill-{time.time_ns()}", during=kill_midway(topo, JOBS))
        _check(report, "SIGKILL of a worker and of an API process")
        assert set(report.per_worker) <= started
        # a killed API process answers nothing more: haproxy sends everything to the other one
        assert len(topo.apis) == 1 and len(topo.workers) == 1
