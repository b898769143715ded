"""`vlkb ingest datasets`: good files land in ivoa.obscore, bad ones are named and skipped; band
keywords of maps from other services, required species/transition, re-ingest under a corrected
name and `vlkb ingest remove`, each checked over TAP, SIA, DataLink and SODA afterwards."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.io.votable import parse_single_table

from tests.app.test_cli_errors import assert_one_clear_line, run_vlkb
from tests.conftest import forget_survey
from vo.preview import preview_dir

SURVEY = "CliIngestTest"


def test_ingest_reports_and_skips_bad_files(database, tmp_path: Path) -> None:
    demo = sorted((database.home / "data").glob("hi-gal-70um/*.fits"))[:2]
    assert len(demo) == 2
    for f in demo:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "notfits.fits").write_text("this is not FITS")
    (tmp_path / "truncated.fits").write_bytes(demo[0].read_bytes()[:1000])
    try:
        proc = run_vlkb("ingest", "datasets", "--survey", SURVEY, "--transition", "70 um", str(tmp_path / "*.fits"),
                        VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port))
        assert proc.returncode == 0, proc.stderr
        assert "2 ingested, 0 updated, 2 skipped" in proc.stdout
        assert "notfits.fits" in proc.stdout and "truncated.fits" in proc.stdout
        with psycopg.connect(database.url) as conn:
            rows = conn.execute("SELECT obs_title FROM ivoa.obscore WHERE obs_collection = %s", (SURVEY,)).fetchall()
            assert rows == [("Continuum | 70 um",)] * 2
    finally:
        forget_survey(database.url, SURVEY)


# -- issue 13.5: band keywords, species and transition, re-ingest and remove --------------------

C = 299_792_458.0
OTHER = "CliIngestOther"


def _map(path: Path, cards: dict[str, object], *, lon: float = 30.0) -> Path:
    """A 16x16 Galactic CAR map with the given band cards (value or (value, comment))."""
    header = fits.Header()
    for key, value in {"CTYPE1": "GLON-CAR", "CTYPE2": "GLAT-CAR", "CRVAL1": lon, "CRVAL2": 0.0,
                       "CRPIX1": 8.5, "CRPIX2": 8.5, "CDELT1": -0.001, "CDELT2": 0.001, "BUNIT": "MJy/sr",
                       **cards}.items():
        header[key] = value
    fits.PrimaryHDU(np.arange(256, dtype=np.float32).reshape(16, 16), header).writeto(path, overwrite=True)
    return path


def _cube(path: Path) -> Path:
    """A 13CO-like cube: VRAD axis (m/s) with RESTFRQ."""
    header = fits.Header()
    for key, value in {"CTYPE1": "GLON-CAR", "CTYPE2": "GLAT-CAR", "CTYPE3": "VRAD", "CRVAL1": 31.0, "CRVAL2": 0.0,
                       "CRVAL3": 0.0, "CRPIX1": 4.5, "CRPIX2": 4.5, "CRPIX3": 1.0, "CDELT1": -0.001,
                       "CDELT2": 0.001, "CDELT3": 500.0, "CUNIT3": "m/s", "RESTFRQ": 110.2013543e9,
                       "SPECSYS": "LSRK", "BUNIT": "K"}.items():
        header[key] = value
    fits.PrimaryHDU(np.zeros((5, 8, 8), dtype=np.float32), header).writeto(path, overwrite=True)
    return path


def _vlkb(database, *args: str):
    return run_vlkb(*args, VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port))


def _tap(server, query: str) -> list[tuple]:
    resp = httpx.post(server.url + "/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query},
                      timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    table = parse_single_table(io.BytesIO(resp.content)).to_table()
    return [tuple(row) for row in table]


def _sia(server, survey: str) -> dict[str, tuple[float, float]]:
    resp = httpx.get(server.url + "/sia/query", params={"COLLECTION": survey}, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    table = parse_single_table(io.BytesIO(resp.content)).to_table()
    return {str(r["obs_publisher_did"]): (float(r["em_min"]), float(r["em_max"])) for r in table}


def _cleanup(database, *surveys: str) -> None:
    with psycopg.connect(database.url) as conn:
        for name in surveys:
            conn.execute("DELETE FROM ivoa.obscore WHERE obs_collection = %s", (name,))
            conn.execute("DELETE FROM vlkb.datasets WHERE survey = %s", (name,))
            conn.execute("DELETE FROM datasets.surveys WHERE name = %s", (name,))
            conn.execute("DELETE FROM vlkb.survey_policies WHERE survey = %s", (name,))


# (cards, expected em_min, em_max in metres), computed here with astropy.units
BANDS = [
    ({"BANDLO": 6.0e-5, "BANDHI": 8.5e-5, "BANDREF": 7.0e-5}, 6.0e-5, 8.5e-5),
    ({"BANDREF": 7.0e-5}, 7.0e-5, 7.0e-5),
    ({"WAVELEN": (250.0, "[um] reference wavelength")}, (250 * u.um).to_value(u.m), (250 * u.um).to_value(u.m)),
    ({"FREQ": (5.0, "[GHz] centre"), "BANDWID": (1.0, "[GHz]")},
     (5.5 * u.GHz).to_value(u.m, u.spectral()), (4.5 * u.GHz).to_value(u.m, u.spectral())),
    ({"CTYPE3": "FREQ", "CRVAL3": 1.284e9, "CDELT3": 8.56e8, "CRPIX3": 1.0, "CUNIT3": "Hz"},
     C / (1.284e9 + 4.28e8), C / (1.284e9 - 4.28e8)),
]


@pytest.mark.parametrize(("cards", "lo", "hi"), BANDS, ids=["bandlo-hi", "bandref", "wavelen-um", "freq-ghz",
                                                            "degenerate-freq-axis"])
def test_band_keywords_of_2d_maps(database, server, tmp_path: Path, cards, lo, hi) -> None:
    path = _map(tmp_path / "map.fits", cards)
    try:
        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, "--transition", "band", str(path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "1 ingested" in proc.stdout, proc.stdout
        found = _sia(server, SURVEY)
        assert len(found) == 1
        (em_min, em_max), = found.values()
        assert em_min == pytest.approx(lo, rel=1e-9) and em_max == pytest.approx(hi, rel=1e-9)
    finally:
        _cleanup(database, SURVEY)


def test_cube_without_species_names_the_option(database, server, tmp_path: Path) -> None:
    path = _cube(tmp_path / "cube.fits")
    try:
        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, "--transition", "1-0", str(path))
        line = assert_one_clear_line(proc, "--species", "cube.fits")
        assert "Continuum" in line  # says why the default does not apply
        assert _tap(server, f"SELECT COUNT(*) FROM ivoa.obscore WHERE obs_collection = '{SURVEY}'") == [(0,)]
        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, "--species", "13CO", str(path))
        line = assert_one_clear_line(proc, "--transition", "110.201")  # the rest frequency of the line
        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, "--species", "13CO", "--transition", "1-0",
                     str(path))
        assert proc.returncode == 0, proc.stderr
        assert _tap(server, f"SELECT obs_title, dataproduct_type FROM ivoa.obscore WHERE obs_collection = '{SURVEY}'"
                    ) == [("13CO | 1-0", "cube")]
    finally:
        _cleanup(database, SURVEY)


def test_map_without_transition_suggests_one(database, server, tmp_path: Path) -> None:
    path = _map(tmp_path / "m70.fits", {"BANDLO": 6.0e-5, "BANDHI": 8.5e-5, "BANDREF": 7.0e-5})
    try:
        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, str(path))
        line = assert_one_clear_line(proc, "--transition", "BANDLO/BANDHI", "72.5 um")
        assert "m70.fits" in line
        assert _tap(server, f"SELECT COUNT(*) FROM ivoa.obscore WHERE obs_collection = '{SURVEY}'") == [(0,)]
        assert _tap(server, f"SELECT COUNT(*) FROM datasets.surveys WHERE name = '{SURVEY}'") == [(0,)]
    finally:
        _cleanup(database, SURVEY)


def test_reingest_under_a_corrected_transition_replaces_the_dataset(database, server, tmp_path: Path) -> None:
    path = _map(tmp_path / "tile.fits", {"BANDLO": 6.0e-5, "BANDHI": 8.5e-5})
    try:
        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, "--transition", "71 um", str(path))
        assert proc.returncode == 0 and "1 ingested" in proc.stdout, proc.stdout + proc.stderr
        (old,) = _sia(server, SURVEY)
        # its preview is drawn and cached
        key = old.split("?", 1)[1]
        assert httpx.get(f"{server.url}/datalink/preview/{key}", timeout=60).status_code == 200
        cache = database.home / "cache" / "previews"
        assert list(preview_dir(cache, old).glob("*.png"))

        proc = _vlkb(database, "ingest", "datasets", "--survey", SURVEY, "--transition", "70 um", str(path))
        assert proc.returncode == 0, proc.stderr
        assert "0 ingested, 1 updated" in proc.stdout and f"replaced {old}" in proc.stdout, proc.stdout
        (new,) = _sia(server, SURVEY)
        assert new != old and new.endswith("-70um/tile.fits")
        assert _tap(server, f"SELECT obs_publisher_did, obs_title FROM ivoa.obscore WHERE obs_collection = '{SURVEY}'"
                    ) == [(new, "Continuum | 70 um")]
        assert _tap(server, f"SELECT transition, dataset_count FROM datasets.surveys WHERE name = '{SURVEY}'"
                    ) == [("70 um", 1)]
        assert not preview_dir(cache, old).exists()
        assert httpx.get(f"{server.url}/datalink/preview/{key}", timeout=60).status_code == 404
    finally:
        _cleanup(database, SURVEY)


def test_remove_by_id_path_and_survey(database, server, tmp_path: Path) -> None:
    a = _map(tmp_path / "a.fits", {"WAVELENG": 7.0e-5}, lon=30.0)
    b = _map(tmp_path / "b.fits", {"WAVELENG": 7.0e-5}, lon=30.02)
    c = _map(tmp_path / "c.fits", {"WAVELENG": 7.0e-5}, lon=30.04)
    d = _map(tmp_path / "d.fits", {"WAVELENG": 2.5e-4}, lon=30.06)
    try:
        for survey, transition, files in ((SURVEY, "70 um", [a, b, c]), (OTHER, "250 um", [d])):
            proc = _vlkb(database, "ingest", "datasets", "--survey", survey, "--transition", transition,
                         *map(str, files))
            assert proc.returncode == 0, proc.stderr
        dids = sorted(_sia(server, SURVEY))
        assert len(dids) == 3
        # previews cached for every dataset of the first survey
        cache = database.home / "cache" / "previews"
        for did in dids:
            assert httpx.get(f"{server.url}/datalink/preview/{did.split('?', 1)[1]}", timeout=60).status_code == 200

        # one unknown target: nothing at all is removed
        proc = _vlkb(database, "ingest", "remove", dids[0], str(tmp_path / "nosuch.fits"))
        assert_one_clear_line(proc, "nothing removed", "nosuch.fits")
        assert len(_sia(server, SURVEY)) == 3

        proc = _vlkb(database, "ingest", "remove", "--dry-run", dids[0])
        assert proc.returncode == 0 and "would withdraw 1 dataset" in proc.stdout
        assert len(_sia(server, SURVEY)) == 3

        proc = _vlkb(database, "ingest", "remove", dids[0], str(b))  # by ID and by path, together
        assert proc.returncode == 0, proc.stderr
        assert "withdrew 2 datasets" in proc.stdout
        assert sorted(_sia(server, SURVEY)) == [dids[2]]
        assert not preview_dir(cache, dids[0]).exists() and not preview_dir(cache, dids[1]).exists()
        assert list(preview_dir(cache, dids[2]).glob("*.png"))
        assert _tap(server, f"SELECT dataset_count FROM datasets.surveys WHERE name = '{SURVEY}'") == [(1,)]
        # SODA no longer cuts a withdrawn dataset
        resp = httpx.get(server.url + "/soda/sync", params={"ID": dids[0], "POS": "CIRCLE 30 0 0.001",
                                                              "POSSYS": "GALACTIC"}, timeout=60)
        assert resp.status_code == 404

        proc = _vlkb(database, "ingest", "remove", "--survey", SURVEY)
        assert proc.returncode == 0 and "withdrew 1 dataset" in proc.stdout, proc.stdout + proc.stderr
        assert _sia(server, SURVEY) == {}
        assert _tap(server, f"SELECT COUNT(*) FROM datasets.surveys WHERE name = '{SURVEY}'") == [(0,)]
        assert len(_sia(server, OTHER)) == 1  # another survey is untouched
    finally:
        _cleanup(database, SURVEY, OTHER)
