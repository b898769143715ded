"""VOSI over HTTP against the real server: availability, capabilities, tables, validated
against the IVOA schemas; pyvo sees every published table with its description."""

from __future__ import annotations

import httpx
import pytest
import pyvo
from lxml import etree

from schemas import published_tables
from tests.xsd import assert_valid

AVAIL = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
CAPS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
TAPREGEXT = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
TABLES = "http://www.ivoa.net/xml/VOSITables/v1.0"


def test_availability_is_valid_and_true(http: httpx.Client) -> None:
    resp = http.get("/tap/availability")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/xml")
    root = assert_valid(resp.content, AVAIL)
    # the ViaLactea client looks the element up by its literal prefixed name
    assert b"<vosi:available>true</vosi:available>" in resp.content
    assert root.findtext(f"{{{AVAIL}}}available") == "true"


def test_schema_validation_rejects_a_broken_document() -> None:
    broken = b'<vosi:availability xmlns:vosi="%s"><vosi:note>x</vosi:note></vosi:availability>' % AVAIL.encode()
    with pytest.raises(AssertionError, match="does not validate"):
        assert_valid(broken, AVAIL)


def test_capabilities_valid_and_complete(http: httpx.Client, server) -> None:
    resp = http.get("/tap/capabilities")
    assert resp.status_code == 200
    root = assert_valid(resp.content, CAPS, TAPREGEXT, VS)
    std_ids = {c.get("standardID") for c in root.iter("capability")}
    assert {
        "ivo://ivoa.net/std/TAP",
        "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability",
        "ivo://ivoa.net/std/VOSI#tables-1.1",
    } <= std_ids
    tap = next(c for c in root.iter("capability") if c.get("standardID") == "ivo://ivoa.net/std/TAP")
    versions = {v.get("ivo-id") for v in tap.iter("version")}
    assert versions == {"ivo://ivoa.net/std/ADQL#v2.0", "ivo://ivoa.net/std/ADQL#v2.1"}
    forms = {f.findtext("form") for f in tap.iter("feature")}
    assert {"CONTAINS", "INTERSECTS", "POINT", "CIRCLE", "POLYGON"} <= forms
    mimes = {m.text for m in tap.iter("mime")}
    assert "application/x-votable+xml;serialization=BINARY2" in mimes and "text/csv;header=present" in mimes
    access = {a.text for a in root.iter("accessURL")}
    assert server.url + "/tap" in access


def test_declared_output_formats_are_what_is_served(http: httpx.Client, server) -> None:
    """Each outputFormat's mime, asked for by that mime or by an alias, comes back with exactly that
    Content-Type (DALI 1.1 section 3.3.1: a VOTable's media type names its serialization)."""
    root = etree.fromstring(http.get("/tap/capabilities").content)
    tap = next(c for c in root.iter("capability") if c.get("standardID") == "ivo://ivoa.net/std/TAP")
    query = "SELECT TOP 3 table_name FROM TAP_SCHEMA.tables ORDER BY table_name"
    for fmt in tap.iter("outputFormat"):
        mime = fmt.findtext("mime")
        for asked in [mime, *(a.text for a in fmt.iter("alias"))]:
            resp = http.get("/tap/sync", params={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": asked})
            # Starlette adds "; charset=utf-8" to text/* types, a parameter of its own
            served = resp.headers["content-type"].removesuffix("; charset=utf-8")
            assert resp.status_code == 200 and served == mime, (asked, resp.headers)
    votables = [f.findtext("mime") for f in tap.iter("outputFormat") if "votable" in f.findtext("mime")]
    assert "application/x-votable+xml;serialization=BINARY2" in votables
    svc = pyvo.dal.TAPService(server.url + "/tap")
    for mime in votables:
        assert len(svc.run_sync(query, responseformat=mime).to_table()) == 3


def test_tableset_lists_every_declared_table(http: httpx.Client) -> None:
    resp = http.get("/tap/tables")
    root = assert_valid(resp.content, TABLES)
    names = {t.findtext("name") for t in root.iter("table")}
    assert names == {t.qualified_name for t in published_tables()}
    for table in root.iter("table"):
        assert table.findtext("description").strip(), table.findtext("name")
        for col in table.iter("column"):
            assert col.findtext("description").strip(), (table.findtext("name"), col.findtext("name"))


def test_tableset_detail_min_has_no_columns(http: httpx.Client) -> None:
    resp = http.get("/tap/tables", params={"detail": "min"})
    root = assert_valid(resp.content, TABLES)
    assert root.find(".//table") is not None
    assert root.find(".//column") is None


def test_single_table_and_unknown_table(http: httpx.Client) -> None:
    resp = http.get("/tap/tables/compactsources.band70um")
    assert resp.status_code == 200
    root = assert_valid(resp.content, TABLES)
    cols = [c.findtext("name") for c in root.iter("column")]
    assert {"designation", "glon", "glat", "flux", "err_flux"} <= set(cols)
    missing = http.get("/tap/tables/nosuch.table")
    assert missing.status_code == 404
    assert b'name="QUERY_STATUS" value="ERROR"' in missing.content
    bad = http.get("/tap/tables", params={"detail": "everything"})
    assert bad.status_code == 400
    etree.fromstring(bad.content)


def test_pyvo_lists_tables_with_descriptions(server) -> None:
    service = pyvo.dal.TAPService(server.url + "/tap")
    tables = {t.name: t for t in service.tables}
    expected = {t.qualified_name: t for t in published_tables()}
    assert set(tables) == set(expected)
    for name, decl in expected.items():
        assert tables[name].description.strip() == decl.description.strip()
        assert [c.name for c in tables[name].columns] == [c.adql_name for c in decl.published_columns]
    # the point columns behind the spatial indexes are internal: not listed
    assert not {"pos", "pos_gal"} & {c.name for c in tables["compactsources.band70um"].columns}


def test_health_and_landing(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "ok"
    page = http.get("/")
    assert page.status_code == 200 and "Hi-GAL" in page.text and "/tap" in page.text


def test_unknown_path_is_a_dali_error(http: httpx.Client) -> None:
    resp = http.get("/no/such/endpoint")
    assert resp.status_code == 404
    root = etree.fromstring(resp.content)
    info = root.find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info is not None and info.get("value") == "ERROR"
