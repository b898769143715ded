"""The early refusal of an anonymous client over its query quota (app/quota_gate.py): the same 429 as
the full path (Retry-After, DALI error document), after the refusal delay, on a connection that stays
open, counted once in the metrics; authenticated callers and other routes are not touched.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import running_server
from tests.serving import adql

STATS = "SELECT COUNT(*) AS n FROM compactsources.band70um WHERE glat > 0"
DELAY = 0.5


@pytest.fixture(scope="module")
def gated(database, issuer):
    with running_server(database, oidc_issuer=issuer.url, quota_window="600", quota_refusal_delay=str(DELAY),
                        quota_anonymous=json.dumps({"queries_per_window": 2})) as srv:
        yield srv


def _requests(url: str, method: str, route: str, status: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name == "vlkb_http_requests":
            return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels == {
                "method": method, "route": route, "status": status})
    return 0.0


def _refused(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 600
    assert headers["content-type"].startswith("application/x-votable+xml")
    info = etree.fromstring(body).find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info is not None and info.get("value") == "ERROR"
    assert "over the quota of 2 queries per 600 s" in (info.text or "")


def test_over_quota_anonymous_queries_are_refused_early_once_counted_on_a_kept_connection(gated, issuer) -> None:
    with httpx.Client(base_url=gated.url, timeout=60) as client:
        for _ in range(2):
            assert client.post("/tap/sync", data=adql(STATS)).status_code == 200
    before = _requests(gated.url, "POST", "/tap/sync", "429")

    where = urlsplit(gated.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        t0 = time.perf_counter()
        for _ in range(3):
            conn.request("POST", "/tap/sync", body=urlencode(adql(STATS)),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            resp = conn.getresponse()
            _refused(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        took = time.perf_counter() - t0
        sock = conn.sock
        assert sock is not None  # not closed by the server: the client keeps its connection
        conn.request("GET", "/tap/capabilities")
        assert conn.getresponse().status == 200
        assert conn.sock is sock  # the same connection served the next request
    finally:
        conn.close()
    # each refusal waited for the delay (a lower bound: true however loaded the machine)
    assert took >= 3 * DELAY * 0.95

    get = httpx.get(gated.url + "/tap/sync", params=adql(STATS), timeout=60)
    _refused(get.status_code, dict(get.headers), get.content)
    # counted once each in the request metrics
    assert _requests(gated.url, "POST", "/tap/sync", "429") - before == 3

    # an authenticated caller is not touched, nor are the anonymous client's other routes
    token = issuer.token("gate-user", ["team"])
    ok = httpx.post(gated.url + "/tap/sync", data=adql(STATS), headers={"Authorization": f"Bearer {token}"},
                    timeout=60)
    assert ok.status_code == 200
    assert httpx.get(gated.url + "/tap/tables", timeout=60).status_code == 200
    assert httpx.get(gated.url + "/tap/capabilities", timeout=60).status_code == 200
    # a header of another scheme takes the full path, which refuses it the same way
    basic = httpx.post(gated.url + "/tap/sync", data=adql(STATS), headers={"Authorization": "Basic eDp5"},
                       timeout=60)
    _refused(basic.status_code, dict(basic.headers), basic.content)
