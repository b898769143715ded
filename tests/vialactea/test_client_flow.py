"""The ViaLactea client's flow end to end: search, best cutout per survey, cut, multi-cutout of five regions,
then the sources, SEDs and filaments of the region over TAP TSV."""

from __future__ import annotations

import httpx
import pytest

from tests.vialactea.client import split_catalogue
from tests.vialactea.legacy_client import (
    archive_members,
    best_cutout,
    circle_points,
    client_filter,
    covers,
    parse_cut,
    parse_search,
    run_mcutout,
    successes,
)

pytestmark = pytest.mark.timeout(180)


def test_search_pick_cut_and_multicutout(http, image) -> None:
    lon, lat, r = image.glon, image.glat, 0.02
    found = parse_search(http.get("/vlkb/datasets/vlkb_search", params={
        "l": lon, "b": lat, "r": r, "vl": -500000, "vu": 500000}).content)
    best = best_cutout(client_filter(found))
    assert len(best) >= 3, "several sub-surveys cover the region"
    full = [c for c in best.values() if c.code == 3]
    assert full, "getBestCutout prefers full overlaps, and some sub-surveys cover the whole region"
    for c in full:
        cut = parse_cut(http.get(c.cutout_url).content)
        data = httpx.get(str(cut["url"]), timeout=30).content
        assert covers(data, circle_points(lon, lat, r)), c.did

    # five regions around the centre, each cut from a dataset that covers the whole search region
    offsets = [(0, 0), (0.008, 0), (-0.008, 0), (0, 0.008), (0, -0.008)]
    entries = [{"id": full[n % len(full)].did, "possys": "GALACTIC",
                "pos": {"circle": {"lon": lon + dl, "lat": lat + db, "radius": 0.01}}}
               for n, (dl, db) in enumerate(offsets)]
    run = run_mcutout(http, entries)
    assert run.phases[-1] == "COMPLETED" and successes(run.report) == [True] * 5
    members = archive_members(run.archive)
    assert len(members) == 6 and "report.json" in members
    for entry, (dl, db) in zip(run.report, offsets, strict=True):
        assert covers(members[entry["value"]], circle_points(lon + dl, lat + db, 0.01)), entry

    # then the sources, SEDs and filaments of the region, over TAP TSV as the client asks for them
    box = (f"(glon>={lon - 0.5} AND glon<={lon + 0.5}) AND (glat>={lat - 0.5} AND glat<={lat + 0.5})")
    tap = {"REQUEST": "doQuery", "VERSION": "1.0", "LANG": "ADQL", "FORMAT": "tsv"}
    queries = {
        "sources": f"SELECT * FROM vlkb_compactsources.band70um WHERE {box}",
        "seds": "SELECT DISTINCT * FROM vlkb_compactsources.sed_view_final WHERE "
                + box.replace("glon", "glonft").replace("glat", "glatft"),
        "filaments": "SELECT f.idfil_mos, f.contour, f.glon, f.glat, b.contour AS branches_contour, "
                     "b.contour1d AS branches_contour1d, b.contour_new AS branches_contour_new, "
                     "b.flagspine AS flagspine_branches FROM vlkb_filaments.filaments AS f JOIN "
                     f"vlkb_filaments.branches AS b ON f.idfil_mos=b.idfil_mos WHERE {box}",
    }
    for what, query in queries.items():
        resp = http.post("/vlkb/sync", data={**tap, "QUERY": query})
        assert resp.status_code == 200, resp.text[:300]
        header, rows = split_catalogue(resp.content)
        assert rows, f"no {what} in the region"
        assert all(len(row) == len(header) for row in rows), what  # whitespace-split stays aligned
