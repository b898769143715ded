"""``/metrics`` reflects the work done: after N queries and M jobs the counters say N and M; each
request is one JSON log line carrying its request id; the values live in the multiprocess directory."""

from __future__ import annotations

import json
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import running_server
from tests.serving import adql, wait_for

QUERY = "SELECT TOP 3 glon FROM compactsources.band70um"


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(base + "/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= set(lab))


def test_counters_say_how_many_requests_and_jobs(database) -> None:
    n_queries, n_jobs = 7, 3
    with running_server(database, log_json="true", log_level="INFO") as srv:
        before = scrape(srv.url)
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            sent = 0
            for _ in range(n_queries):
                r = client.post("/tap/sync", data=adql(QUERY))
                assert r.status_code == 200
                sent += len(r.content)
            jobs = []
            for _ in range(n_jobs):
                r = client.post("/tap/async", data={**adql(QUERY), "PHASE": "RUN"})
                assert r.status_code == 303
                jobs.append(r.headers["location"])
            wait_for(lambda: all(client.get(j + "/phase").text == "COMPLETED" for j in jobs), timeout=120, step=0.2)
        after = scrape(srv.url)

        key = {"method": "POST", "route": "/tap/sync", "status": "200"}
        assert value(after, "vlkb_http_requests_total", **key) - value(before, "vlkb_http_requests_total", **key) \
            == n_queries
        assert value(after, "vlkb_http_request_duration_seconds_count", method="POST", route="/tap/sync") == n_queries
        assert value(after, "vlkb_http_response_bytes_total", route="/tap/sync") == sent
        created = {"method": "POST", "route": "/tap/async", "status": "303"}
        assert value(after, "vlkb_http_requests_total", **created) == n_jobs
        # jobs are read from vlkb.jobs (shared with the other tests of the session): compare with before
        assert total(after, "vlkb_jobs", kind="tap") - total(before, "vlkb_jobs", kind="tap") == n_jobs
        done = ("vlkb_jobs", (("kind", "tap"), ("phase", "COMPLETED")))
        assert after[done] - before.get(done, 0) == n_jobs
        finished = ("vlkb_job_duration_seconds_count", (("kind", "tap"), ("phase", "COMPLETED")))
        assert after[finished] - before.get(finished, 0) == n_jobs
        assert ("vlkb_jobs_queue_depth", ()) in after
        # rows encoded: TOP 3 by each query and each job (the local executor runs in this process)
        rows = value(after, "vlkb_rows_streamed_total") - value(before, "vlkb_rows_streamed_total")
        assert rows == 3 * (n_queries + n_jobs)
        assert value(after, "vlkb_db_pool_connections_in_use") <= 1  # the scrape's own
        assert value(after, "vlkb_db_pool_requests_waiting") == 0
        # multiprocess mode: the values are kept in files under VLKB_HOME/run/metrics
        assert list((database.home / "run" / "metrics").glob("*/*.db"))

        time.sleep(0.5)  # the log is written by a listener thread
        port = srv.url.rsplit(":", 1)[1]
        lines = [json.loads(line) for line in (database.home / f"server-{port}.log").read_text().splitlines()
                 if line.startswith("{")]
        done_lines = [e for e in lines if e.get("event") == "request done" and e.get("route") == "/tap/sync"]
        assert len(done_lines) == n_queries
        assert all(e["status"] == 200 and len(e["request_id"]) == 12 for e in done_lines)
        assert len({e["request_id"] for e in done_lines}) == n_queries


def test_metrics_open_to_allowed_networks_or_the_token(database) -> None:
    with running_server(database, metrics_networks="[]", metrics_token="scrape-me") as srv:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2NyYXBlLW1l"}):
            r = httpx.get(srv.url + "/metrics", headers=headers, timeout=30)
            assert r.status_code == 403 and r.headers["content-type"].startswith("application/x-votable+xml")
            assert b'name="QUERY_STATUS" value="ERROR"' in r.content and b"VLKB_METRICS_TOKEN" in r.content
        r = httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=30)
        assert r.status_code == 200 and "vlkb_http_requests_total" in r.text
        # refusals are counted like any request, under the route's own label
        assert 'route="/metrics",status="403"} 3.0' in r.text
        # the other routes do not take the metrics token for an identity
        assert httpx.get(srv.url + "/tap/availability", headers={"Authorization": "Bearer scrape-me"},
                         timeout=30).status_code == 401
    with running_server(database, metrics_networks='["127.0.0.0/8"]') as srv:
        assert httpx.get(srv.url + "/metrics", timeout=30).status_code == 200
