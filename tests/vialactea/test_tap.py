"""Contract C and D: the TAP base ``/vlkb`` as the client and its pyvo helpers use it."""

from __future__ import annotations

import math
import re
import warnings

import httpx
import psycopg
import pytest
import pyvo
from astropy.table import Table
from astropy.utils.exceptions import AstropyDeprecationWarning

from schemas import published_tables
from tests.conftest import Server
from tests.vialactea.client import available, split_catalogue, split_tabs

BOX = "(glon>=0.2 AND glon<=0.9) AND (glat>=-0.3 AND glat<=0.5)"


def tsv(server: Server, query: str, *, get: bool = False) -> bytes:
    """The client's request: REQUEST=doQuery&VERSION=1.0&LANG=ADQL&FORMAT=tsv&QUERY=..., form-encoded."""
    data = {"REQUEST": "doQuery", "VERSION": "1.0", "LANG": "ADQL", "FORMAT": "tsv", "QUERY": query}
    if get:
        resp = httpx.get(server.url + "/vlkb/sync", params=data, timeout=60)
    else:
        resp = httpx.post(server.url + "/vlkb/sync", data=data, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"].startswith("text/tab-separated-values")
    return resp.content


def test_availability_has_the_vosi_prefix(server: Server) -> None:
    resp = httpx.get(server.url + "/vlkb/availability", timeout=30)
    assert resp.status_code == 200 and available(resp.content)


def test_tables_lists_band_catalogues_by_name(server: Server) -> None:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(httpx.get(server.url + "/vlkb/tables", timeout=30).content)
    tables = {t.findtext("name"): [c.findtext("name") for c in t.findall("column")] for t in root.iter("table")}
    bands = [n for n in tables if "compactsources.band" in n and n.endswith("um")]
    assert {"compactsources.band70um", "compactsources.band500um"} <= set(bands)
    for name in bands:
        assert {"designation", "glon", "glat", "fwhma", "fwhmb", "pa"} <= {c.lower() for c in tables[name]}


def test_capabilities_describe_this_base(server: Server) -> None:
    body = httpx.get(server.url + "/vlkb/capabilities", timeout=30).text
    assert f"{server.url}/vlkb</accessURL>" in body
    assert f"{server.url}/vlkb/tables</accessURL>" in body


@pytest.mark.parametrize("schema", ["vlkb_compactsources", "compactsources"])
def test_band_tables_split_on_whitespace(server: Server, schema: str) -> None:
    header, rows = split_catalogue(tsv(server, f"SELECT * FROM {schema}.band70um WHERE {BOX}"))
    assert rows
    lower = [h.lower() for h in header]
    for row in rows:
        assert len(row) == len(header)
        glon = float(row[lower.index("glon")])
        assert 0.2 <= glon <= 0.9
        assert row[lower.index("designation")].startswith("HIGAL")


def test_sed_view_final_rows_carry_missing_and_unknown_distance(server: Server) -> None:
    body = tsv(server, "SELECT DISTINCT * FROM vlkb_compactsources.sed_view_final "
                       "WHERE (glonft>=0 AND glonft<=1) AND (glatft>=-1 AND glatft<=1)")
    header, rows = split_catalogue(body)
    assert len(rows) > 100
    bands = ("1100", "870", "500", "350", "250", "160", "70", "24", "22", "21", "ft")
    for key in bands:
        for name in (f"designation{key}", f"glon{key}", f"glat{key}", f"fwhma{key}", f"fwhmb{key}", f"pa{key}"):
            assert name in header
    col = {name: i for i, name in enumerate(header)}
    seen_missing = set()
    for row in rows:
        assert len(row) == len(header)  # no empty field, no space inside a value
        for key in bands:
            value = row[col[f"designation{key}"]]
            if value == "missing":
                seen_missing.add(key)
                if key != "21":
                    flux = f"flux{key}"
                    if flux in col:
                        assert math.isnan(float(row[col[flux]]))  # an absent band's flux reads nan
        float(row[col["distance"]])
    assert {"1100", "70", "22"} <= seen_missing, "the demo has sources with absent bands"
    assert any(float(row[col["distance"]]) == -9999 for row in rows)
    # one source by designation (HigalSelectedSources)
    name = rows[0][col["designationft"]]
    one = split_catalogue(tsv(server, f"SELECT * FROM vlkb_compactsources.sed_view_final "
                                      f"where designationft='{name}'"))[1]
    assert len(one) == 1 and one[0][col["designationft"]] == name


def test_no_sed_is_a_header_only_reply(server: Server) -> None:
    body = tsv(server, "SELECT * FROM vlkb_compactsources.sed_view_final where designationft='none'")
    assert body.count(b"\n") == 1
    # the INAF server's header was 1187 bytes; ours is the header of our own columns (docs/vialactea.md)
    assert len(body) == len(body.split(b"\n")[0]) + 1


def test_sed_models_props_dist_filaments(server: Server, database) -> None:
    header, rows = split_catalogue(tsv(server, "SELECT * FROM vlkb_compactsources.sed_models where id=1"))
    assert len(rows) == 1 and len(rows[0]) == len(header)
    assert header[:2] == ["id", "wise1"] or "wise1" in header
    header, rows = split_catalogue(tsv(
        server, "SELECT dist*cos(radians(glon)+3.14159265359/2) AS x, dist*sin(radians(glon)+3.14159265359/2) AS y, "
                f"dist*tan(radians(glat)) AS z, * FROM vlkb_compactsources.props_dist WHERE {BOX}"))
    assert header[:3] == ["x", "y", "z"] and rows
    assert all(len(r) == len(header) for r in rows)
    header, rows = split_catalogue(tsv(
        server, "SELECT f.idfil_mos, f.contour, f.glon, f.glat, b.contour AS branches_contour, "
                "b.contour1d AS branches_contour1d, b.contour_new AS branches_contour_new, "
                "b.flagspine AS flagspine_branches FROM vlkb_filaments.filaments AS f JOIN vlkb_filaments.branches "
                "AS b ON f.idfil_mos=b.idfil_mos WHERE (glon>=0 AND glon<=2) AND (glat>=-1 AND glat<=1)"))
    assert rows and all(len(r) == len(header) for r in rows)
    contour = re.compile(r"^(-?[0-9.]+_)+,(-?[0-9.]+_)+$")
    for row in rows:
        assert contour.match(row[1]) and contour.match(row[4])
        assert row[7]  # flagspine: S/s for a spine, never an empty field
    header, rows = split_catalogue(tsv(
        server, "SELECT * FROM filaments.bubbles WHERE (glon_cen>=0 AND glon_cen<=360) "
                "AND (glat_cen>=-1 AND glat_cen<=1)", get=True))
    assert rows and all(len(r) == len(header) for r in rows)
    assert {"glon_cen", "glat_cen", "contour"} <= set(header)


def test_tap_schema_labels(server: Server) -> None:
    header, rows = split_tabs(tsv(server, "SELECT * FROM TAP_SCHEMA.columns"))
    col = {name: i for i, name in enumerate(header)}
    by_key = {f"{r[col['table_name']]}.{r[col['column_name']]}": r for r in rows}
    assert by_key["compactsources.sed_view_final.designation70"][col["utype"]]
    # the newest client's keys (its hard-coded vlkb_ schemas), beside the plain ones of older builds
    for key in ("compactsources.sed_view_final.designation70", "filaments.filaments.contour",
                "filaments.branches.contour1d", "filaments.branches.contour"):
        plain, prefixed = by_key[key], by_key["vlkb_" + key]
        for field in ("utype", "description"):
            assert prefixed[col[field]] == plain[col[field]]
        assert plain[col["description"]]
    assert "vlkb_datasets.surveys.name" not in by_key and "vlkb_TAP_SCHEMA.tables.table_name" not in by_key
    assert by_key["filaments.filaments.contour"][col["description"]]
    assert by_key["filaments.branches.contour1d"][col["description"]]
    header, rows = split_tabs(tsv(server, "SELECT * FROM TAP_SCHEMA.tables"))
    assert {"table_name", "description", "utype"} <= set(header)
    names = {r[header.index("table_name")] for r in rows}
    assert {"compactsources.band70um", "vlkb_compactsources.band70um", "vlkb_filaments.bubbles"} <= names


def test_datasets_surveys_keep_their_spaces(server: Server, database) -> None:
    header, rows = split_tabs(tsv(server, "SELECT name, description, species, transition FROM datasets.surveys"))
    with psycopg.connect(database.url) as c:
        public = {(n, s, t) for n, s, t in c.execute("SELECT name, species, transition FROM datasets.surveys")}
    assert all(len(r) == 4 for r in rows)
    assert any(r[3] == "70 um" for r in rows)
    assert {(r[0], r[2], r[3]) for r in rows} <= public


def test_async_jobs_are_the_tap_jobs(server: Server) -> None:
    resp = httpx.post(server.url + "/vlkb/async", timeout=30, data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 3 * FROM vlkb_compactsources.band70um", "PHASE": "RUN"})
    assert resp.status_code == 303
    location = resp.headers["location"]
    assert location.startswith(server.url + "/vlkb/async/")
    job_id = location.rsplit("/", 1)[1]
    job = httpx.get(location, params={"WAIT": "20", "PHASE": "EXECUTING"}, timeout=40)
    assert job.status_code == 200
    same = httpx.get(f"{server.url}/tap/async/{job_id}/phase", timeout=30)
    assert same.status_code == 200 and same.text in ("QUEUED", "EXECUTING", "COMPLETED")


def test_pyvo_on_the_tap_base(server: Server) -> None:
    """Contract D: Utils/pyvo_tap.py's avail, tables and search."""
    service = pyvo.dal.TAPService(server.url + "/vlkb")
    with warnings.catch_warnings():  # the helper still calls the deprecated property
        warnings.simplefilter("ignore", AstropyDeprecationWarning)
        assert service.available
    names = [t.name for t in service.tables]
    assert any("compactsources.band" in n and n.endswith("um") for n in names)
    table = service.search("SELECT TOP 5 * FROM vlkb_compactsources.band70um").to_table()
    assert len(table) == 5


#: the catalogue tables the client reads through pyvo (every compact-source table, sed_view_final included)
CLIENT_TABLES = [t.qualified_name for t in published_tables() if t.schema_name == "compactsources"]


@pytest.mark.parametrize("table", CLIENT_TABLES)
def test_pyvo_select_star_writes_as_ascii_tab(server: Server, database, table: str, tmp_path) -> None:
    """Issue 13.4: Utils/pyvo_tap.py writes what ``search`` gives as ``ascii.tab``. That fails on a
    two-value column (astropy cannot write it as text), so ``SELECT *`` of every catalogue table
    must have none: positions are plain numbers (the point columns behind the indexes are internal)."""
    service = pyvo.dal.TAPService(server.url + "/vlkb")
    schema, name = table.split(".")
    result = service.search(f"SELECT TOP 20 * FROM vlkb_{schema}.{name}").to_table()
    with psycopg.connect(database.url) as conn:
        n = conn.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
    assert len(result) == min(20, n) > 0
    assert not {"pos", "pos_gal"} & set(result.colnames)
    out = tmp_path / f"{name}.tsv"
    result.write(out, format="ascii.tab")
    back = Table.read(out, format="ascii.tab")
    assert back.colnames == result.colnames and len(back) == len(result)


def test_datalink_accepts_must_include_soda(server: Server) -> None:
    """Contract D: Utils/pyvo_datalink.py adds must_include_soda=True and keeps service_def soda-sync."""
    from tests.vialactea.client import parse_search

    rows = parse_search(httpx.get(server.url + "/vlkb/datasets/siav2/query", timeout=30,
                                  params={"POS": "CIRCLE 0.5 0.2 0.02", "POSSYS": "GALACTIC"}).content)
    row = next(r for r in rows if r.overlap_sky)
    url = row.values["access_url"]
    assert url.startswith(server.url + "/datalink/links?ID=")  # made from the request's base, not stored
    resp = httpx.get(url + "&must_include_soda=True", timeout=30)
    assert resp.status_code == 200
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(url + "&must_include_soda=True")
    defs = {r.service_def for r in links if r.semantics == "#cutout"}
    assert {"soda-sync", "soda-async"} <= defs


@pytest.mark.parametrize("table", ["datasets.surveys", "vlkb_datasets_public.surveys", "vlkb_radiocubes.surveys",
                                   "filaments.filaments", "vlkb_filaments.filaments"])
def test_every_generations_table_names(server: Server, table: str) -> None:
    header, rows = split_tabs(tsv(server, f"SELECT TOP 1 * FROM {table}"))
    assert header and len(rows) == 1
