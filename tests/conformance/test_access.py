"""Who sees what: the access matrix over a real OIDC issuer, a real server and the demo's restricted survey.

Callers: anonymous, a member of ``survey-team`` (the group of MeerKAT-private), a user in
another group, and four bad tokens (expired, forged signature, ``alg=none``, wrong audience).
Expected values come from the database read as its owner (no row-level security), so every
cell checks the service against an independent count.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
import psycopg
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table

from tests.conftest import VLKB, Server
from tests.oidc_issuer import TestIssuer
from vo.soda import INLINE_BYTES

PRIVATE = "MeerKAT-private"
GROUP = "survey-team"
CALLERS = ("anonymous", "member", "outsider")
BAD_TOKENS = ("expired", "forged", "alg-none", "wrong-audience", "wrong-issuer", "garbage")


@dataclass(frozen=True)
class Truth:
    """What the database holds, read as its owner."""

    total: int
    private: int
    private_dids: list[str]
    private_centre: tuple[float, float]
    public_did: str
    #: how many restricted footprints contain the first one's centre
    covering: int


@pytest.fixture(scope="module")
def truth(database) -> Truth:
    with psycopg.connect(database.url) as c:
        total = c.execute("SELECT count(*) FROM ivoa.obscore").fetchone()[0]
        dids = [r[0] for r in c.execute("SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = %s "
                                        "ORDER BY 1", (PRIVATE,))]
        ra, dec = c.execute("SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_publisher_did = %s",
                            (dids[0],)).fetchone()
        public = c.execute("SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = 'Hi-GAL' "
                           "ORDER BY 1 LIMIT 1").fetchone()[0]
        covering = c.execute("SELECT count(*) FROM ivoa.obscore WHERE obs_collection = %s "
                             "AND spoint(radians(%s), radians(%s)) <@ s_region", (PRIVATE, ra, dec)).fetchone()[0]
    assert dids, "the demo has a restricted survey"
    assert covering >= 1
    return Truth(total, len(dids), dids, (ra, dec), public, covering)


def headers(issuer: TestIssuer, who: str) -> dict[str, str]:
    tokens = {
        "anonymous": None,
        "member": lambda: issuer.token("alice", [GROUP, "other"]),
        "outsider": lambda: issuer.token("bob", ["other"]),
        "expired": lambda: issuer.token("alice", [GROUP], exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                        nbf=int(time.time()) - 7200),
        "forged": lambda: issuer.forged("alice", [GROUP]),
        "alg-none": lambda: issuer.unsigned("alice", [GROUP]),
        "wrong-audience": lambda: issuer.token("alice", [GROUP], aud="someone-else"),
        "wrong-issuer": lambda: issuer.token("alice", [GROUP], iss="https://evil.example.org"),
        "garbage": lambda: "not.a.token",
    }
    make = tokens[who]
    return {} if make is None else {"Authorization": f"Bearer {make()}"}


def tap(server: Server, issuer: TestIssuer, who: str, query: str) -> httpx.Response:
    return httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv"},
                      headers=headers(issuer, who), timeout=60)


def csv_rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text[:300]
    return [line.split(",") for line in resp.text.strip().splitlines()[1:]]


def sees_private(who: str) -> bool:
    return who == "member"


# -- TAP -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("who", CALLERS)
def test_tap_rows_counts_joins_and_subqueries(auth_server, issuer, truth, who) -> None:
    visible = truth.private if sees_private(who) else 0
    rows = csv_rows(tap(auth_server, issuer, who,
                        f"SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = '{PRIVATE}'"))
    assert sorted(r[0] for r in rows) == (truth.private_dids if visible else [])
    count = csv_rows(tap(auth_server, issuer, who, "SELECT COUNT(*) AS n FROM ivoa.obscore"))
    assert int(count[0][0]) == truth.total - truth.private + visible
    grouped = csv_rows(tap(auth_server, issuer, who,
                           "SELECT obs_collection, COUNT(*) AS n FROM ivoa.obscore GROUP BY obs_collection"))
    assert (PRIVATE in {r[0] for r in grouped}) is bool(visible)
    joined = csv_rows(tap(auth_server, issuer, who,
                          "SELECT COUNT(*) AS n FROM ivoa.obscore AS o JOIN datasets.surveys AS s "
                          f"ON s.name = o.obs_collection WHERE s.name = '{PRIVATE}'"))
    assert int(joined[0][0]) == visible
    sub = csv_rows(tap(auth_server, issuer, who,
                       "SELECT COUNT(*) AS n FROM (SELECT obs_collection FROM ivoa.obscore "
                       "WHERE obs_collection LIKE 'MeerKAT%') AS q"))
    assert int(sub[0][0]) == visible
    surveys = csv_rows(tap(auth_server, issuer, who, f"SELECT name FROM datasets.surveys WHERE name = '{PRIVATE}'"))
    assert len(surveys) == (1 if visible else 0)
    # a spatial search cannot tell that a restricted dataset covers a position
    ra, dec = truth.private_centre
    cone = csv_rows(tap(auth_server, issuer, who,
                        "SELECT obs_collection FROM ivoa.obscore WHERE 1 = CONTAINS(POINT('ICRS', "
                        f"{ra}, {dec}), s_region)"))
    assert (PRIVATE in {r[0] for r in cone}) is bool(visible)


@pytest.mark.parametrize("who", CALLERS)
def test_tap_schema_is_the_same_for_everyone(auth_server, issuer, who) -> None:
    # no published table is restricted as a whole: the schema is public, the rows are not
    rows = csv_rows(tap(auth_server, issuer, who, "SELECT table_name FROM TAP_SCHEMA.tables ORDER BY table_name"))
    reference = csv_rows(tap(auth_server, issuer, "anonymous",
                             "SELECT table_name FROM TAP_SCHEMA.tables ORDER BY table_name"))
    assert rows == reference and ["ivoa.obscore"] in rows


@pytest.mark.parametrize("who", BAD_TOKENS)
def test_bad_tokens_get_401_with_a_bearer_challenge_everywhere(auth_server, issuer, truth, who) -> None:
    did = quote(truth.public_did, safe="")
    requests = [
        ("POST", "/tap/sync", {"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM ivoa.obscore"}),
        ("GET", "/tap/async", None),
        ("GET", "/sia/query?POS=CIRCLE+0+0+1", None),
        ("GET", f"/datalink/links?ID={did}", None),
        ("GET", f"/soda/sync?ID={did}&CIRCLE=0+0+0.1", None),
    ]
    for method, path, data in requests:
        resp = httpx.request(method, auth_server.url + path, data=data, headers=headers(issuer, who), timeout=30)
        assert resp.status_code == 401, (who, path, resp.status_code)
        challenge = resp.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="vlkb"') and 'error="invalid_token"' in challenge
        assert b'QUERY_STATUS" value="ERROR"' in resp.content
        assert "x-vo-authenticated" not in resp.headers


def test_identity_header_and_optional_auth_challenge(auth_server, issuer) -> None:
    anonymous = httpx.get(auth_server.url + "/tap/capabilities", timeout=30)
    assert anonymous.status_code == 200 and "x-vo-authenticated" not in anonymous.headers
    # AuthVO: optional authentication is announced by a challenge on a 200 from capabilities
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    head = httpx.head(auth_server.url + "/tap/capabilities", timeout=30)
    assert head.status_code == 200 and head.headers["www-authenticate"].startswith("Bearer")
    doc = ElementTree.fromstring(anonymous.content)
    methods = [m.get("standardID") for m in doc.iter("securityMethod")]
    assert methods == [None, "ivo://ivoa.net/sso#token"]
    member = httpx.get(auth_server.url + "/tap/availability", headers=headers(issuer, "member"), timeout=30)
    assert member.headers["x-vo-authenticated"] == "alice"


# -- SIA, DataLink, SODA, previews --------------------------------------------------------------

@pytest.mark.parametrize("who", CALLERS)
def test_sia_datalink_soda_and_previews(auth_server, issuer, truth, who) -> None:
    h = headers(issuer, who)
    visible = sees_private(who)
    ra, dec = truth.private_centre
    sia = httpx.get(auth_server.url + "/sia/query", params={"POS": f"CIRCLE {ra} {dec} 0.05"}, headers=h, timeout=30)
    assert sia.status_code == 200
    found = {str(d) for d in parse_single_table(io.BytesIO(sia.content)).array["obs_publisher_did"]}
    assert (truth.private_dids[0] in found) is visible

    did = truth.private_dids[0]
    links = httpx.get(auth_server.url + "/datalink/links", params={"ID": did}, headers=h, timeout=30)
    assert links.status_code == 200
    table = parse_single_table(io.BytesIO(links.content)).array
    semantics = {str(s) for s in table["semantics"]}
    if visible:
        assert {"#this", "#cutout", "#preview"} <= semantics
        access = {str(s): str(u) for s, u in zip(table["semantics"], table["access_url"], strict=True)}
        preview = httpx.get(access["#preview"], headers=h, timeout=60)
        assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
        this = httpx.get(access["#this"], headers=h, timeout=60)
        assert this.status_code == 200 and this.content.startswith(b"SIMPLE")
        # the same URLs without the token: nothing
        assert httpx.get(access["#preview"], timeout=30).status_code == 404
        assert httpx.get(access["#this"], timeout=30).status_code == 404
    else:
        errors = [str(e) for e in table["error_message"]]
        assert semantics == {"#this"} and all(e.startswith("NotFoundFault") for e in errors)

    cut = httpx.get(auth_server.url + "/soda/sync", params={"ID": did, "CIRCLE": f"{ra} {dec} 0.02"},
                    headers=h, timeout=60)
    if visible:
        assert cut.status_code == 200
        assert fits.open(io.BytesIO(cut.content))[0].data.size > 0
    else:
        assert cut.status_code == 404
        # hidden and missing read the same
        missing = httpx.get(auth_server.url + "/soda/sync", params={"ID": did + "x", "CIRCLE": f"{ra} {dec} 0.02"},
                            headers=h, timeout=60)
        assert missing.status_code == 404
        assert re.sub(rb"[^ ]*" + re.escape(did.encode()) + rb"x?", b"ID", missing.content) == \
            re.sub(rb"[^ ]*" + re.escape(did.encode()) + rb"x?", b"ID", cut.content)


@pytest.mark.parametrize("radius", [0.02, 0.3], ids=["answered whole", "streamed"])
def test_cuts_of_a_private_dataset_by_its_member_open_it_to_no_one_else(auth_server, issuer, truth, radius) -> None:
    """The service plans the next cut of a DID cut lately while its lookup runs (issue 16): the
    member's cuts must not let an outsider or an anonymous caller have the next one."""
    did = truth.private_dids[0]
    ra, dec = truth.private_centre

    def cut(who: str, suffix: str = "") -> httpx.Response:
        return httpx.get(auth_server.url + "/soda/sync", params={"ID": did + suffix, "CIRCLE": f"{ra} {dec} {radius}"},
                         headers=headers(issuer, who), timeout=60)

    first = cut("member")
    assert first.status_code == 200 and fits.open(io.BytesIO(first.content))[0].data.size > 0
    assert (len(first.content) > INLINE_BYTES) == (radius > 0.1)
    for who in ("outsider", "anonymous", "member", "anonymous", "outsider"):
        resp = cut(who)
        if who == "member":
            assert resp.status_code == 200 and resp.content == first.content
            continue
        missing = cut(who, "x")
        assert resp.status_code == missing.status_code == 404, who
        assert b"SIMPLE" not in resp.content
        assert resp.content.replace(did.encode(), b"ID") == missing.content.replace(did.encode() + b"x", b"ID")


