"""``vlkb serve`` with several worker processes (VLKB_WORKERS, issue 16): both processes answer,
``/metrics`` sums what every process counted, and async jobs run exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.app.test_metrics import scrape, value
from tests.conftest import running_server
from tests.serving import adql, wait_for

QUERY = "SELECT TOP 3 glon FROM compactsources.band70um"


def _children(pid: int) -> set[int]:
    """uvicorn's worker processes under ``pid`` (multiprocessing's resource tracker left out)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return {p for p in found if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()}


def _pid(worker: str) -> int:
    return int(worker.split(":")[1])  # host:pid:random (vo/uws/worker.py)


def test_two_processes_answer_count_together_and_run_each_job_once(database, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # this server's own, not the session's
    n_queries, n_jobs = 40, 8
    with running_server(database, workers="2") as srv:
        workers = _children(srv.process.pid)
        assert len(workers) == 2, f"expected 2 worker processes, found {workers}"

        def one(_: int) -> int:  # a new connection each time, so the kernel may hand it to either process
            r = httpx.post(srv.url + "/tap/sync", data=adql(QUERY), timeout=60)
            assert r.status_code == 200 and b"<TABLE" in r.content
            return len(r.content)

        with ThreadPoolExecutor(8) as pool:
            sent = sum(pool.map(one, range(n_queries)))
        # each process that answered keeps its counters in a file named after its pid
        counted = {int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("counter_*.db")}
        assert workers <= counted, f"processes {workers}, counters from {counted}"
        key = {"method": "POST", "route": "/tap/sync", "status": "200"}
        for _ in range(4):  # whichever process answers the scrape, it sums them all
            samples = scrape(srv.url)
            assert value(samples, "vlkb_http_requests_total", **key) == n_queries
            assert value(samples, "vlkb_http_response_bytes_total", route="/tap/sync") == sent

        def job(_: int) -> str:
            r = httpx.post(srv.url + "/tap/async", data={**adql(QUERY), "PHASE": "RUN"}, timeout=60)
            assert r.status_code == 303
            return r.headers["location"].rstrip("/").rsplit("/", 1)[1]

        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(job, range(n_jobs)))
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            wait_for(lambda: all(client.get(f"/tap/async/{j}/phase").text == "COMPLETED" for j in ids),
                     timeout=180, step=0.2)
            for j in ids:
                assert client.get(f"/tap/async/{j}/results/result").status_code == 200
        with psycopg.connect(database.url) as conn:
            rows = conn.execute("SELECT job_id, runs, worker FROM vlkb.jobs WHERE job_id = ANY(%s)", (ids,)).fetchall()
        assert len(rows) == n_jobs
        for job_id, runs, worker in rows:
            assert runs == 1, f"job {job_id} ran {runs} times"
            assert _pid(worker) in workers
        samples = scrape(srv.url)
        created = {"method": "POST", "route": "/tap/async", "status": "303"}
        assert value(samples, "vlkb_http_requests_total", **created) == n_jobs
        # a supervisor killed outright takes its workers with it (PR_SET_PDEATHSIG, app/serving.py)
        srv.process.kill()
        srv.process.wait(timeout=30)
        wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in workers), timeout=60, step=0.2)
