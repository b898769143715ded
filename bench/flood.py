"""An authenticated client's latency while another client floods the service with refused queries.

A private cluster under ``var/bench-flood`` (migrated, no demo data: the query is a count over
``TAP_SCHEMA.columns``), ``vlkb serve`` (one process) with a window of 5 queries per 600 s for anonymous
and authenticated clients, and one client of a group without limits timing ``/tap/sync`` queries one after the
other. It prints the client's p50 and the flood's refusals per second for:

- **idle**: nobody else (the baseline, measured in the same run);
- **authenticated flood**: a second user, over its quota, sending queries from 4 threads of
  another process: each refusal takes the full path (routing, token check, parameters, the error
  handler, the request log), what every 429 cost before ``app/quota_gate.py``;
- **anonymous flood, no delay**: the same from an anonymous client, answered before routing by
  the quota gate (``VLKB_QUOTA_REFUSAL_DELAY=0``);
- **anonymous flood, default delay**: the same with the default refusal delay (0.25 s), which
  holds each of the flood's connections to a few requests a second.

    python -m bench.flood [--queries 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.server import serve

ROOT = Path(__file__).resolve().parent.parent
QUERY = "SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns"
#: the flooding client: 4 threads posting queries until SIGTERM; prints its statuses and rate as JSON
FLOOD = """
import collections, json, signal, sys, threading, time, httpx
url, query, token = sys.argv[1], sys.argv[2], sys.argv[3]
seen, stop = collections.Counter(), threading.Event()
headers = {"Authorization": f"Bearer {token}"} if token else {}
def flood():
    with httpx.Client(base_url=url, timeout=60, headers=headers) as c:
        while not stop.is_set():
            seen[c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query}).status_code] += 1
signal.signal(signal.SIGTERM, lambda *a: stop.set())
t0 = time.monotonic()
threads = [threading.Thread(target=flood) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"statuses": seen, "seconds": time.monotonic() - t0}))
"""


def _timed(url: str, token: str, n: int) -> float:
    """p50 of ``n`` authenticated queries, one after the other, ms."""
    took = []
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": QUERY})
            took.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"the measured client was answered {r.status_code}: {r.text[:300]}")
    return 1000 * statistics.median(took)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Flood:
    """The flooding client, another process, while the ``with`` block runs; then its refusals."""

    def __init__(self, url: str, token: str) -> None:
        self.args = [sys.executable, "-c", FLOOD, url, QUERY, token]
        self.refused = 0
        self.seconds = 0.0

    def __enter__(self) -> _Flood:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE)
        time.sleep(2.0)  # started, and its window used: refused from then on
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        got = json.loads(self.proc.communicate(timeout=60)[0])
        self.refused, self.seconds = got["statuses"].get("429", 0), got["seconds"]


def _case(url: str, pid: int, token: str, flood_token: str | None, n: int, rounds: int) -> tuple[float, float, float]:
    """p50 of the measured client (ms), with or without a flood (``flood_token``: "" anonymous, None none),
    over ``rounds`` rounds; and the server's CPU per refusal (ms) and the refusals per second, measured
    over a flood without the measured client."""
    if flood_token is None:
        return statistics.median(_timed(url, token, n) for _ in range(rounds)), 0.0, 0.0
    p50s = []
    for _ in range(rounds):
        with _Flood(url, flood_token):
            p50s.append(_timed(url, token, n))
    with _Flood(url, flood_token) as flood:
        t0, cpu0 = time.monotonic(), _cpu(pid)
        time.sleep(3.0)
        cpu, took = _cpu(pid) - cpu0, time.monotonic() - t0
    rate = flood.refused / flood.seconds
    return statistics.median(p50s), 1000 * cpu / max(1.0, rate * took), rate


def main(argv: Sequence[str] | None = None) -> None:
    from app.dev_issuer import mint
    from app.settings import Settings
    from db.cluster import EmbeddedCluster
    from db.migrate import migrate

    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="timed queries of the measured client per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case (p50: the median of the rounds')")
    args = parser.parse_args(argv)

    home = ROOT / "var" / "bench-flood"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    cluster = EmbeddedCluster(home=home)
    cluster.start()
    limits = json.dumps({"queries_per_window": 5})
    try:
        migrate(cluster.url())
        # the measured user is in a group without limits; the flooder is a plain authenticated user
        user, flooder = mint(Settings(home=home), "measured", ("staff",)), mint(Settings(home=home), "flooder")
        print(f"flood: authenticated p50 of {args.queries} queries x {args.rounds} rounds; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        for delay in ("0", "0.25"):
            with serve(home, cluster.current_port(), quota_anonymous=limits, quota_authenticated=limits,
                       quota_groups=json.dumps({"staff": {}}), quota_window="600", quota_refusal_delay=delay,
                       workers="1") as (url, server):
                _timed(url, user, 5)  # warm: the pool's connections, the first translations
                cases: list[tuple[str, str | None]] = [("idle", None), ("anonymous flood (gate)", "")]
                if delay == "0":
                    cases.insert(1, ("authenticated flood (full path)", flooder))
                idle = 0.0
                for name, token in cases:
                    p50, cpu, rate = _case(url, server.pid, user, token, args.queries, args.rounds)
                    idle = idle or p50
                    print(f"  delay {delay:4s} {name:32s} p50 {p50:6.1f} ms  x{p50 / idle:4.2f} of idle  "
                          f"flood refused {rate:6.1f}/s, server CPU {cpu:5.2f} ms per refusal")
        print(f"  load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
