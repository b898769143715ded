"""Scale-out on one machine, as separate processes: two ``vlkb serve`` behind haproxy, 1-3 ``vlkb worker``.

The topology is what a Regional Centre runs, shrunk onto one host: a Redis broker
(``redis-server``), two API processes (``VLKB_EXECUTOR=celery``: they accept, serve and sweep
jobs), Debian's haproxy in front of them (round robin, health checks on ``/health``), and N
worker processes of one thread each. Clients only ever talk to haproxy.

It prints:

- **throughput**: for 1, 2 and 3 workers, 200 async SODA cutout jobs (a 0.05 degree circle on
  each demo Hi-GAL tile in turn) submitted by 8 client threads; jobs/s from the first job's
  creation to the last one's end, as the job rows record them;
- **failures**: with 2 workers, the same 200 jobs while one worker and then one API process are
  killed with SIGKILL mid-run. Clients retry what failed (a refused or broken request, a 5xx
  from the proxy, a job the reaper ended because its worker died). Counted from ``vlkb.jobs``:
  jobs lost (a client never got a COMPLETED job), run twice (``runs > 1``), stuck (not in a
  final phase at the end), and orphans (jobs created whose POST answer was lost with the API
  process: they still run, once).

    python -m bench.scaleout [--jobs 200] [--workers 1 2 3]

The slow test ``tests/deploy/test_scaleout.py`` runs the same code against the test database.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.server import free_port

__all__ = ["BatchReport", "Topology", "cutout_params", "run_batch", "topology"]

ROOT = Path(__file__).resolve().parent.parent
VLKB = str(Path(sys.executable).parent / "vlkb")
FINAL = ("COMPLETED", "ERROR", "ABORTED")
_PHASE = re.compile(r"<uws:phase>(\w+)</uws:phase>")

_HAPROXY = """\
global
    maxconn 1024
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend vlkb
    bind 127.0.0.1:{port}
    default_backend api