# -- UWS -----------------------------------------------------------------------------------------

def _job(server: Server, h: dict[str, str], query: str) -> str:
    resp = httpx.post(server.url + "/tap/async", data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv",
                                                      "PHASE": "RUN"}, headers=h, timeout=30)
    assert resp.status_code == 303
    job = resp.headers["location"]
    done = httpx.get(job, params={"WAIT": "30", "PHASE": "EXECUTING"}, headers=h, timeout=60)
    assert done.status_code == 200
    for _ in range(100):
        if httpx.get(job + "/phase", headers=h, timeout=30).text in ("COMPLETED", "ERROR"):
            break
        time.sleep(0.1)
    return job


def test_jobs_belong_to_their_owner_and_read_what_the_owner_may(auth_server, issuer, truth) -> None:
    alice, bob = headers(issuer, "member"), headers(issuer, "outsider")
    query = f"SELECT COUNT(*) AS n FROM ivoa.obscore WHERE obs_collection = '{PRIVATE}'"
    job = _job(auth_server, alice, query)
    result = httpx.get(job + "/results/result", headers=alice, timeout=30)
    assert result.status_code == 200 and int(result.text.split()[-1]) == truth.private
    assert httpx.get(job + "/owner", headers=alice, timeout=30).text == "alice"
    assert job.rsplit("/", 1)[1] in httpx.get(auth_server.url + "/tap/async", headers=alice, timeout=30).text
    # bob, and anonymous callers, cannot list, read, change, abort, delete or fetch it
    for h in (bob, {}):
        assert job.rsplit("/", 1)[1] not in httpx.get(auth_server.url + "/tap/async", headers=h, timeout=30).text
        for path in ("", "/phase", "/parameters", "/results", "/results/result", "/error", "/owner", "/quote"):
            assert httpx.get(job + path, headers=h, timeout=30).status_code == 404, path
        assert httpx.post(job + "/phase", data={"PHASE": "ABORT"}, headers=h, timeout=30).status_code == 404
        assert httpx.post(job + "/destruction", data={"DESTRUCTION": "2030-01-01T00:00:00Z"}, headers=h,
                          timeout=30).status_code == 404
        assert httpx.post(job, data={"ACTION": "DELETE"}, headers=h, timeout=30).status_code == 404
        assert httpx.delete(job, headers=h, timeout=30).status_code == 404
    assert httpx.get(job + "/phase", headers=alice, timeout=30).text == "COMPLETED"
    # bob's own job of the same query sees no restricted row
    other = _job(auth_server, bob, query)
    assert int(httpx.get(other + "/results/result", headers=bob, timeout=30).text.split()[-1]) == 0
    assert httpx.delete(job, headers=alice, timeout=30, follow_redirects=False).status_code == 303


