"""TAP UPLOAD by URL against real servers: a table server on loopback (a real HTTP server in this
process), a vlkb that allow-lists it (VLKB_UPLOAD_URL_ALLOW_HOSTS) and the default vlkb, which
must refuse loopback and private targets before connecting, redirects into them, oversize, slow,
compressed and non-VOTable answers, each as a clear DALI error (sync) or a job in ERROR (async)."""

from __future__ import annotations

import gzip
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import pyvo
from astropy.io import votable
from astropy.table import Table
from lxml import etree

from tests.conftest import Server, running_server

pytestmark = pytest.mark.timeout(120)

MAX_BYTES = 50_000
TIMEOUT = 3


def vot(table: Table) -> bytes:
    out = io.BytesIO()
    votable.from_table(table).to_xml(out)
    return out.getvalue()


#: the served table: 25 rows whose sum and labels the tests know without asking vlkb
VALUES = np.arange(1, 26, dtype=np.int32)
TABLE = vot(Table({"v": VALUES, "label": [f"row{i}" for i in VALUES]}))


@dataclass
class TableServer:
    """A loopback HTTP server with one route per behaviour; ``hits`` lists the paths asked for."""

    url: str
    hits: list[str] = field(default_factory=list)


def _handler(hits: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

        def _send(self, body: bytes, ctype: str = "application/x-votable+xml", status: int = 200,
                  headers: dict[str, str] | None = None, length: bool = True) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            hits.append(parts.path)
            if parts.path == "/t.xml":
                self._send(TABLE)
            elif parts.path == "/text-xml":
                self._send(TABLE, "text/xml; charset=utf-8")
            elif parts.path == "/redirect":
                self._send(b"", status=int(query.get("code", ["302"])[0]), headers={"Location": query["to"][0]})
            elif parts.path == "/loop":
                self._send(b"", status=302, headers={"Location": "/loop"})
            elif parts.path == "/big":
                self._send(TABLE + b" " * MAX_BYTES)
            elif parts.path == "/big-unsized":
                self.send_response(200)
                self.send_header("Content-Type", "application/x-votable+xml")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(TABLE + b" " * MAX_BYTES)
                self.close_connection = True
            elif parts.path == "/slow":
                # a body that trickles: each byte well within any read timeout, the whole never ends in time
                self.send_response(200)
                self.send_header("Content-Type", "application/x-votable+xml")
                self.send_header("Content-Length", str(len(TABLE)))
                self.end_headers()
                try:
                    for i in range(len(TABLE)):
                        self.wfile.write(TABLE[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
            elif parts.path == "/html":
                self._send(b"<html><body>login</body></html>", "text/html")
            elif parts.path == "/gzip":
                self._send(gzip.compress(TABLE), headers={"Content-Encoding": "gzip"})
            elif parts.path == "/doctype":
                self._send(b'<!DOCTYPE v [<!ENTITY a "aaaa">]><VOTABLE>&a;</VOTABLE>')
            else:
                self._send(b"not here", "text/plain", status=404)

    return Handler


@pytest.fixture(scope="module")
def tables() -> Iterator[TableServer]:
    hits: list[str] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hits))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield TableServer(f"http://127.0.0.1:{httpd.server_address[1]}", hits)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def allowing(database) -> Iterator[Server]:
    """vlkb allowing loopback 127.0.0.1 (only), with a small byte limit and a short fetch timeout."""
    with running_server(database, upload_url_allow_hosts='["127.0.0.1"]', upload_url_timeout=str(TIMEOUT),
                        upload_max_bytes=str(MAX_BYTES)) as srv:
        yield srv


QUERY = "SELECT COUNT(*) AS n, SUM(v) AS s, MAX(label) AS m FROM TAP_UPLOAD.t"


def status_of(body: bytes) -> tuple[str, str]:
    infos = etree.fromstring(body).findall(".//{*}INFO[@name='QUERY_STATUS']")
    assert infos, body[:500]
    return infos[-1].get("value"), (infos[-1].text or "")


def check_sums(table: Table) -> None:
    assert int(table["n"][0]) == len(VALUES) and int(table["s"][0]) == int(VALUES.sum())
    assert str(table["m"][0]) == max(f"row{i}" for i in VALUES)


def sync_error(base: str, url: str, query: str = QUERY) -> tuple[int, str]:
    resp = httpx.post(base + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": f"t,{url}"}, timeout=60)
    assert resp.headers["content-type"].startswith("application/x-votable+xml"), resp.text[:300]
    value, message = status_of(resp.content)
    assert value == "ERROR"
    return resp.status_code, message


def async_error(base: str, url: str) -> str:
    """The error of an async job uploading ``url``: it must end in ERROR, not hang."""
    with httpx.Client(base_url=base, timeout=60) as http:
        resp = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": QUERY, "UPLOAD": f"t,{url}", "PHASE": "RUN"})
        assert resp.status_code == 303, resp.text[:300]
        job = resp.headers["location"]
        deadline = time.monotonic() + 60
        while (phase := http.get(job + "/phase").text) in ("PENDING", "QUEUED", "EXECUTING"):
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.2)
        assert phase == "ERROR", phase
        error = http.get(job + "/error")
        http.delete(job)
    return status_of(error.content)[1]


# -- what works --------------------------------------------------------------------------------


def test_pyvo_sync_upload_by_url(allowing: Server, tables: TableServer) -> None:
    svc = pyvo.dal.TAPService(allowing.url + "/tap")
    check_sums(svc.run_sync(QUERY, uploads={"t": tables.url + "/t.xml"}).to_table())


def test_pyvo_async_upload_by_url(allowing: Server, tables: TableServer) -> None:
    svc = pyvo.dal.TAPService(allowing.url + "/tap")
    check_sums(svc.run_async(QUERY, uploads={"t": tables.url + "/text-xml"}).to_table())


def test_url_and_inline_uploads_in_one_request(allowing: Server, tables: TableServer) -> None:
    inline = vot(Table({"v": np.array([3, 5, 99], dtype=np.int32)}))
    query = "SELECT a.v FROM TAP_UPLOAD.t AS a JOIN TAP_UPLOAD.mine AS b ON a.v = b.v ORDER BY a.v"
    resp = httpx.post(allowing.url + "/tap/sync", data={
        "LANG": "ADQL", "QUERY": query, "UPLOAD": f"t,{tables.url}/t.xml;mine,param:p",
    }, files={"p": ("p.xml", inline)}, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    assert list(votable.parse_single_table(io.BytesIO(resp.content)).to_table()["v"]) == [3, 5]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_within_allowed_hosts(allowing: Server, tables: TableServer, code: int) -> None:
    svc = pyvo.dal.TAPService(allowing.url + "/tap")
    check_sums(svc.run_sync(QUERY, uploads={"t": f"{tables.url}/redirect?code={code}&to=/t.xml"}).to_table())


# -- what is refused ---------------------------------------------------------------------------

NON_PUBLIC = "non-public address"


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/t.xml", "http://localhost:{port}/t.xml", "http://[::1]:{port}/t.xml",
    "http://[::ffff:127.0.0.1]:{port}/t.xml", "http://10.0.0.1/t.xml", "http://192.168.1.1/t.xml",
    "http://169.254.169.254/latest/meta-data/", "https://127.0.0.1:{port}/t.xml", "http://0.0.0.0:{port}/t.xml",
])
def test_loopback_and_private_refused_by_default(server: Server, tables: TableServer, target: str) -> None:
    url = target.format(port=tables.url.rsplit(":", 1)[1])
    before = len(tables.hits)
    status, message = sync_error(server.url, url)
    assert status == 400 and NON_PUBLIC in message and "VLKB_UPLOAD_URL_ALLOW_HOSTS" in message, message
    assert len(tables.hits) == before, "the refused URL was fetched"


