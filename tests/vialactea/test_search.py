"""Contract A.1: the client's SIA search on the datasets base, parsed as the client parses it."""

from __future__ import annotations

from collections import Counter

import httpx
import psycopg
import pytest

from tests.conftest import Server
from tests.vialactea.client import best_cutout, client_url, em_index, parse_search

SIA = "/vlkb/datasets/siav2/query"


def search(server: Server, pos: str) -> list:
    # the client's URL: POS and POSSYS only, percent-encoded by toPercentEncoding(url, ":/&?=")
    url = client_url(f"{server.url}{SIA}?POS={pos}&POSSYS=GALACTIC")
    resp = httpx.get(url, timeout=30, follow_redirects=False)
    assert resp.status_code == 200, resp.text[:500]  # answered directly: the client follows no redirect here
    assert b"<TABLEDATA>" in resp.content
    return parse_search(resp.content)


@pytest.fixture(scope="module")
def footprints(database) -> dict[str, tuple[float, float, float, float]]:
    """Each public dataset's Galactic footprint box (l1, l2, b1, b2) as the database holds it."""
    with psycopg.connect(database.url) as c:
        rows = c.execute("SELECT obs_publisher_did, vlkb_dali_polygon(s_region_galactic) FROM ivoa.obscore "
                         "WHERE obs_collection <> 'MeerKAT-private'").fetchall()
    out = {}
    for did, poly in rows:
        lons = [(v + 180) % 360 - 180 for v in poly[0::2]]
        out[did] = (min(lons), max(lons), min(poly[1::2]), max(poly[1::2]))
    return out


@pytest.mark.parametrize("pos", ["CIRCLE 0.5 0.2 0.3", "RANGE 0.3 0.7 0.0 0.4", "CIRCLE 359.7 0.1 0.05"])
def test_search_rows_parse_as_the_client_reads_them(server: Server, pos: str) -> None:
    rows = search(server, pos)
    assert rows
    for row in rows:
        assert row.values["dataproduct_type"] in ("image", "cube")
        assert em_index(row.values["em_min"], row.values["em_max"]) != -1, row.values
        assert row.overlap_sky in (0, 1, 2, 3, 4, 5)
        assert row.overlap_sky != 1, "a dataset that does not overlap is not listed"
        species, transition = row.species_transition
        assert species and transition
        corners = row.corners
        assert len(corners) == 4
        assert row.values["s_region_galactic"].startswith("POLYGON GALACTIC ")
        if row.overlap_sky:
            assert row.values["obs_publisher_did"].startswith("ivo://")
            assert row.values["bib_reference"] is not None


def test_overlap_codes_follow_the_footprints(server: Server, footprints) -> None:
    # a small box inside some tiles: each code is checked against the footprint's own bounds
    l1, l2, b1, b2 = 0.45, 0.55, 0.15, 0.25
    rows = [r for r in search(server, f"RANGE {l1} {l2} {b1} {b2}") if r.overlap_sky]
    assert any(r.overlap_sky == 3 for r in rows), "some dataset covers the whole box"
    for row in rows:
        fl1, fl2, fb1, fb2 = footprints[row.values["obs_publisher_did"]]
        inside = fl1 <= l1 and l2 <= fl2 and fb1 <= b1 and b2 <= fb2
        assert (row.overlap_sky == 3) == inside, (row.values["obs_publisher_did"], row.overlap_sky)
        assert row.values["overlap"] == row.values["overlapSky"]  # no BAND: the spatial code
        assert row.values["overlapSpec"] == ""
    # a box around a whole tile: the tile lies inside the region (2)
    did, (fl1, fl2, fb1, fb2) = next(iter(sorted(footprints.items())))
    rows = search(server, f"RANGE {fl1 - 0.05 + 360 * (fl1 < 0.05)} {fl2 + 0.05 + 360 * (fl1 < 0.05)} "
                          f"{fb1 - 0.05} {fb2 + 0.05}")
    assert {r.values["obs_publisher_did"]: r.overlap_sky for r in rows}[did] == 2


