"""Contract A.2: the client's SODA cutout on the datasets base: raw ``? : /`` in ID, GALACTIC
RANGE with half-widths, a FITS body on success, an HTTP error (never 200) on failure."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from tests.conftest import Server
from tests.vialactea.client import best_cutout, client_url, parse_search


def client_get(server: Server, path_and_query: str) -> httpx.Response:
    url = client_url(server.url + path_and_query)
    return httpx.get(url, timeout=60, follow_redirects=False)


@pytest.mark.parametrize("mode", ["range", "circle"])
def test_search_then_cut_the_best_cutout(server: Server, mode: str) -> None:
    lon, b, dl, db = 0.5, 0.2, 0.05, 0.04  # the client's half-widths: l1 = l - dl, l2 = l + dl
    pos = f"RANGE {lon - dl} {lon + dl} {b - db} {b + db}" if mode == "range" else f"CIRCLE {lon} {b} {dl}"
    found = parse_search(client_get(server, f"/vlkb/datasets/siav2/query?POS={pos}&POSSYS=GALACTIC").content)
    best = best_cutout(found)
    assert best
    row = best["Hi-GAL|Continuum | 70 um"]
    did = row.values["obs_publisher_did"]
    request = f"/vlkb/datasets/soda/sync?ID={did}&POS={pos}&POSSYS=GALACTIC"
    url = client_url(server.url + request)
    assert "?hi-gal-70um/" in url.split("ID=", 1)[1], "the ID travels with a raw ?"
    resp = httpx.get(url, timeout=60, follow_redirects=False)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(resp.content)) as hdul:
        wcs = WCS(hdul[0].header).celestial
        ny, nx = hdul[0].data.shape[-2:]
        corners = wcs.pixel_to_world(np.array([0, nx - 1]), np.array([0, ny - 1]))
        gal = SkyCoord(corners).galactic
    lons = sorted(gal.l.wrap_at("180d").deg)
    lats = sorted(gal.b.deg)
    pixel = float(max(proj_plane_pixel_scales(wcs)))
    assert lons[0] <= lon - dl + pixel and lons[1] >= lon + dl - pixel
    assert lats[0] <= b - db + pixel and lats[1] >= b + db - pixel


@pytest.mark.parametrize(("query", "status"), [
    ("ID=ivo://vlkb.test/vlkb?nosuch/file.fits&POS=RANGE 0.4 0.6 0.1 0.3&POSSYS=GALACTIC", 404),
    ("ID=ivo://vlkb.test/vlkb?hi-gal-70um/hi-gal-70um_tile3.fits&POS=RANGE 50 51 0.1 0.3&POSSYS=GALACTIC", 400),
    ("ID=ivo://vlkb.test/vlkb?hi-gal-70um/hi-gal-70um_tile3.fits&POS=RANGE 0.4 0.6 0.3 0.1&POSSYS=GALACTIC", 400),
    ("ID=ivo://vlkb.test/vlkb?hi-gal-70um/../../etc/passwd&POS=CIRCLE 0.5 0.2 0.1&POSSYS=GALACTIC", 404),
    ("POS=CIRCLE 0.5 0.2 0.1&POSSYS=GALACTIC", 400),
])
def test_failures_are_http_errors_never_200(server: Server, query: str, status: int) -> None:
    resp = client_get(server, "/vlkb/datasets/soda/sync?" + query)
    assert resp.status_code == status, resp.text[:300]
    assert not resp.content.startswith(b"SIMPLE")
    assert b'value="ERROR"' in resp.content  # the body is the message the client shows


def test_merge_row_double_click_returns_the_merged_cut(server: Server, database) -> None:
    """Issue 13.4: the inventory tree's merge row (overlapSky 0) is opened with
    ``soda/sync?ID=<did1>;<did2>&POS=...``: the answer is the merge of those datasets for the
    region, checked against the input files reprojected independently (reproject, whole files)."""
    from reproject import reproject_interp

    lon, b, dl, db = 0.4, 0.0, 0.1, 0.1  # across the border of two Hi-GAL 70 um tiles (b = 0)
    pos = f"RANGE {lon - dl} {lon + dl} {b - db} {b + db}"
    rows = parse_search(client_get(server, f"/vlkb/datasets/siav2/query?POS={pos}&POSSYS=GALACTIC").content)
    merge_row = next(r for r in rows if r.overlap_sky == 0 and r.values["obs_collection"] == "Hi-GAL"
                     and r.values["obs_title"].endswith("70 um"))
    ident = merge_row.values["obs_publisher_did"]
    dids = ident.split(";")
    assert len(dids) == 2
    url = client_url(f"{server.url}/vlkb/datasets/soda/sync?ID={ident}&POS={pos}&POSSYS=GALACTIC")
    assert "%3B" in url  # the client's percent-encoding leaves ';' encoded
    resp = httpx.get(url, timeout=120, follow_redirects=False)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(resp.content)) as hdul:
        merged = hdul[0].data.astype(np.float64)
        header = hdul[0].header
    assert header["VLKBNSRC"] == 2
    out_wcs = WCS(header)
    # independently: each whole input file reprojected onto the answer's grid, coverage-weighted mean
    data_dir = database.home / "data"
    num = np.zeros_like(merged)
    den = np.zeros_like(merged)
    for did in dids:
        with fits.open(data_dir / did.split("?", 1)[1]) as src:
            values, weight = reproject_interp((src[0].data, WCS(src[0].header)), out_wcs, shape_out=merged.shape,
                                              order="bilinear")
        ok = np.isfinite(values) & (weight > 0)
        num[ok] += values[ok] * weight[ok]
        den[ok] += weight[ok]
    want = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    both = np.isfinite(want) & np.isfinite(merged)
    assert both.mean() > 0.95
    np.testing.assert_allclose(merged[both], want[both], rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(want)))
    # the answer covers the requested box on both tiles (b < 0 and b > 0)
    ny, nx = merged.shape
    corners = SkyCoord(out_wcs.pixel_to_world(np.array([0, nx - 1]), np.array([0, ny - 1]))).galactic
    pixel = float(max(proj_plane_pixel_scales(out_wcs)))
    assert min(corners.b.deg) <= b - db + pixel and max(corners.b.deg) >= b + db - pixel
    assert min(corners.l.wrap_at("180d").deg) <= lon - dl + pixel
    assert max(corners.l.wrap_at("180d").deg) >= lon + dl - pixel


def test_merge_row_of_unknown_datasets_is_404(server: Server) -> None:
    ident = "ivo://vlkb.test/vlkb?nosuch/a.fits;ivo://vlkb.test/vlkb?nosuch/b.fits"
    resp = client_get(server, f"/vlkb/datasets/soda/sync?ID={ident}&POS=RANGE 0.3 0.5 -0.1 0.1&POSSYS=GALACTIC")
    assert resp.status_code == 404 and b'value="ERROR"' in resp.content
