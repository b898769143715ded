"""The OAI-PMH publishing registry against a real server: every answer validates against the
OAI-PMH, Registry Interfaces, VOResource, VODataService 1.2, TAPRegExt and SIA schemas; a harvest
split by resumption tokens returns each record once; the protocol's error codes; pyvo reads the
service's capabilities from its record and uses them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import astropy.units as u
import httpx
import numpy as np
import psycopg
import pytest
import pyvo
from lxml import etree
from mocpy import MOC

from db.policies import set_policy
from schemas import published_tables
from tests.conftest import Server, running_server
from tests.xsd import assert_valid

OAI = "http://www.openarchives.org/OAI/2.0/"
RI = "http://www.ivoa.net/xml/RegistryInterface/v1.0"
VG = "http://www.ivoa.net/xml/VORegistry/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
SIA = "http://www.ivoa.net/xml/SIA/v1.1"
OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: VODataService 1.2 (same namespace as 1.1) carries the MOC coverage of records
VS12 = ((VS, "VODataService-v1.2.xsd"),)
ALL = (OAI, RI, VG, VS, TR, SIA, OAI_DC)
AUTH = "vlkb.test"
PUBLIC_SURVEYS = ("Hi-GAL", "MIPSGAL", "ASKAP-EMU", "CHaMP")
PAGE = 2


def _valid(body: bytes) -> etree._Element:
    return assert_valid(body, *ALL, files=VS12)


def _q(el: etree._Element, path: str) -> list[etree._Element]:
    return el.xpath(path, namespaces={"o": OAI, "ri": RI})


@pytest.fixture(scope="module")
def registry(database) -> Iterator[Server]:
    """A server with tiny OAI-PMH pages, so a harvest needs several resumption tokens."""
    with running_server(database, authority=AUTH, oai_page_size=str(PAGE),
                        registry_contact_email="vo-desk@example.org") as srv:
        yield srv


@pytest.fixture()
def oai(registry: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=120) as client:
        yield client


def _harvest(oai: httpx.Client, verb: str, **args: str) -> tuple[list[etree._Element], list[etree._Element]]:
    """Every page of a list request: (items, resumption token elements)."""
    items, tokens = [], []
    params = {"verb": verb, **args}
    while True:
        resp = oai.get("/oai", params=params)
        assert resp.status_code == 200
        root = _valid(resp.content)
        assert not _q(root, "o:error"), resp.text[:500]
        items += _q(root, f"o:{verb}/o:record" if verb == "ListRecords" else f"o:{verb}/o:header")
        token = _q(root, f"o:{verb}/o:resumptionToken")
        if not token:
            return items, tokens
        tokens.append(token[0])
        if not token[0].text:
            return items, tokens
        params = {"verb": verb, "resumptionToken": token[0].text}


def _expected_ids() -> set[str]:
    return {f"ivo://{AUTH}", f"ivo://{AUTH}/vlkb", f"ivo://{AUTH}/vlkb/registry",
            *(f"ivo://{AUTH}/vlkb/surveys/{s.lower()}" for s in PUBLIC_SURVEYS)}


def _record(oai: httpx.Client, ident: str, prefix: str = "ivo_vor") -> etree._Element:
    resp = oai.get("/oai", params={"verb": "GetRecord", "identifier": ident, "metadataPrefix": prefix})
    root = _valid(resp.content)
    assert not _q(root, "o:error"), resp.text[:500]
    return _q(root, "o:GetRecord/o:record/o:metadata/*")[0]


def test_identify_carries_the_registry_record(oai: httpx.Client, registry: Server) -> None:
    root = _valid(oai.get("/oai", params={"verb": "Identify"}).content)
    ident = _q(root, "o:Identify")[0]
    assert ident.findtext(f"{{{OAI}}}baseURL") == registry.url + "/oai"
    assert ident.findtext(f"{{{OAI}}}adminEmail") == "vo-desk@example.org"
    assert ident.findtext(f"{{{OAI}}}granularity") == "YYYY-MM-DDThh:mm:ssZ"
    reg = _q(ident, "o:description/ri:Resource")[0]
    assert reg.get(XSI_TYPE) == "vg:Registry"
    assert reg.findtext("managedAuthority") == AUTH
    cap = reg.find("capability")
    assert cap.get("standardID") == "ivo://ivoa.net/std/Registry" and cap.get(XSI_TYPE) == "vg:Harvest"
    assert cap.findtext("interface/accessURL") == registry.url + "/oai"


def test_harvest_with_tokens_returns_every_record_once(oai: httpx.Client) -> None:
    records, tokens = _harvest(oai, "ListRecords", metadataPrefix="ivo_vor")
    ids = [r.findtext(f"{{{OAI}}}header/{{{OAI}}}identifier") for r in records]
    assert sorted(ids) == sorted(_expected_ids())  # each once, none missing, the restricted survey absent
    # section 3.5.1: a token on every page of the split list, an empty one on the last
    assert len(tokens) == -(-len(ids) // PAGE) > 1 and tokens[-1].text is None
    assert {int(t.get("completeListSize")) for t in tokens} == {len(ids)}
    assert [int(t.get("cursor")) for t in tokens] == list(range(0, len(ids), PAGE))
    for rec in records:  # the record is the one its header names
        assert _q(rec, "o:metadata/ri:Resource")[0].findtext("identifier") == rec.findtext(
            f"{{{OAI}}}header/{{{OAI}}}identifier")
    headers, _ = _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor", set="ivo_managed")
    assert sorted(h.findtext(f"{{{OAI}}}identifier") for h in headers) == sorted(ids)
    dc, _ = _harvest(oai, "ListRecords", metadataPrefix="oai_dc")
    assert len(dc) == len(ids)
    # a second harvest gives the same datestamps: nothing changed
    again, _ = _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor")
    stamps = {h.findtext(f"{{{OAI}}}identifier"): h.findtext(f"{{{OAI}}}datestamp") for h in headers}
    assert {h.findtext(f"{{{OAI}}}identifier"): h.findtext(f"{{{OAI}}}datestamp") for h in again} == stamps


def test_from_and_until_select_by_datestamp(oai: httpx.Client) -> None:
    headers, _ = _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor")
    stamps = sorted(h.findtext(f"{{{OAI}}}datestamp") for h in headers)
    day = stamps[0][:10]
    everything, _ = _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor",
                             **{"from": day, "until": stamps[-1][:10]})
    assert len(everything) == len(headers)
    exact, _ = _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor", **{"from": stamps[-1], "until": stamps[-1]})
    assert 1 <= len(exact) == stamps.count(stamps[-1])


def test_service_record_describes_the_running_service(oai: httpx.Client, registry: Server, database) -> None:
    res = _record(oai, f"ivo://{AUTH}/vlkb")
    assert res.get(XSI_TYPE) == "vs:CatalogService"
    for path in ("title", "curation/publisher", "curation/contact/email", "content/description",
                 "content/subject", "content/contentLevel"):
        assert res.findtext(path), path
    caps = {c.get("standardID"): c for c in res.findall("capability")}
    assert caps["ivo://ivoa.net/std/TAP"].get(XSI_TYPE) == "tr:TableAccess"
    assert caps["ivo://ivoa.net/std/SIA#query-2.0"].get(XSI_TYPE) == "sia:SimpleImageAccess"
    for std, path in (("ivo://ivoa.net/std/TAP", "/tap"), ("ivo://ivoa.net/std/SIA#query-2.0", "/sia/query"),
                      ("ivo://ivoa.net/std/SODA#sync-1.0", "/soda/sync"),
                      ("ivo://ivoa.net/std/SODA#async-1.0", "/soda/async"),
                      ("ivo://ivoa.net/std/DataLink#links-1.1", "/datalink/links")):
        assert caps[std].findtext("interface/accessURL") == registry.url + path
    names = {t.findtext("name") for t in res.findall("tableset/schema/table")}
    assert names == {t.qualified_name for t in published_tables()}
    assert {"Infrared", "Radio"} <= {w.text for w in res.findall("coverage/waveband")}
    moc = MOC.from_str(res.findtext("coverage/spatial"))
    with psycopg.connect(database.url) as c:
        pub = np.array(c.execute("SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = ANY(%s)",
                                 (list(PUBLIC_SURVEYS),)).fetchall())
        t0, t1 = c.execute("SELECT min(t_min), max(t_max) FROM ivoa.obscore WHERE obs_collection = ANY(%s)",
                           (list(PUBLIC_SURVEYS),)).fetchone()
    assert moc.contains_lonlat(pub[:, 0] * u.deg, pub[:, 1] * u.deg).all()
    lo, hi = map(float, res.findtext("coverage/temporal").split())
    assert (lo, hi) == pytest.approx((t0, t1))


def test_survey_records_carry_coverage_and_point_at_the_service(oai: httpx.Client, registry: Server,
                                                                database) -> None:
    res = _record(oai, f"ivo://{AUTH}/vlkb/surveys/hi-gal")
    assert res.get(XSI_TYPE) == "vs:CatalogResource"
    rel = res.find("content/relationship")
    assert rel.findtext("relationshipType") == "IsServedBy"
    assert rel.find("relatedResource").get("ivo-id") == f"ivo://{AUTH}/vlkb"
    caps = {c.get("standardID"): c.findtext("interface/accessURL") for c in res.findall("capability")}
    assert caps == {"ivo://ivoa.net/std/TAP#aux": registry.url + "/tap",
                    "ivo://ivoa.net/std/SIA#query-aux-2.0": registry.url + "/sia/query"}
    with psycopg.connect(database.url) as c:
        ra, dec = np.array(c.execute("SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = 'Hi-GAL'")
                           .fetchall()).T
        em0, em1 = c.execute("SELECT min(em_min), max(em_max) FROM ivoa.obscore "
                             "WHERE obs_collection = 'Hi-GAL'").fetchone()
    assert MOC.from_str(res.findtext("coverage/spatial")).contains_lonlat(ra * u.deg, dec * u.deg).all()
    e_lo, e_hi = map(float, res.findtext("coverage/spectral").split())
    hc = 6.62607015e-34 * 299792458.0  # photon energy (J) of the band edges
    assert (e_lo, e_hi) == pytest.approx((hc / em1, hc / em0))
    restricted = oai.get("/oai", params={"verb": "GetRecord", "identifier": f"ivo://{AUTH}/vlkb/surveys/meerkat-private",
                                          "metadataPrefix": "ivo_vor"})
    assert _q(_valid(restricted.content), "o:error/@code") == ["idDoesNotExist"]


def test_pyvo_reads_and_uses_the_capabilities_of_the_record(oai: httpx.Client) -> None:
    res = _record(oai, f"ivo://{AUTH}/vlkb")
    doc = etree.Element("{http://www.ivoa.net/xml/VOSICapabilities/v1.0}capabilities", nsmap=res.nsmap)
    doc.extend(c for c in res.findall("capability") if c.get("standardID") == "ivo://ivoa.net/std/TAP")
    caps = pyvo.io.vosi.parse_capabilities(io.BytesIO(etree.tostring(doc)))
    tap = caps[0]
    assert tap.standardid == "ivo://ivoa.net/std/TAP"
    assert [lang.name for lang in tap.languages] == ["ADQL"]
    assert any(f.mime.startswith("application/x-votable+xml") for f in tap.outputformats)
    url = tap.interfaces[0].accessurls[0].content
    result = pyvo.dal.TAPService(url).run_sync("SELECT TOP 3 obs_publisher_did FROM ivoa.obscore")
    assert len(result) == 3
    sia_url = res.xpath("capability[@standardID='ivo://ivoa.net/std/SIA#query-2.0']/interface/accessURL")[0].text
    images = pyvo.dal.SIA2Service(sia_url, check_baseurl=False).search(collection="MIPSGAL")
    assert len(images) > 0


def test_oai_dc_and_post(oai: httpx.Client) -> None:
    dc = _record(oai, f"ivo://{AUTH}/vlkb", "oai_dc")
    assert dc.tag == f"{{{OAI_DC}}}dc"
    get = oai.get("/oai", params={"verb": "GetRecord", "identifier": f"ivo://{AUTH}/vlkb", "metadataPrefix": "ivo_vor"})
    post = oai.post("/oai", data={"verb": "GetRecord", "identifier": f"ivo://{AUTH}/vlkb", "metadataPrefix": "ivo_vor"})
    assert post.status_code == 200
    strip = lambda b: etree.tostring(_q(_valid(b), "o:GetRecord")[0])  # noqa: E731
    assert strip(post.content) == strip(get.content)
    formats = _q(_valid(oai.get("/oai", params={"verb": "ListMetadataFormats"}).content),
                 "o:ListMetadataFormats/o:metadataFormat/o:metadataPrefix")
    assert {f.text for f in formats} == {"ivo_vor", "oai_dc"}
    sets = _q(_valid(oai.get("/oai", params={"verb": "ListSets"}).content), "o:ListSets/o:set/o:setSpec")
    assert [s.text for s in sets] == ["ivo_managed"]


ERRORS = [
    ({}, "badVerb"),
    ({"verb": "Explode"}, "badVerb"),
    ({"verb": ["Identify", "Identify"]}, "badVerb"),
    ({"verb": "Identify", "metadataPrefix": "ivo_vor"}, "badArgument"),
    ({"verb": "GetRecord", "identifier": "ivo://vlkb.test/vlkb"}, "badArgument"),
    ({"verb": "ListRecords"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": ["ivo_vor", "oai_dc"]}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "yesterday"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2020-02-30"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2021-01-01", "until": "2020-01-01"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2020-01-01",
      "until": "2030-01-01T00:00:00Z"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "resumptionToken": "x"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "identifier": "ivo://vlkb.test/vlkb", "metadataPrefix": "marc21"},
     "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "identifier": "ivo://vlkb.test/nothing", "metadataPrefix": "ivo_vor"}, "idDoesNotExist"),
    ({"verb": "ListMetadataFormats", "identifier": "ivo://vlkb.test/nothing"}, "idDoesNotExist"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2999-01-01"}, "noRecordsMatch"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "until": "1999-01-01"}, "noRecordsMatch"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor", "set": "no_such_set"}, "noRecordsMatch"),
    ({"verb": "ListRecords", "resumptionToken": "not-a-token!"}, "badResumptionToken"),
    ({"verb": "ListSets", "resumptionToken": "abc"}, "badResumptionToken"),
]


@pytest.mark.parametrize(("params", "code"), ERRORS, ids=[f"{c}-{i}" for i, (_, c) in enumerate(ERRORS)])
def test_errors_follow_the_protocol(oai: httpx.Client, params: dict, code: str) -> None:
    resp = oai.get("/oai", params=params)
    assert resp.status_code == 200  # OAI-PMH 2.0 section 3.6: errors are answers
    root = _valid(resp.content)
    assert _q(root, "o:error/@code") == [code]
    request = _q(root, "o:request")[0]
    if code in ("badVerb", "badArgument"):
        assert not request.attrib  # section 3.6: no arguments echoed after these


def test_token_of_another_verb_or_a_changed_list_is_refused(oai: httpx.Client) -> None:
    first = _valid(oai.get("/oai", params={"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor"}).content)
    token = _q(first, "o:ListIdentifiers/o:resumptionToken")[0].text
    other = _valid(oai.get("/oai", params={"verb": "ListRecords", "resumptionToken": token}).content)
    assert _q(other, "o:error/@code") == ["badResumptionToken"]
    same = _valid(oai.get("/oai", params={"verb": "ListIdentifiers", "resumptionToken": token}).content)
    assert not _q(same, "o:error")


def test_a_survey_made_restricted_becomes_a_deleted_record(oai: httpx.Client, database) -> None:
    ident = f"ivo://{AUTH}/vlkb/surveys/mipsgal"
    before = {h.findtext(f"{{{OAI}}}identifier"): h
              for h in _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor")[0]}
    assert before[ident].get("status") is None
    try:
        with psycopg.connect(database.url) as c:
            set_policy(c, "MIPSGAL", ["survey-team"])
        headers = {h.findtext(f"{{{OAI}}}identifier"): h
                   for h in _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor")[0]}
        assert set(headers) == set(before)
        assert headers[ident].get("status") == "deleted"
        assert headers[ident].findtext(f"{{{OAI}}}datestamp") >= before[ident].findtext(f"{{{OAI}}}datestamp")
        got = _valid(oai.get("/oai", params={"verb": "GetRecord", "identifier": ident,
                                             "metadataPrefix": "ivo_vor"}).content)
        assert not _q(got, "o:GetRecord/o:record/o:metadata")
        assert oai.get("/moc/MIPSGAL").status_code == 404
    finally:
        with psycopg.connect(database.url) as c:
            set_policy(c, "MIPSGAL", [])
    after = {h.findtext(f"{{{OAI}}}identifier"): h
             for h in _harvest(oai, "ListIdentifiers", metadataPrefix="ivo_vor")[0]}
    assert after[ident].get("status") is None


def test_an_oversized_post_is_refused(oai: httpx.Client) -> None:
    resp = oai.post("/oai", content=b"verb=Identify&x=" + b"a" * 100_000,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 413
    assert b'name="QUERY_STATUS" value="ERROR"' in resp.content