def test_merge_rows_one_per_sub_survey_with_several_datasets(server: Server) -> None:
    rows = search(server, "CIRCLE 0.5 0.2 0.3")
    real = Counter((r.values["obs_collection"], r.values["obs_title"]) for r in rows if r.overlap_sky)
    merges = [r for r in rows if r.overlap_sky == 0]
    assert Counter((r.values["obs_collection"], r.values["obs_title"]) for r in merges) == {
        k: 1 for k, n in real.items() if n > 1}
    assert merges
    for merge in merges:
        key = (merge.values["obs_collection"], merge.values["obs_title"])
        dids = merge.values["obs_publisher_did"].split(";")
        assert len(dids) == real[key]
        assert em_index(merge.values["em_min"], merge.values["em_max"]) != -1
    # the client skips merge rows: what it keeps is one row per dataset
    assert sum(1 for r in rows if r.overlap_sky) == sum(real.values())


def test_client_range_across_l0_wraps(server: Server, database) -> None:
    """Issue 13.4: near l = 0 the client sends l - dl + 360 and l + dl, so lon1 > lon2: the range
    wraps through 0 (DALI 1.2 section 3.9). The answer is checked against the demo files' own
    WCS footprints (tests/conformance/footprints.py), on both sides of l = 0."""
    from tests.conformance import footprints as fp

    data_dir = database.home / "data"
    want = fp.expected(data_dir, fp.box(359.85, 360.25, -0.2, 0.2, "galactic"))
    rows = search(server, "RANGE 359.85 0.25 -0.2 0.2")
    got = {r.values["obs_publisher_did"].split("?", 1)[1] for r in rows if r.overlap_sky}
    # the client's answer leaves out datasets with no spectral coverage (none in the demo)
    assert got == want
    west = fp.expected(data_dir, fp.box(359.86, 359.9, -0.2, 0.2, "galactic"))
    east = fp.expected(data_dir, fp.box(0.1, 0.24, -0.2, 0.2, "galactic"))
    assert west - east and east - west, "datasets only west and only east of l = 0 are found"
    # the merge rows' footprint is the requested box, written in 0..360
    for row in rows:
        if not row.overlap_sky:
            lons = sorted({round(lon, 6) for lon, _ in row.corners})
            assert lons == [0.25, 359.85]


def test_best_cutout_prefers_full_overlap(server: Server) -> None:
    best = best_cutout(search(server, "CIRCLE 0.5 0.2 0.02"))
    assert best and all(row.overlap_sky == 3 for row in best.values())


def test_band_gives_spectral_overlap(server: Server) -> None:
    url = f"{server.url}{SIA}"
    resp = httpx.get(url, params={"POS": "CIRCLE 0.5 0.2 0.02", "POSSYS": "GALACTIC", "BAND": "7e-5 9e-5"},
                     timeout=30)
    rows = [r for r in parse_search(resp.content) if r.overlap_sky]
    assert rows and all(r.values["obs_collection"] == "Hi-GAL" for r in rows)
    for row in rows:
        assert row.values["overlapSpec"] == "4"  # 60-85 um against 70-90 um: partial
        assert row.values["overlap"] == "4"


@pytest.mark.parametrize("params", [
    {"POSSYS": "GALACTIC"},
    {"POS": "CIRCLE 0.5 0.2 0.3", "POSSYS": "FK4"},
    {"POS": "RANGE 0.3 0.7 1 0", "POSSYS": "GALACTIC"},
    {"POS": "RANGE 360 0 0 1", "POSSYS": "GALACTIC"},
    {"POS": ["CIRCLE 0.5 0.2 0.3", "CIRCLE 1 0 0.1"], "POSSYS": "GALACTIC"},
])
def test_bad_searches_are_votable_errors(server: Server, params: dict) -> None:
    resp = httpx.get(server.url + SIA, params=params, timeout=30)
    assert resp.status_code == 400
    assert b'name="QUERY_STATUS" value="ERROR"' in resp.content


def test_names_match_datasets_surveys(server: Server) -> None:
    """Contract 2: datasets.surveys name/species/transition equal obs_collection and obs_title's halves."""
    from tests.vialactea.client import split_tabs

    resp = httpx.post(server.url + "/vlkb/sync", timeout=30, data={
        "REQUEST": "doQuery", "VERSION": "1.0", "LANG": "ADQL", "FORMAT": "tsv",
        "QUERY": "SELECT name, description, species, transition FROM datasets.surveys"})
    header, rows = split_tabs(resp.content)
    assert header == ["name", "description", "species", "transition"]
    surveys = {(r[0], r[2], r[3]) for r in rows}
    assert ("Hi-GAL", "Continuum", "70 um") in surveys  # spaces kept
    found = {(r.values["obs_collection"], *r.species_transition)
             for r in search(server, "RANGE 0 1 -1 1") if r.overlap_sky}
    assert found and found <= surveys
