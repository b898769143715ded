"""Contract C (authentication): Bearer tokens on every ViaLactea path, and the optional Basic accounts
of the TAP base, with the same policies as everywhere else (the demo's restricted survey)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import bcrypt
import httpx
import pytest

from tests.conftest import Server, running_server
from tests.oidc_issuer import TestIssuer
from tests.vialactea.client import parse_search, split_tabs
from vo.vialactea.accounts import sha256_hash

PRIVATE = "MeerKAT-private"
GROUP = "survey-team"
QUERY = {"REQUEST": "doQuery", "VERSION": "1.0", "LANG": "ADQL", "FORMAT": "tsv",
         "QUERY": "SELECT name FROM datasets.surveys"}
REGION = {"POS": "RANGE 0 1 -1 1", "POSSYS": "GALACTIC"}


def surveys(server: Server, headers: dict[str, str]) -> set[str]:
    resp = httpx.post(server.url + "/vlkb/sync", data=QUERY, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return {row[0] for row in split_tabs(resp.content)[1]}


def private_rows(server: Server, headers: dict[str, str]) -> list:
    resp = httpx.get(server.url + "/vlkb/datasets/siav2/query", params=REGION, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return [r for r in parse_search(resp.content) if r.values["obs_collection"] == PRIVATE and r.overlap_sky]


def private_dids(server: Server, headers: dict[str, str]) -> list[str]:
    return [r.values["obs_publisher_did"] for r in private_rows(server, headers)]


def test_bearer_on_every_path(auth_server: Server, issuer: TestIssuer) -> None:
    member = {"Authorization": f"Bearer {issuer.token('alice', [GROUP])}"}
    outsider = {"Authorization": f"Bearer {issuer.token('bob', ['other'])}"}
    assert PRIVATE in surveys(auth_server, member)
    assert PRIVATE not in surveys(auth_server, outsider) | surveys(auth_server, {})
    rows = private_rows(auth_server, member)
    assert rows and not private_dids(auth_server, {})
    corners = rows[0].corners
    lon = sum((c[0] + 180) % 360 - 180 for c in corners) / 4 % 360
    lat = sum(c[1] for c in corners) / 4
    cut = {"ID": rows[0].values["obs_publisher_did"], "POS": f"CIRCLE {lon} {lat} 0.05", "POSSYS": "GALACTIC"}
    url = auth_server.url + "/vlkb/datasets/soda/sync"
    ok = httpx.get(url, params=cut, headers=member, timeout=60)
    assert ok.status_code == 200 and ok.content.startswith(b"SIMPLE")
    assert httpx.get(url, params=cut, headers=outsider, timeout=60).status_code == 404
    # a bad token is a 401 on the client's paths too, never a silent anonymous answer
    bad = {"Authorization": f"Bearer {issuer.forged('alice', [GROUP])}"}
    for path in ("/vlkb/sync", "/vlkb/datasets/siav2/query", "/vlkb/datasets/soda/sync", "/vlkb/async"):
        assert httpx.get(auth_server.url + path, headers=bad, timeout=30).status_code == 401
    # jobs on /vlkb/async belong to their owner
    job = httpx.post(auth_server.url + "/vlkb/async", data={**QUERY, "FORMAT": "votable"}, headers=member,
                     timeout=30)
    assert job.status_code == 303
    assert httpx.get(job.headers["location"], headers=outsider, timeout=30).status_code in (403, 404)
    assert httpx.get(job.headers["location"], headers=member, timeout=30).status_code == 200


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def basic_server(database) -> Iterator[Server]:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    accounts = f"carol:{hashed}:{GROUP};dave:{sha256_hash('pw', 'salt1')}"
    with running_server(database, vialactea_basic_accounts=accounts) as srv:
        yield srv


def test_basic_accounts_on_the_tap_base(basic_server: Server) -> None:
    assert PRIVATE in surveys(basic_server, basic("carol", "s3cret"))
    assert PRIVATE not in surveys(basic_server, basic("dave", "pw"))  # an account without the group
    resp = httpx.post(basic_server.url + "/vlkb/sync", data=QUERY, headers=basic("carol", "wrong"), timeout=30)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Basic ")
    assert b'value="ERROR"' in resp.content
    who = httpx.get(basic_server.url + "/vlkb/availability", headers=basic("carol", "s3cret"), timeout=30)
    assert who.headers["x-vo-authenticated"] == "carol"
    # with accounts configured, a query with no credentials is challenged, as builds that log in
    # only when asked expect; the VOSI endpoints stay anonymous
    challenged = httpx.post(basic_server.url + "/vlkb/sync", data=QUERY, timeout=30)
    assert challenged.status_code == 401 and b'value="ERROR"' in challenged.content
    assert challenged.headers["www-authenticate"].startswith('Basic realm="vlkb"')
    assert 'Bearer realm="vlkb"' in challenged.headers["www-authenticate"]
    assert httpx.get(basic_server.url + "/vlkb/async", timeout=30).status_code == 401
    assert httpx.get(basic_server.url + "/vlkb/availability", timeout=30).status_code == 200
    assert httpx.get(basic_server.url + "/vlkb/tables", timeout=30).status_code == 200
    # the datasets base and the standard services leave Basic alone: anonymous
    assert not private_dids(basic_server, basic("carol", "s3cret"))
    resp = httpx.post(basic_server.url + "/tap/sync", data=QUERY, headers=basic("carol", "s3cret"), timeout=30)
    assert PRIVATE not in {r[0] for r in split_tabs(resp.content)[1]}


def test_basic_is_off_by_default(server: Server) -> None:
    # no account list: Basic credentials are not ours to judge and the caller stays anonymous
    assert PRIVATE not in surveys(server, basic("carol", "s3cret"))
