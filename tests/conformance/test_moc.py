"""Coverage MOCs over HTTP against the real server and the demo surveys.

Truth comes from the database read as its owner (dataset centres, ICRS) and from astropy
(Galactic to ICRS); the MOCs are read back with mocpy from each serialisation.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import astropy.units as u
import httpx
import numpy as np
import psycopg
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from mocpy import MOC

from tests.conformance.test_access import GROUP, PRIVATE
from tests.oidc_issuer import TestIssuer

PUBLIC = ("Hi-GAL", "MIPSGAL", "ASKAP-EMU", "CHaMP")


def _centres(database, survey: str, band: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, l) of the dataset centres of ``survey`` (one band when given), read as the owner."""
    sql = "SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = %s"
    args: tuple[str, ...] = (survey,)
    if band is not None:
        sql += " AND obs_title = %s"
        args += (band,)
    with psycopg.connect(database.url) as c:
        rows = c.execute(sql, args).fetchall()
    ra, dec = np.array(rows, dtype=float).T
    gal = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").galactic
    return ra, dec, gal.l.deg


def _fits_moc(resp: httpx.Response) -> MOC:
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(resp.content)) as hdul:
        head = hdul[1].header
        # MOC 2.0 section 4.4: the keywords a reader relies on
        assert (head["MOCVERS"], head["MOCDIM"], head["COORDSYS"]) == ("2.0", "SPACE", "C")
    return MOC.from_fits(io.BytesIO(resp.content))


def _far_point(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """A point at least 60 degrees from every centre: the Galactic pole region."""
    pole = SkyCoord(0 * u.deg, 85 * u.deg, frame="galactic").icrs
    sep = pole.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    assert sep.min() > 60
    return float(pole.ra.deg), float(pole.dec.deg)


@pytest.mark.parametrize("survey", PUBLIC)
def test_survey_moc_holds_every_centre_and_no_far_point(http: httpx.Client, database, survey: str) -> None:
    ra, dec, _ = _centres(database, survey)
    moc = _fits_moc(http.get(f"/moc/{quote(survey)}"))
    assert moc.contains_lonlat(ra * u.deg, dec * u.deg).all()
    far = _far_point(ra, dec)
    assert not moc.contains_lonlat([far[0]] * u.deg, [far[1]] * u.deg).any()
    assert 0 < moc.sky_fraction < 0.01


@pytest.mark.parametrize("survey", ["Hi-GAL", "CHaMP"])
def test_survey_across_l0_is_covered_on_both_sides(http: httpx.Client, database, survey: str) -> None:
    _, _, lon = _centres(database, survey)
    assert (lon < 5).any() and (lon > 355).any(), "the demo survey straddles l = 0"
    moc = _fits_moc(http.get(f"/moc/{survey}"))
    # the seam itself and points just either side of it, taken to ICRS by astropy
    pts = SkyCoord([0.0, 0.05, 359.95] * u.deg, [0.0, 0.0, 0.0] * u.deg, frame="galactic").icrs
    assert moc.contains_lonlat(pts.ra, pts.dec).all()
    # left and right of l = 0 the MOC reaches the farthest centres on each side
    east = lon[lon < 180].max()
    west = lon[lon > 180].min()
    side = SkyCoord([east, west] * u.deg, [0.0, 0.0] * u.deg, frame="galactic").icrs
    assert moc.contains_lonlat(side.ra, side.dec).all()


def test_band_mocs_partition_the_survey(http: httpx.Client, database) -> None:
    index = http.get("/moc").json()
    assert set(PUBLIC) <= set(index) and PRIVATE not in index
    bands = index["Hi-GAL"]["bands"]
    assert set(bands) == {"70um", "160um", "250um", "350um", "500um"}
    whole = _fits_moc(http.get("/moc/Hi-GAL"))
    union = MOC.new_empty(whole.max_order)
    for key, url in bands.items():
        part = _fits_moc(http.get(url))
        ra, dec, _ = _centres(database, "Hi-GAL", f"Continuum | {key[:-2]} um")
        assert part.contains_lonlat(ra * u.deg, dec * u.deg).all()
        union = union.union(part)
    assert union == whole
    champ = http.get("/moc").json()["CHaMP"]["bands"]
    assert set(champ) == {"13co-1-0", "c18o-1-0"}


def test_formats_by_parameter_and_accept_agree(http: httpx.Client) -> None:
    fits_moc = _fits_moc(http.get("/moc/MIPSGAL"))
    ascii_resp = http.get("/moc/MIPSGAL", params={"FORMAT": "ascii"})
    assert ascii_resp.headers["content-type"].startswith("text/plain")
    assert MOC.from_str(ascii_resp.text.strip()) == fits_moc
    json_resp = http.get("/moc/MIPSGAL", params={"format": "application/json"})
    assert json_resp.headers["content-type"] == "application/json"
    assert MOC.from_json({k: v for k, v in json_resp.json().items()}) == fits_moc
    negotiated = http.get("/moc/MIPSGAL", headers={"Accept": "text/html;q=0.9, application/json;q=0.8"})
    assert negotiated.headers["content-type"] == "application/json"
    assert http.get("/moc/MIPSGAL", headers={"Accept": "text/plain"}).text == ascii_resp.text
    assert http.get("/moc/MIPSGAL", headers={"Accept": "*/*"}).headers["content-type"] == "application/fits"


@pytest.mark.parametrize("url", ["/moc/MIPSGAL?FORMAT=png", "/moc/MIPSGAL?FORMAT=json&FORMAT=fits"])
def test_bad_parameters_are_dali_errors(http: httpx.Client, url: str) -> None:
    resp = http.get(url)
    assert resp.status_code == 400
    assert b'name="QUERY_STATUS" value="ERROR"' in resp.content


def test_dataset_moc_holds_its_centre(http: httpx.Client, database) -> None:
    with psycopg.connect(database.url) as c:
        did, ra, dec = c.execute("SELECT obs_publisher_did, s_ra, s_dec FROM ivoa.obscore "
                                 "WHERE obs_collection = 'ASKAP-EMU' ORDER BY 1 LIMIT 1").fetchone()
    moc = _fits_moc(http.get("/moc", params={"ID": did}))
    assert moc.contains_lonlat([ra] * u.deg, [dec] * u.deg).all()
    survey = _fits_moc(http.get("/moc/ASKAP-EMU"))
    assert moc.sky_fraction < survey.sky_fraction
    assert http.get("/moc", params={"ID": did + "-missing"}).status_code == 404


def test_restricted_survey_moc_follows_its_policy(auth_server, issuer: TestIssuer, database) -> None:
    ra, dec, _ = _centres(database, PRIVATE)
    member = {"Authorization": "Bearer " + issuer.token("alice", [GROUP])}
    outsider = {"Authorization": "Bearer " + issuer.token("bob", ["other"])}
    with httpx.Client(base_url=auth_server.url, timeout=60) as client:
        missing = client.get("/moc/No-such-survey")
        for headers in ({}, outsider):
            hidden = client.get(f"/moc/{PRIVATE}", headers=headers)
            assert hidden.status_code == missing.status_code == 404
            assert PRIVATE not in client.get("/moc", headers=headers).json()
        moc = _fits_moc(client.get(f"/moc/{PRIVATE}", headers=member))
        assert moc.contains_lonlat(ra * u.deg, dec * u.deg).all()
        assert PRIVATE in client.get("/moc", headers=member).json()