backend api
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
{servers}
"""


def _wait(check: Callable[[], object], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):  # not up yet
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout:g} s")


@dataclass
class Topology:
    """The running processes; ``url`` is haproxy's, the only address clients use."""

    home: Path
    env: dict[str, str]
    url: str
    apis: list[subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _log_seq: int = 0

    def _start(self, args: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        self._log_seq += 1
        with open(self.home / f"scaleout-{name}-{self._log_seq}.log", "ab") as log:
            return subprocess.Popen(args, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def set_workers(self, n: int) -> None:
        """Start or stop (SIGTERM: they finish their job first) workers until ``n`` run, each ready."""
        while len(self.workers) > n:
            proc = self.workers.pop()
            proc.terminate()
            proc.wait(timeout=60)
        while len(self.workers) < n:
            proc = self._start([VLKB, "worker", "--concurrency", "1"], "worker", VLKB_LOG_LEVEL="INFO")
            log = self.home / f"scaleout-worker-{self._log_seq}.log"
            _wait(lambda log=log: "ready." in log.read_text(errors="replace"), "vlkb worker")
            self.workers.append(proc)

    def kill_worker(self) -> int:
        """SIGKILL one worker (it is replaced by none); its pid."""
        proc = self.workers.pop(0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.pid

    def kill_api(self) -> int:
        """SIGKILL one API process (haproxy's health checks take it out); its pid."""
        proc = self.apis.pop(0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.pid


def _fresh(path: Path) -> str:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def topology(home: Path, db_port: int, **settings: str) -> Iterator[Topology]:
    """Redis, two ``vlkb serve`` (celery executor) and haproxy over the database of ``home`` (embedded
    cluster on ``db_port``); workers are added with :meth:`Topology.set_workers`."""
    procs: list[subprocess.Popen[bytes]] = []
    rport = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    env = {**os.environ, "VLKB_HOME": str(home), "VLKB_DB_PORT": str(db_port), "VLKB_LOG_LEVEL": "WARNING",
           "VLKB_EXECUTOR": "celery", "VLKB_BROKER_URL": f"redis://127.0.0.1:{rport}/0",
           "VLKB_JOBS_PER_OWNER": "0", "VLKB_JOB_HEARTBEAT": "1",
           **{f"VLKB_{k.upper()}": v for k, v in settings.items()}}
    env.pop("VLKB_DATABASE_URL", None)
    haproxy: subprocess.Popen[bytes] | None = None
    topo = Topology(home=home, env=env, url="", apis=[])
    try:
        ports = [free_port(), free_port()]
        for port in ports:  # each its own metrics directory: `vlkb serve` empties the one it is given
            topo.apis.append(topo._start([VLKB, "serve"], "api", VLKB_PORT=str(port),
                                         PROMETHEUS_MULTIPROC_DIR=_fresh(home / "run" / f"metrics-{port}")))
        procs += topo.apis
        for port, proc in zip(ports, topo.apis, strict=True):
            try:
                _wait(lambda port=port: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200,
                      "vlkb serve")
            except RuntimeError:
                logs = sorted(home.glob("scaleout-api-*.log"))
                raise RuntimeError(f"vlkb serve on port {port} (exit {proc.poll()}) did not come up; its log ends "
                                   f"with:\n{logs[-1].read_text(errors='replace')[-3000:] if logs else ''}") from None
        front = free_port()
        cfg = home / f"haproxy-{front}.cfg"
        cfg.write_text(_HAPROXY.format(port=front, servers="\n".join(
            f"    server api{i} 127.0.0.1:{p} check" for i, p in enumerate(ports))))
        with open(home / f"scaleout-haproxy-{front}.log", "ab") as log:
            haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        topo.url = f"http://127.0.0.1:{front}"
        _wait(lambda: httpx.get(topo.url + "/health").status_code == 200, "haproxy")
        yield topo
    finally:
        for proc in [*topo.workers, *topo.apis, *([haproxy] if haproxy else [])]:
            _stop(proc)
        redis.terminate()
        redis.wait(timeout=10)


def cutout_params(db_url: str, n: int) -> list[dict[str, str]]:
    """``n`` SODA cutout requests: a 0.05 degree circle at the centre of each public Hi-GAL tile in turn."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT obs_publisher_did, s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = 'Hi-GAL'"
                            " AND dataproduct_type = 'image' ORDER BY 1").fetchall()
    if not rows:
        raise RuntimeError("no Hi-GAL image in ivoa.obscore: load the demo data")
    return [{"ID": did, "CIRCLE": f"{ra} {dec} 0.05"} for did, ra, dec in (rows[i % len(rows)] for i in range(n))]


@dataclass
class BatchReport:
    """What one batch of jobs came to, from the clients' side and from ``vlkb.jobs``."""

    jobs: int
    seconds: float  # first creation to last end of the COMPLETED jobs, from the job rows
    completed: int  # tasks whose client got a COMPLETED job
    lost: list[str]  # tasks whose client never got one
    run_twice: list[str]  # job ids with runs > 1
    stuck: list[str]  # job ids not in a final phase
    orphans: int  # jobs created whose POST answer never reached the client
    reaped: int  # jobs ended in ERROR because their process died (their clients resubmitted)
    retries: int  # requests the clients repeated (refused, broken, 5xx)
    per_worker: dict[str, int]  # COMPLETED jobs by worker pid
    submit_seconds: float  # the clients' POSTs of the whole batch
    run_ms: float  # mean start-to-end time of a COMPLETED job, ms (the work of one job in a worker)

    @property
    def jobs_per_second(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


class _Client:
    """A retrying client: every request is repeated on a broken connection or a 5xx, with a short pause."""

    def __init__(self, url: str, deadline: float) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.deadline = deadline
        self.retries = 0

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        while True:
            try:
                r = self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
                if r.status_code < 500:
                    return r
            except httpx.TransportError:
                pass
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"{method} {path}: no answer before the deadline")
            self.retries += 1
            time.sleep(0.2)


def run_batch(topo: Topology, db_url: str, params: Sequence[dict[str, str]], tag: str, *, clients: int = 8,
              during: Callable[[Callable[[], int]], None] | None = None, timeout: float = 600) -> BatchReport:
    """Submit one job per entry of ``params`` (RUNID ``tag-i``) through haproxy with ``clients`` threads,
    wait for all, resubmit those ended by a dead process, and count. ``during(done)`` runs in its own
    thread while the jobs run (``done()`` says how many tasks have their COMPLETED job): fault injection."""
    deadline = time.monotonic() + timeout
    workers = [_Client(topo.url, deadline) for _ in range(clients)]
    known: dict[str, list[str]] = {f"{tag}-{i}": [] for i in range(len(params))}
    completed: set[str] = set()

    def submit(i: int) -> None:
        task = f"{tag}-{i}"
        r = workers[i % clients].request("POST", "/soda/async", data={**params[i], "RUNID": task, "PHASE": "RUN"})
        if r.status_code != 303:
            raise RuntimeError(f"{task}: POST answered {r.status_code}: {r.text[:300]}")
        known[task].append(r.headers["location"].rsplit("/", 1)[1])

    def follow(k: int) -> None:
        """Client ``k`` follows its tasks in order with blocking UWS WAIT requests, resubmitting failed ones."""
        client = workers[k]
        for i in range(k, len(params), clients):
            task = f"{tag}-{i}"
            while task not in completed and time.monotonic() < deadline:
                r = client.request("GET", f"/soda/async/{known[task][-1]}", params={"WAIT": "10"})
                found = _PHASE.search(r.text)
                phase = found.group(1) if found and r.status_code == 200 else "GONE"
                if phase == "COMPLETED":
                    completed.add(task)
                elif phase in FINAL or phase == "GONE":  # a retrying client submits its job again
                    submit(i)

    with ThreadPoolExecutor(clients + 1) as pool:
        fault = pool.submit(during, lambda: len(completed)) if during else None
        t0 = time.monotonic()
        list(pool.map(submit, range(len(params))))
        submit_seconds = time.monotonic() - t0
        list(pool.map(follow, range(clients)))
        if fault is not None:
            fault.result()
    for w in workers:
        w.http.close()

    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT job_id, run_id, phase, runs, split_part(worker, ':', 2), error_message,"
                            " extract(epoch FROM creation_time), extract(epoch FROM end_time),"
                            " extract(epoch FROM end_time - start_time)"
                            " FROM vlkb.jobs WHERE run_id LIKE %s", (f"{tag}-%",)).fetchall()
    seen = {j for ids in known.values() for j in ids}
    done = [r for r in rows if r[2] == "COMPLETED"]
    per_worker: dict[str, int] = {}
    for r in done:
        per_worker[r[4]] = per_worker.get(r[4], 0) + 1
    return BatchReport(
        jobs=len(params),
        seconds=(max(float(r[7]) for r in done) - min(float(r[6]) for r in rows)) if done else 0.0,
        completed=len(completed),
        lost=sorted(set(known) - completed),
        run_twice=[r[0] for r in rows if (r[3] or 0) > 1],
        stuck=[r[0] for r in rows if r[2] not in FINAL],
        orphans=sum(1 for r in rows if r[0] not in seen),
        reaped=sum(1 for r in rows if r[2] == "ERROR" and "died" in (r[5] or "")),
        retries=sum(w.retries for w in workers),
        per_worker=per_worker,
        submit_seconds=submit_seconds,
        run_ms=1000 * sum(float(r[8]) for r in done) / len(done) if done else 0.0,
    )


def kill_midway(topo: Topology, total: int, log: Callable[[str], None] = print) -> Callable[[Callable[[], int]], None]:
    """Fault injection for :func:`run_batch`: SIGKILL a worker at a quarter of the jobs, an API process at half."""

    def during(done: Callable[[], int]) -> None:
        _wait(lambda: done() >= total // 4, "a quarter of the jobs", timeout=600)
        log(f"  SIGKILL worker pid {topo.kill_worker()} at {done()} jobs completed")
        _wait(lambda: done() >= total // 2, "half of the jobs", timeout=600)
        log(f"  SIGKILL api pid {topo.kill_api()} at {done()} jobs completed")

    return during


def describe(report: BatchReport) -> str:
    return (f"{report.completed}/{report.jobs} completed in {report.seconds:.1f} s, "
            f"{report.jobs_per_second:.1f} jobs/s; lost {len(report.lost)}, run twice {len(report.run_twice)}, "
            f"stuck {len(report.stuck)}, orphans {report.orphans}, reaped and resubmitted {report.reaped}, "
            f"client retries {report.retries}; POSTs took {report.submit_seconds:.1f} s, a job runs "
            f"{report.run_ms:.0f} ms; jobs per worker pid {report.per_worker}")


def main(argv: Sequence[str] | None = None) -> None:
    from db.cluster import EmbeddedCluster
    from db.migrate import migrate
    from demo.load import load_demo

    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="async cutout jobs per batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3], help="worker counts to measure")
    args = parser.parse_args(argv)

    home = ROOT / "var" / "bench-scaleout"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    cluster = EmbeddedCluster(home=home)
    cluster.start()
    try:
        db = cluster.url()
        migrate(db)
        with psycopg.connect(db) as conn:
            if conn.execute("SELECT count(*) FROM ivoa.obscore").fetchone() == (0,):
                load_demo(conn, home / "data", scale=1, authority="vlkb.bench")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DELETE FROM vlkb.jobs")
        params = cutout_params(db, args.jobs)
        print(f"scale-out: {args.jobs} async SODA cutouts per batch, 8 clients, 2 vlkb serve behind haproxy, "
              f"workers of 1 thread; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        with topology(home, cluster.current_port()) as topo:
            base = None
            for n in args.workers:
                topo.set_workers(n)
                report = run_batch(topo, db, params, f"w{n}-{time.time_ns()}")
                base = base or report.jobs_per_second
                print(f"  {n} worker(s): {describe(report)}; x{report.jobs_per_second / base:.2f} of 1 worker")
            topo.set_workers(2)
            print("  2 workers, SIGKILL of a worker and of an API process mid-run:")
            report = run_batch(topo, db, params, f"kill-{time.time_ns()}", during=kill_midway(topo, args.jobs))
            print(f"  {describe(report)}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
