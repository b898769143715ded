"""Ingest into the real database: new rows, updates on re-ingest (never duplicates), batches the
database partly refuses (the other files stay, the refused one leaves no row anywhere), files
on fsspec URLs, the ObsCore ``preview`` URL, and the survey rows."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import fsspec
import numpy as np
import psycopg
import pytest
from astropy.io import fits

from vo import storage
from vo.ingest.datasets import Outcome, ingest_datasets

AUTH = "vlkb.test"


def _survey() -> dict:
    return {"name": f"IngestDb{uuid.uuid4().hex[:8]}", "species": "Continuum", "transition": "70 um",
            "groups": ("team",)}


def _counts(conn: psycopg.Connection, survey: str) -> tuple[int, int]:
    obs = conn.execute("SELECT count(*) FROM ivoa.obscore WHERE obs_collection = %s", (survey,)).fetchone()[0]
    files = conn.execute("SELECT count(*) FROM vlkb.datasets WHERE survey = %s", (survey,)).fetchone()[0]
    return obs, files


@pytest.fixture()
def images(database, tmp_path: Path) -> list[Path]:
    out = []
    for f in sorted((database.home / "data" / "hi-gal-70um").glob("*.fits"))[:3]:
        out.append(tmp_path / f.name)
        shutil.copy(f, out[-1])
    assert len(out) == 3
    return out


def _all_sky(path: Path) -> Path:
    """A plate carree map of the whole sky: valid FITS and WCS, but a footprint of four corners
    on the poles, which pgSphere refuses as a polygon."""
    h = fits.Header()
    h.update({"CTYPE1": "GLON-CAR", "CTYPE2": "GLAT-CAR", "CRVAL1": 0.0, "CRVAL2": 0.0, "CRPIX1": 18.5,
              "CRPIX2": 9.5, "CDELT1": -10.0, "CDELT2": 10.0, "CUNIT1": "deg", "CUNIT2": "deg",
              "WAVELENG": 7e-5})
    fits.writeto(path, np.zeros((18, 36), np.float32), h)
    return path


def test_new_then_updated_never_duplicated(conn, images) -> None:
    survey = _survey()
    seen: list[tuple[str, Outcome, str | None]] = []
    first = ingest_datasets(conn, survey, images, authority=AUTH,
                            on_file=lambda *a: seen.append(a), batch_size=2)
    assert (first.ingested, first.updated, first.failed) == (3, 0, 0)
    assert [s[1] for s in seen] == [Outcome.INGESTED] * 3 and [s[0] for s in seen] == [str(p) for p in images]
    assert _counts(conn, survey["name"]) == (3, 3)
    # the same files again, one given by a relative-looking file:// URL: updates, no new rows
    again = ingest_datasets(conn, survey, ["file://" + str(images[0]), *images[1:]], authority=AUTH)
    assert (again.ingested, again.updated, again.failed) == (0, 3, 0)
    assert _counts(conn, survey["name"]) == (3, 3)
    rows = conn.execute(
        "SELECT o.obs_publisher_did, o.preview, o.access_url, d.path FROM ivoa.obscore o "
        "JOIN vlkb.datasets d ON d.publisher_did = o.obs_publisher_did WHERE o.obs_collection = %s "
        "ORDER BY d.path", (survey["name"],)).fetchall()
    for (did, preview, access, path), image in zip(rows, images, strict=True):
        assert path == str(image.resolve())
        # stored relative to the service: answers prefix the public base URL of the moment
        assert preview == "datalink/preview/" + quote(did.split("?", 1)[1], safe="/")
        assert access == "datalink/links?ID=" + quote(did, safe="")
    policy, count = conn.execute(
        "SELECT s.policy, s.dataset_count FROM datasets.surveys s WHERE s.name = %s", (survey["name"],)).fetchone()
    groups = conn.execute("SELECT groups FROM vlkb.survey_policies WHERE survey = %s", (survey["name"],)).fetchone()
    assert (policy, count, groups[0]) == ("PRIVATE", 3, ["team"])
    # re-ingest without saying who may read it: the survey stays restricted
    ingest_datasets(conn, {k: v for k, v in survey.items() if k != "groups"}, images[:1], authority=AUTH)
    rights = conn.execute("SELECT DISTINCT data_rights FROM ivoa.obscore WHERE obs_collection = %s",
                          (survey["name"],)).fetchall()
    policy = conn.execute("SELECT groups FROM vlkb.survey_policies WHERE survey = %s", (survey["name"],)).fetchone()
    assert rights == [("secure",)] and policy[0] == ["team"]
    # an explicit empty list opens it
    ingest_datasets(conn, {**survey, "groups": ()}, images[:1], authority=AUTH)
    assert conn.execute("SELECT groups FROM vlkb.survey_policies WHERE survey = %s",
                        (survey["name"],)).fetchone()[0] == []
    assert conn.execute("SELECT DISTINCT data_rights FROM ivoa.obscore WHERE obs_collection = %s",
                        (survey["name"],)).fetchall() == [("public",)]


def test_refused_file_leaves_nothing_and_the_batch_goes_on(conn, images, tmp_path: Path) -> None:
    survey = _survey()
    sky = _all_sky(tmp_path / "allsky.fits")
    (tmp_path / "empty.fits").write_bytes(b"")
    paths = [images[0], sky, images[1], tmp_path / "empty.fits", images[2]]
    report = ingest_datasets(conn, survey, paths, authority=AUTH, batch_size=10)
    assert (report.ingested, report.updated) == (3, 0)
    reasons = {Path(f.path).name: f.reason for f in report.failures}
    assert set(reasons) == {"allsky.fits", "empty.fits"}
    assert reasons["allsky.fits"].startswith("rejected by the database: ")
    assert reasons["empty.fits"].startswith("not a FITS file")
    assert _counts(conn, survey["name"]) == (3, 3)
    stored = {r[0] for r in conn.execute("SELECT path FROM vlkb.datasets WHERE survey = %s", (survey["name"],))}
    assert stored == {str(p.resolve()) for p in images}
    assert "allsky.fits" in report.summary() and "3 ingested, 0 updated, 2 skipped" in report.summary()


def test_same_name_twice_in_a_survey_is_refused(conn, images, tmp_path: Path) -> None:
    survey = _survey()
    other = tmp_path / "other"
    other.mkdir()
    twin = other / images[0].name
    shutil.copy(images[0], twin)
    report = ingest_datasets(conn, survey, [images[0], twin], authority=AUTH)
    assert report.ingested == 1 and [Path(f.path) for f in report.failures] == [twin]
    assert "file names must be unique within a survey" in report.failures[0].reason
    assert _counts(conn, survey["name"]) == (1, 1)


def test_memory_urls_are_stored_as_given(conn, images) -> None:
    survey = _survey()
    fs = fsspec.filesystem("memory")
    prefix = f"/ingest-{uuid.uuid4().hex}"
    try:
        for f in images:
            fs.pipe(f"{prefix}/{f.name}", f.read_bytes())
        urls = storage.expand(f"memory://{prefix}/*.fits")
        report = ingest_datasets(conn, survey, urls, authority=AUTH)
        assert report.ingested == 3 and not report.failures
        rows = conn.execute("SELECT path, size FROM vlkb.datasets WHERE survey = %s ORDER BY path",
                            (survey["name"],)).fetchall()
        assert rows == [(u, f.stat().st_size) for u, f in zip(urls, images, strict=True)]
    finally:
        fs.rm(prefix, recursive=True)
