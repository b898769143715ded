"""`vlkb ingest datasets` rebuilds the coverage MOCs of the survey it fed, replacing the stale ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import astropy.units as u
import psycopg
from mocpy import MOC

from tests.app.test_cli_errors import run_vlkb
from tests.conftest import forget_survey

SURVEY = "MocRefreshTest"


def _centres(url: str) -> list[tuple[float, float]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = %s", (SURVEY,)).fetchall()


def _ingest(database, path: Path) -> str:
    proc = run_vlkb("ingest", "datasets", "--survey", SURVEY, "--transition", "24 um", str(path),
                    VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ingest_refreshes_the_survey_mocs(database, tmp_path: Path) -> None:
    cache = database.home / "cache" / "moc"
    before = set(cache.glob("*.fits")) if cache.exists() else set()
    demo = sorted((database.home / "data").glob("mipsgal-24um/*.fits"))[:2]
    assert len(demo) == 2
    try:
        shutil.copy(demo[0], tmp_path / demo[0].name)
        out = _ingest(database, tmp_path / demo[0].name)
        assert f"coverage MOCs of {SURVEY}: 2 refreshed" in out  # the survey and its one band
        first = set(cache.glob("*.fits")) - before
        assert len(first) == 2
        shutil.copy(demo[1], tmp_path / demo[1].name)
        _ingest(database, tmp_path / demo[1].name)
        second = set(cache.glob("*.fits")) - before
        assert len(second) == 2 and not (second & first)  # rebuilt, and the stale ones removed
        ra, dec = map(list, zip(*_centres(database.url), strict=True))
        assert len(ra) == 2
        for path in second:
            assert MOC.load(str(path), "fits").contains_lonlat(ra * u.deg, dec * u.deg).all()
    finally:
        forget_survey(database.url, SURVEY)
