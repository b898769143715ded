"""The URLs the service writes (job locations, capabilities, DataLink and SIA access URLs) never
echo a forged ``Host`` header; HEAD answers like GET; the API docs check the caller like every route."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.conftest import running_server

EVIL = "evil.example"
QUERY = {"LANG": "ADQL", "QUERY": "SELECT TOP 5 designation, glon, glat FROM compactsources.band70um"}


@pytest.fixture(scope="module")
def image_did(database) -> str:
    with psycopg.connect(database.url) as c:
        return c.execute("SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = 'Hi-GAL' "
                         "ORDER BY obs_publisher_did LIMIT 1").fetchone()[0]


def written_urls(base: str, did: str, host: str) -> dict[str, tuple[str, str]]:
    """What the service writes for a client that sends ``Host: host``: the job Location, and the
    bodies of capabilities, SIA, DataLink, the job list and the landing page."""
    headers = {"Host": host}
    out = {}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as c:
        job = c.post("/tap/async", data=QUERY)
        assert job.status_code == 303, job.text
        out["job location"] = (job.headers["location"], "")
        page = c.get(urlsplit(job.headers["location"]).path)
        out["job document"] = ("", page.text)
        for name, path, params in (
            ("tap capabilities", "/tap/capabilities", None),
            ("sia capabilities", "/sia/capabilities", None),
            ("sia query", "/sia/query", {"POS": "CIRCLE 0 0 2", "POSSYS": "GALACTIC"}),
            ("datalink", "/datalink/links", {"ID": did}),
            ("job list", "/tap/async", None),
            ("landing page", "/", None),
        ):
            r = c.get(path, params=params)
            assert r.status_code == 200, (name, r.text[:300])
            out[name] = ("", r.text)
    return out


def test_forged_host_never_appears_in_a_written_url(server, image_did) -> None:
    for name, (header, body) in written_urls(server.url, image_did, EVIL).items():
        assert EVIL not in header and EVIL not in body, name
    # what it writes instead is the listening address, which works for this client
    urls = written_urls(server.url, image_did, EVIL)
    assert urls["job location"][0].startswith(server.url + "/tap/async/")
    assert f">{server.url}/tap<" in urls["tap capabilities"][1]
    assert f'{server.url}/soda/sync' in urls["datalink"][1]


@pytest.mark.parametrize("forged", [
    "evil.example:{port}", "127.0.0.1:1", "127.0.0.1:{port}@evil.example", "evil.example#127.0.0.1:{port}",
    "127.0.0.1:{port}/evil.example", "[::1", "",
])
def test_odd_host_headers_get_the_listening_address(server, forged) -> None:
    port = server.url.rsplit(":", 1)[1]
    host = forged.format(port=port)
    r = httpx.post(server.url + "/tap/async", data=QUERY, headers={"Host": host}, timeout=30)
    if r.status_code == 400:  # the server itself refused the header: nothing was written
        return
    assert r.status_code == 303
    assert r.headers["location"].startswith(server.url + "/tap/async/"), (host, r.headers["location"])


def test_loopback_names_and_allowed_hosts_are_used(database, image_did) -> None:
    with running_server(database, allowed_hosts='["vo.test"]') as srv:
        port = srv.url.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"vo.test:{port}", f"VO.test:{port}"):
            urls = written_urls(srv.url, image_did, host)
            assert urls["job location"][0].startswith(f"http://{host}/tap/async/"), host
            assert f"http://{host}/soda/sync" in urls["datalink"][1]
        # another port than the listening one is not ours to name
        urls = written_urls(srv.url, image_did, "vo.test:9")
        assert urls["job location"][0].startswith(srv.url + "/tap/async/")


def test_configured_base_url_wins(database, image_did) -> None:
    with running_server(database, base_url="https://vo.example.org/vlkb/") as srv:
        urls = written_urls(srv.url, image_did, EVIL)
        assert urls["job location"][0].startswith("https://vo.example.org/vlkb/tap/async/")
        assert ">https://vo.example.org/vlkb/tap<" in urls["tap capabilities"][1]


# -- HEAD: the status and headers of GET, no body -------------------------------------------


def head_cases(did: str) -> list[tuple[str, dict[str, str] | None]]:
    return [
        ("/tap/sync", QUERY),
        ("/tap/sync", {"LANG": "ADQL", "QUERY": "SELECT nope FROM nowhere"}),  # 400 for both
        ("/tap/sync", {"LANG": "ADQL", "QUERY": "SELECT * FROM compactsources.band70um"}),  # a long stream
        ("/sia/query", {"POS": "CIRCLE 0 0 2", "POSSYS": "GALACTIC"}),
        ("/datalink/links", {"ID": did}),
        ("/soda/sync", {"ID": did, "CIRCLE": "0 0 0.05", "POSSYS": "GALACTIC"}),
        ("/tap/capabilities", None),
        ("/tap/availability", None),
        ("/tap/tables", None),
        ("/sia/availability", None),
        ("/health", None),
        ("/", None),
        ("/api/docs", None),
        ("/api/openapi.json", None),
        ("/no/such/page", None),
    ]


def test_head_answers_like_get(server, image_did) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for path, params in head_cases(image_did):
            got = c.get(path, params=params)
            head = c.head(path, params=params)
            assert head.status_code == got.status_code, (path, params, head.status_code, got.status_code)
            assert head.headers.get("content-type") == got.headers.get("content-type"), path
            assert head.content == b"", path
            if "content-length" in got.headers:
                assert head.headers["content-length"] == got.headers["content-length"], path
        # the service goes on answering on the same connection after a HEAD cut a stream short
        assert c.get("/tap/sync", params=QUERY).status_code == 200


def test_api_docs_check_the_caller(auth_server, issuer) -> None:
    server = auth_server
    token = issuer.token("alice")
    for path in ("/api/docs", "/api/openapi.json"):
        assert httpx.get(server.url + path, timeout=30).status_code == 200, path
        good = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert good.status_code == 200, path
        for method in ("GET", "HEAD"):
            bad = httpx.request(method, server.url + path, headers={"Authorization": "Bearer not.a.token"},
                                timeout=30)
            assert bad.status_code == 401, (method, path)
            assert bad.headers["www-authenticate"].startswith("Bearer"), path
    spec = httpx.get(server.url + "/api/openapi.json", timeout=30).json()
    assert "/tap/sync" in spec["paths"]