# -- policies and the development issuer ---------------------------------------------------------

def _vlkb(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VLKB, *args], env=server.env, capture_output=True, text=True, timeout=120)


def test_policy_changes_apply_at_once_to_every_table(auth_server, issuer, truth, database) -> None:
    count = "SELECT COUNT(*) AS n FROM compactsources.band70um"
    with psycopg.connect(database.url) as c:
        catalogue = c.execute("SELECT count(*) FROM compactsources.band70um").fetchone()[0]
        survey = c.execute("SELECT DISTINCT survey FROM compactsources.band70um").fetchone()[0]
    assert catalogue > 0
    assert int(csv_rows(tap(auth_server, issuer, "anonymous", count))[0][0]) == catalogue
    done = _vlkb(auth_server, "policy", "set", survey, "--groups", "hi-gal-team")
    try:
        assert done.returncode == 0, done.stderr
        assert int(csv_rows(tap(auth_server, issuer, "anonymous", count))[0][0]) == 0
        assert int(csv_rows(tap(auth_server, issuer, "member", count))[0][0]) == 0
        team = {"Authorization": "Bearer " + issuer.token("carol", ["hi-gal-team"])}
        resp = httpx.post(auth_server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": count, "FORMAT": "csv"},
                          headers=team, timeout=60)
        assert int(csv_rows(resp)[0][0]) == catalogue
        listing = _vlkb(auth_server, "policy", "list").stdout
        assert re.search(rf"^{re.escape(survey)}\s+\d+\s+hi-gal-team$", listing, re.M), listing
        assert re.search(rf"^{re.escape(PRIVATE)}\s+{truth.private}\s+{GROUP}$", listing, re.M), listing
    finally:
        assert _vlkb(auth_server, "policy", "set", survey, "--public").returncode == 0
    assert int(csv_rows(tap(auth_server, issuer, "anonymous", count))[0][0]) == catalogue
    assert _vlkb(auth_server, "policy", "set", survey).returncode != 0  # neither --groups nor --public


