"""`vlkb ingest datasets` builds the survey's HiPS too when VLKB_HIPS_AFTER_INGEST is on (issue 20)."""

from __future__ import annotations

import shutil
from pathlib import Path

from astropy.coordinates import Galactic
from astropy.io import fits
from astropy.wcs import WCS
from astropy_healpix import HEALPix

from tests.app.test_cli_errors import run_vlkb
from tests.conftest import forget_survey
from vo.hips.build import read_properties
from vo.ingest.obscore import survey_slug

SURVEY = "HipsAfterIngestTest"


def _ingest(database, path: Path, hips: Path, **env: str) -> str:
    proc = run_vlkb("ingest", "datasets", "--survey", SURVEY, "--transition", "24 um", str(path),
                    VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port), VLKB_HIPS_DIR=str(hips), **env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ingest_builds_the_hips_of_the_survey_it_fed_when_enabled(database, tmp_path: Path) -> None:
    demo = sorted((database.home / "data").glob("mipsgal-24um/*.fits"))[0]
    path = tmp_path / demo.name
    shutil.copy(demo, path)
    slug = survey_slug(SURVEY, "Continuum", "24 um")
    try:
        _ingest(database, path, tmp_path / "off")
        assert not (tmp_path / "off" / slug).exists()  # off by default
        out = _ingest(database, path, tmp_path / "on", VLKB_HIPS_AFTER_INGEST="true")
        assert f"HiPS of {SURVEY}: 1 bands" in out, out
        props = read_properties(tmp_path / "on" / slug / "properties")
        assert props["hips_frame"] == "galactic"
        # the file's centre, computed here from its own WCS
        with fits.open(path) as hdul:
            w = WCS(hdul[0].header).celestial
            ny, nx = hdul[0].data.shape[-2:]
        centre = w.pixel_to_world((nx - 1) / 2, (ny - 1) / 2).galactic
        # the tile holding it (HEALPix nested, Galactic, at the HiPS order) was written
        order = int(props["hips_order"])
        npix = int(HEALPix(nside=2**order, order="nested", frame=Galactic()).skycoord_to_healpix(centre))
        assert (tmp_path / "on" / slug / f"Norder{order}" / f"Dir{npix // 10000 * 10000}" / f"Npix{npix}.fits").exists()
    finally:
        forget_survey(database.url, SURVEY)