def test_loopback_refused_by_default_async(server: Server, tables: TableServer) -> None:
    before = len(tables.hits)
    assert NON_PUBLIC in async_error(server.url, tables.url + "/t.xml")
    assert len(tables.hits) == before


@pytest.mark.parametrize("to", [
    "http://127.0.0.2:{port}/t.xml",  # loopback, not the allowed address
    "http://10.0.0.1/t.xml", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/t.xml",
])
def test_redirect_into_forbidden_addresses(allowing: Server, tables: TableServer, to: str) -> None:
    target = to.format(port=tables.url.rsplit(":", 1)[1])
    status, message = sync_error(allowing.url, f"{tables.url}/redirect?to={target}")
    assert status == 400 and NON_PUBLIC in message, message


@pytest.mark.parametrize("path, fragment", [
    ("/big", "larger than the 50000 bytes"),
    ("/big-unsized", "larger than the 50000 bytes"),
    ("/slow", f"did not arrive within {TIMEOUT} s"),
    ("/html", "served as 'text/html', not a VOTable"),
    ("/gzip", "compressed"),
    ("/missing", "answered HTTP 404"),
    ("/loop", "redirects more than 5 times"),
    ("/doctype", "DOCTYPE"),  # the checks of inline uploads apply to fetched tables
    ("/redirect?to=ftp://127.0.0.1/t.xml", "only http and https"),
])
def test_bad_fetches_are_dali_errors(allowing: Server, tables: TableServer, path: str, fragment: str) -> None:
    status, message = sync_error(allowing.url, tables.url + path)
    assert status == 400 and fragment in message, message


@pytest.mark.parametrize("path, fragment", [
    ("/slow", f"did not arrive within {TIMEOUT} s"),
    ("/big-unsized", "larger than the 50000 bytes"),
    ("/redirect?to=http://10.0.0.1/t.xml", NON_PUBLIC),
])
def test_bad_fetches_end_async_jobs_in_error(allowing: Server, tables: TableServer, path: str,
                                             fragment: str) -> None:
    assert fragment in async_error(allowing.url, tables.url + path)


def test_other_schemes_refused_at_once(server: Server) -> None:
    for endpoint in ("/tap/sync", "/tap/async"):
        resp = httpx.post(server.url + endpoint, data={"LANG": "ADQL", "QUERY": QUERY,
                                                       "UPLOAD": "t,ftp://example.org/t.xml"})
        assert resp.status_code == 400
        assert "other URI schemes are not fetched" in status_of(resp.content)[1]


def test_fetch_does_not_block_the_service(allowing: Server, tables: TableServer) -> None:
    """While a slow fetch runs, the service answers (margin: each /health well within the fetch time)."""
    result: dict[str, tuple[int, str]] = {}
    worker = threading.Thread(target=lambda: result.update(r=sync_error(allowing.url, tables.url + "/slow")))
    worker.start()
    try:
        time.sleep(0.5)
        while worker.is_alive():
            assert httpx.get(allowing.url + "/health", timeout=TIMEOUT * 5).status_code == 200
            time.sleep(0.2)
    finally:
        worker.join()
    assert result["r"][0] == 400