def test_key_rotation(auth_server, issuer) -> None:
    query = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.obscore", "FORMAT": "csv"}
    before = issuer.token("alice", [GROUP])
    assert httpx.post(auth_server.url + "/tap/sync", data=query, timeout=30,
                      headers={"Authorization": f"Bearer {before}"}).status_code == 200
    old = issuer.rotate()
    fresh = issuer.token("alice", [GROUP])
    assert httpx.post(auth_server.url + "/tap/sync", data=query, timeout=30,
                      headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    stale = issuer.token("alice", [GROUP], key=old)
    resp = httpx.post(auth_server.url + "/tap/sync", data=query, timeout=30,
                      headers={"Authorization": f"Bearer {stale}"})
    assert resp.status_code == 401 and "key" in resp.headers["www-authenticate"]


def test_dev_issuer_in_the_embedded_default(server, truth) -> None:
    query = {"LANG": "ADQL", "QUERY": f"SELECT obs_id FROM ivoa.obscore WHERE obs_collection = '{PRIVATE}'",
             "FORMAT": "csv"}
    token = _vlkb(server, "dev-token", "--user", "alice", "--groups", GROUP)
    assert token.returncode == 0, token.stderr
    with_token = httpx.post(server.url + "/tap/sync", data=query, timeout=30,
                            headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert len(csv_rows(with_token)) == truth.private and with_token.headers["x-vo-authenticated"] == "alice"
    assert csv_rows(httpx.post(server.url + "/tap/sync", data=query, timeout=30)) == []
    # never outside the embedded default
    elsewhere = subprocess.run([VLKB, "dev-token", "--user", "x"], capture_output=True, text=True, timeout=60,
                               env={**server.env, "VLKB_OIDC_ISSUER": "https://login.example.org"})
    assert elsewhere.returncode != 0 and "embedded default" in elsewhere.stderr


def test_dev_tokens_are_refused_by_a_real_deployment(auth_server, server) -> None:
    token = _vlkb(server, "dev-token", "--user", "mallory", "--groups", GROUP).stdout.strip()
    resp = httpx.post(auth_server.url + "/tap/sync", timeout=30, headers={"Authorization": f"Bearer {token}"},
                      data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.obscore"})
    assert resp.status_code == 401


def _soda_job(server: Server, h: dict[str, str], prefix: str, data: dict[str, list[str]]) -> str:
    resp = httpx.post(server.url + prefix, data=data, params={"PHASE": "RUN"}, headers=h, timeout=30)
    assert resp.status_code == 303, resp.text[:300]
    job = resp.headers["location"]
    for _ in range(600):
        phase = httpx.get(job + "/phase", headers=h, timeout=30).text
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            return phase
        time.sleep(0.1)
    raise AssertionError(f"{job} still {phase}")


@pytest.mark.parametrize("who", CALLERS)
def test_soda_async_and_merge(auth_server, issuer, truth, who) -> None:
    h = headers(issuer, who)
    ra, dec = truth.private_centre
    region = f"CIRCLE {ra} {dec} 0.02"
    expected = "COMPLETED" if sees_private(who) else "ERROR"
    # the job runs later, in the background, with the groups its owner had when creating it
    assert _soda_job(auth_server, h, "/soda/async", {"ID": [truth.private_dids[0]], "POS": [region]}) == expected
    assert _soda_job(auth_server, h, "/soda/merge/async",
                     {"ID": truth.private_dids[:2], "POS": [region]}) == expected
    merged = httpx.get(auth_server.url + "/soda/merge", params=[("ID", d) for d in truth.private_dids[:2]]
                       + [("POS", region)], headers=h, timeout=120)
    if sees_private(who):
        assert merged.status_code == 200 and merged.headers["content-type"] == "application/fits"
    else:
        assert merged.status_code == 404 and b"NotFoundFault" in merged.content


@pytest.mark.parametrize("who", CALLERS)
def test_stamps_of_the_restricted_survey_need_the_group(auth_server, issuer, truth, who) -> None:
    h = headers(issuer, who)
    ra, dec = truth.private_centre
    survey = f"{PRIVATE}/1284 MHz"
    params = {"SURVEY": survey, "POS": f"CIRCLE {ra} {dec} 0.01"}
    sync = httpx.post(auth_server.url + "/stamps/sync", data=params, headers=h, timeout=120)
    job = _soda_job(auth_server, h, "/stamps/async", {k: [v] for k, v in params.items()})
    if sees_private(who):
        assert sync.status_code == 200 and sync.headers["content-type"] == "application/fits"
        assert fits.open(io.BytesIO(sync.content))[1].header["EXTNAME"] == survey
        assert job == "COMPLETED"
    else:
        # a survey the caller may not read is unknown to them, exactly like a misspelt one
        assert sync.status_code == 400 and b"unknown survey" in sync.content
        assert job == "ERROR"


@pytest.mark.parametrize("who", CALLERS)
def test_tap_upload_joins_see_only_what_the_caller_may(auth_server, issuer, truth, who) -> None:
    from astropy.io.votable import from_table
    from astropy.table import Table

    ra, dec = truth.private_centre
    buf = io.BytesIO()
    from_table(Table({"ra": [ra, 0.0], "dec": [dec, 0.0]})).to_xml(buf)
    query = ("SELECT COUNT(*) AS n FROM TAP_UPLOAD.pts AS u JOIN ivoa.obscore AS o "
             "ON 1 = CONTAINS(POINT('ICRS', u.ra, u.dec), o.s_region) "
             f"WHERE o.obs_collection = '{PRIVATE}'")
    resp = httpx.post(auth_server.url + "/tap/sync", headers=headers(issuer, who), timeout=60,
                      data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv", "UPLOAD": "pts,param:pts"},
                      files={"pts": ("pts.xml", buf.getvalue(), "application/x-votable+xml")})
    assert int(csv_rows(resp)[0][0]) == (truth.covering if sees_private(who) else 0)


@pytest.mark.parametrize("who", CALLERS)
def test_vialactea_search_sees_only_what_the_caller_may(auth_server, issuer, truth, who) -> None:
    from astropy.coordinates import SkyCoord

    ra, dec = truth.private_centre
    gal = SkyCoord(ra, dec, unit="deg").galactic
    h = headers(issuer, who)
    legacy = httpx.get(auth_server.url + "/vlkb/datasets/vlkb_search", headers=h, timeout=60,
                       params={"l": gal.l.deg, "b": gal.b.deg, "r": 0.02, "vl": -500000, "vu": 500000})
    assert legacy.status_code == 200
    surveys = {e.text for e in ElementTree.fromstring(legacy.content).iter("Survey")}
    assert (PRIVATE in surveys) is sees_private(who)
    dids = {e.text.strip() for e in ElementTree.fromstring(legacy.content).iter("PublisherDID") if e.text}
    assert (truth.private_dids[0] in dids) is sees_private(who)


@pytest.mark.parametrize("who", CALLERS)
def test_sfind_jobs_read_what_the_owner_may(auth_server, issuer, truth, who) -> None:
    """Source finding reads a restricted image only for its group; for others it is missing, with the
    same message as a dataset that does not exist."""
    h = headers(issuer, who)
    ra, dec = truth.private_centre
    data = {"APP": ["aegean"], "ID": [truth.private_dids[0]], "POS": [f"CIRCLE {ra} {dec} 0.05"]}
    expected = "COMPLETED" if sees_private(who) else "ERROR"
    assert _soda_job(auth_server, h, "/sfind/async", data) == expected


# -- persistent user tables (issue 17): the one rule of db/sql/access.sql over user tables ---------

@pytest.fixture(scope="module")
def shared_table(auth_server, issuer):
    """A user table of ``carol``, shared with ``survey-team`` (the member's group, not the outsider's),
    joining the restricted survey's positions; dropped at the end (TAP_SCHEMA differs while it exists)."""
    from astropy.table import Table

    from vo.usertables import schema_of

    name = f"{schema_of('carol')}.matrix"
    out = io.StringIO()
    Table({"k": [1, 2, 3], "ra": [1.0, 2.0, 3.0], "dec": [4.0, 5.0, 6.0]}).write(out, format="ascii.csv")
    auth = {"Authorization": f"Bearer {issuer.token('carol', ['carol-own'])}"}
    resp = httpx.put(f"{auth_server.url}/tap/tables/{name}", content=out.getvalue().encode(), timeout=60,
                     params={"READ_GROUPS": GROUP}, headers={**auth, "Content-Type": "text/csv"})
    assert resp.status_code == 201, resp.text[:300]
    yield name
    assert httpx.delete(f"{auth_server.url}/tap/tables/{name}", headers=auth, timeout=60).status_code == 204


@pytest.mark.parametrize("who", CALLERS)
def test_user_tables_are_read_by_the_groups_they_are_shared_with(auth_server, issuer, shared_table, who) -> None:
    name = shared_table
    missing = name.split(".")[0] + ".absent"
    h = headers(issuer, who)
    resp = tap(auth_server, issuer, who, f"SELECT SUM(k) AS s FROM {name}")
    listed = csv_rows(tap(auth_server, issuer, who,
                          f"SELECT COUNT(*) AS n FROM TAP_SCHEMA.tables WHERE table_name = '{name}'"))
    vosi = httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=h, timeout=60)
    tableset = httpx.get(f"{auth_server.url}/tap/tables", headers=h, timeout=60)
    if sees_private(who):
        assert csv_rows(resp) == [["6"]]
        assert listed == [["1"]] and vosi.status_code == 200 and f"<name>{name}</name>" in tableset.text
        return
    # anyone else gets exactly what a table that does not exist gets
    ref = tap(auth_server, issuer, who, f"SELECT SUM(k) AS s FROM {missing}")
    assert (resp.status_code, resp.text.replace(name, "X")) == (ref.status_code, ref.text.replace(missing, "X"))
    ref_vosi = httpx.get(f"{auth_server.url}/tap/tables/{missing}", headers=h, timeout=60)
    assert (vosi.status_code, vosi.text.replace(name, "X")) == (404, ref_vosi.text.replace(missing, "X"))
    assert listed == [["0"]] and name not in tableset.text
    # and may not change it: the member of another group gets "missing", anonymous "authenticate"
    gone = httpx.delete(f"{auth_server.url}/tap/tables/{name}", headers=h, timeout=60)
    assert gone.status_code == (401 if who == "anonymous" else 404)


# -- the translation cache (vo/tap.py, issue 16) -------------------------------------------------

def test_a_cached_translation_never_carries_rows_across_callers(auth_server, issuer, truth) -> None:
    """The same query text, sent by callers with different rights back to back (so the second and
    later are answered from the translation cache): each sees exactly its own rows."""
    query = (f"SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = '{PRIVATE}' "
             "ORDER BY obs_publisher_did")
    for who in ("member", "anonymous", "member", "outsider", "anonymous", "member"):
        dids = [r[0] for r in csv_rows(tap(auth_server, issuer, who, query))]
        assert dids == (truth.private_dids if sees_private(who) else []), who
