"""UWS async jobs: submit-to-COMPLETED latency with the local executor, and jobs/s with Celery.

Builds (once) a private cluster under ``var/bench-jobs`` (migrated, no demo data: the queries
read TAP_SCHEMA), starts a redis-server on a free port, and prints:

- local: ``vlkb serve`` with the local executor; one job at a time, POST ``PHASE=RUN`` of a
  trivial query (``SELECT TOP 1 ... FROM TAP_SCHEMA.tables``), then ``GET job?WAIT=10``.
  p50/p95 of the job's own times (``end_time - creation_time`` in its row: submit to COMPLETED
  as the service saw it) and of what the client saw (POST sent to COMPLETED read), over N jobs;
  the target is under 200 ms;
- celery: ``vlkb serve`` with ``VLKB_EXECUTOR=celery`` and 2 ``vlkb worker`` processes
  (2 threads each); M trivial jobs submitted by 8 client threads at once, jobs/s from the first
  POST to the last COMPLETED, and the same p50/p95.

    python -m bench.jobs [--jobs 50] [--burst 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import redis

from bench.server import free_port
from db.cluster import EmbeddedCluster
from db.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
VLKB = str(Path(sys.executable).parent / "vlkb")
QUERY = "SELECT TOP 1 table_name FROM TAP_SCHEMA.tables"


def _wait(check, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up")


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _run_job(http: httpx.Client) -> tuple[str, float]:
    t0 = time.perf_counter()
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"})
    url = r.headers["location"]
    while True:
        r = http.get(url, params={"WAIT": "10"})
        if b">COMPLETED<" in r.content:
            return url.rsplit("/", 1)[1], time.perf_counter() - t0
        if b">ERROR<" in r.content or b">ABORTED<" in r.content:
            raise RuntimeError(f"job {url} failed")


def _submit(http: httpx.Client) -> str:
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"})
    return r.headers["location"].rsplit("/", 1)[1]


def _burst_figures(conn: psycopg.Connection, ids: list[str]) -> tuple[float, list[tuple[str, int, int]]]:
    """Seconds from the first creation to the last end, and (worker pid, jobs, max runs) per worker."""
    took = conn.execute("SELECT extract(epoch FROM max(end_time) - min(creation_time)) FROM vlkb.jobs"
                        " WHERE job_id = ANY(%s)", (ids,)).fetchone()[0]
    spread = conn.execute("SELECT split_part(worker, ':', 2), count(*), max(runs) FROM vlkb.jobs"
                          " WHERE job_id = ANY(%s) AND phase = 'COMPLETED' GROUP BY 1", (ids,)).fetchall()
    return float(took), spread


def _server_ms(db: str, ids: Sequence[str]) -> list[float]:
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT extract(epoch FROM end_time - creation_time) * 1000 FROM vlkb.jobs"
                            " WHERE job_id = ANY(%s) AND phase = 'COMPLETED'", (list(ids),)).fetchall()
    return [float(r[0]) for r in rows]


def _pct(values: Sequence[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _line(name: str, values: Sequence[float]) -> str:
    return f"p50 {_pct(values, 50):7.1f} ms   p95 {_pct(values, 95):7.1f} ms   ({name}, n={len(values)})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="sequential jobs for the latency figures")
    parser.add_argument("--burst", type=int, default=200, help="jobs submitted at once to the celery workers")
    args = parser.parse_args(argv)

    home = ROOT / "var" / "bench-jobs"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    cluster = EmbeddedCluster(home=home)
    cluster.start()
    db = cluster.url()
    migrate(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DELETE FROM vlkb.jobs")
    rport = free_port()
    redis_proc = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
    broker = f"redis://127.0.0.1:{rport}/0"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _wait(lambda: redis.Redis.from_url(broker).ping(), "redis-server")
        base_env = {**os.environ, "VLKB_HOME": str(home), "VLKB_DB_PORT": str(cluster.current_port()),
                    "VLKB_LOG_LEVEL": "WARNING", "VLKB_BROKER_URL": broker, "VLKB_JOBS_PER_OWNER": "0"}
        base_env.pop("VLKB_DATABASE_URL", None)
        print(f"UWS jobs: trivial query {QUERY!r}")

        # local executor: latency, one job at a time
        port = free_port()
        proc = _start([VLKB, "serve"], {**base_env, "VLKB_PORT": str(port)}, home / "local.log")
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(url + "/health").status_code == 200, "vlkb serve")
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(5):  # warm-up
                _run_job(http)
            runs = [_run_job(http) for _ in range(args.jobs)]
        _stop(proc)
        ids = [job_id for job_id, _ in runs]
        print("local executor, submit to COMPLETED, one job at a time:")
        print("  " + _line("job row: end_time - creation_time", _server_ms(db, ids)))
        print("  " + _line("client: POST to COMPLETED read with WAIT", [s * 1000 for _, s in runs]))

        # celery: 2 workers, a burst of jobs
        port = free_port()
        env = {**base_env, "VLKB_EXECUTOR": "celery", "VLKB_PORT": str(port), "VLKB_WORKER_CONCURRENCY": "2"}
        procs.append(_start([VLKB, "serve"], env, home / "celery.log"))
        url = f"http://127.0.0.1:{port}"
        workers = [_start([VLKB, "worker"], {**env, "VLKB_LOG_LEVEL": "INFO"}, home / f"worker-{i}.log")
                   for i in range(2)]
        procs += workers
        _wait(lambda: httpx.get(url + "/health").status_code == 200, "vlkb serve (celery)")
        for i in range(2):
            _wait(lambda i=i: "ready." in (home / f"worker-{i}.log").read_text(errors="replace"), "vlkb worker")
        with httpx.Client(base_url=url, timeout=60) as http, ThreadPoolExecutor(8) as pool:
            for _ in range(5):
                _run_job(http)
            burst = list(pool.map(lambda _: _submit(http), range(args.burst)))
            with psycopg.connect(db, autocommit=True) as conn:
                _wait(lambda: conn.execute("SELECT count(*) FROM vlkb.jobs WHERE job_id = ANY(%s) AND phase IN"
                                           " ('COMPLETED', 'ERROR')", (burst,)).fetchone()[0] == len(burst),
                      "the burst", timeout=600)
                took, spread = _burst_figures(conn, burst)
            seq = [_run_job(http) for _ in range(args.jobs)]
        print("celery executor, 2 vlkb worker processes x 2 threads, Redis broker:")
        print(f"  {args.burst} jobs POSTed by 8 clients at once: first POST to last COMPLETED {took:.2f} s, "
              f"{args.burst / took:.0f} jobs/s sustained; jobs per worker pid {dict((p, n) for p, n, _ in spread)}, "
              f"max runs per job {max(r for _, _, r in spread)}")
        print("  " + _line("burst, job row", _server_ms(db, burst)))
        print("  " + _line("one at a time, job row", _server_ms(db, [j for j, _ in seq])))
        print("  " + _line("one at a time, client", [s * 1000 for _, s in seq]))
    finally:
        for proc in procs:
            _stop(proc)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        cluster.stop()


if __name__ == "__main__":
    main()
