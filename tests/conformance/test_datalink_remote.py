"""Datasets whose files live behind an fsspec URL (here: a loopback HTTP server with byte ranges):
`vlkb ingest datasets` takes the URLs, reads only their headers, and DataLink serves the very
same bytes as ``#this`` and a PNG as ``#preview``, through the service."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
from pyvo.dal.adhoc import DatalinkResults

from tests.app.test_cli_errors import run_vlkb
from tests.conftest import forget_survey
from tests.http_files import serve_directory

SURVEY = "RemoteHttpTest"


def test_http_datasets_through_datalink(database, server, tmp_path: Path) -> None:
    data = database.home / "data"
    files = [sorted((data / "champ-13co-1-0").glob("*.fits"))[0], sorted((data / "hi-gal-70um").glob("*.fits"))[0]]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    with serve_directory(tmp_path) as remote:
        urls = [remote.url_of(f.name) for f in files]
        try:
            # a cube among the files: the species must be given (issue 13.5)
            proc = run_vlkb("ingest", "datasets", "--survey", SURVEY, "--species", "13CO", "--transition", "mixed",
                            *urls, remote.url_of("missing.fits"),
                            VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port))
            assert proc.returncode == 0, proc.stderr
            assert "2 ingested, 0 updated, 1 skipped" in proc.stdout, proc.stdout
            assert f"skipped {remote.url_of('missing.fits')}: cannot read the file: no such file" in proc.stdout
            for f in files:  # headers only
                assert 0 < remote.sent[f.name] < f.stat().st_size / 4, (f.name, remote.sent[f.name])
            with psycopg.connect(database.url) as conn:
                rows = dict(conn.execute(
                    "SELECT d.path, d.publisher_did FROM vlkb.datasets d WHERE d.survey = %s", (SURVEY,)).fetchall())
            assert set(rows) == set(urls)
            for url, f in zip(urls, files, strict=True):
                did = rows[url]
                links = DatalinkResults.from_result_url(f"{server.url}/datalink/links?ID={quote(did, safe='')}")
                by = {row.semantics: row for row in links}
                assert {"#this", "#cutout", "#preview"} <= set(by)
                this = httpx.get(by["#this"].access_url, timeout=30)
                assert this.status_code == 200 and this.headers["content-type"] == "application/fits"
                assert this.content == f.read_bytes()
                assert int(this.headers["content-length"]) == f.stat().st_size == by["#this"].content_length
                png = httpx.get(by["#preview"].access_url, timeout=60)
                assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        finally:
            forget_survey(database.url, SURVEY)
