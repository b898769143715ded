"""`vlkb ingest datasets`: good files land in ivoa.obscore, bad ones are named and skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from tests.app.test_cli_errors import run_vlkb

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
        with psycopg.connect(database.url) as conn:
            conn.execute("DELETE FROM ivoa.obscore WHERE obs_collection = %s", (SURVEY,))
            conn.execute("DELETE FROM vlkb.datasets WHERE survey = %s", (SURVEY,))
            conn.execute("DELETE FROM datasets.surveys WHERE name = %s", (SURVEY,))
            conn.execute("DELETE FROM vlkb.survey_policies WHERE survey = %s", (SURVEY,))
