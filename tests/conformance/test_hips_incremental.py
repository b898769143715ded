"""`vlkb hips build` after one dataset of a band changed updates only the tiles within its reach (issue 20).

A band of two demo images is ingested into a survey of its own and its HiPS built; one image's pixels
are then changed on disk (its file re-ingested, as an operator would). The next build must write the
deepest-order tiles near that image again and keep every other tile file as it was, and its tiles must
be those of a whole rebuild (``--force``) of the same files, at every order (numpy, tile by tile).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits

from tests.app.test_cli_errors import run_vlkb
from tests.conftest import forget_survey
from vo.hips.build import read_properties
from vo.ingest.obscore import survey_slug

SURVEY = "HipsIncrementalTest"


def _vlkb(database, hips: Path, *args: str):
    proc = run_vlkb(*args, VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port), VLKB_HIPS_DIR=str(hips))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _tiles(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.glob("Norder*/Dir*/Npix*.fits")}


def test_a_changed_dataset_updates_only_its_tiles_and_equals_a_whole_rebuild(database, tmp_path: Path) -> None:
    demo = sorted((database.home / "data").glob("mipsgal-24um/*.fits"))[:2]
    assert len(demo) == 2
    files = []
    for src in demo:
        shutil.copy(src, tmp_path / src.name)
        files.append(tmp_path / src.name)
    slug = survey_slug(SURVEY, "Continuum", "24 um")
    hips, whole = tmp_path / "hips", tmp_path / "whole"
    try:
        _vlkb(database, hips, "ingest", "datasets", "--survey", SURVEY, "--transition", "24 um", *map(str, files))
        first = _vlkb(database, hips, "hips", "build", SURVEY)
        assert "built in" in first, first
        order = int(read_properties(hips / slug / "properties")["hips_order"])
        before = {name: (p.stat().st_mtime_ns, p.read_bytes()) for name, p in _tiles(hips / slug).items()}
        deepest = [n for n in before if n.startswith(f"Norder{order}/")]

        with fits.open(files[1], mode="update") as hdul:  # the second image brighter by 10 everywhere
            hdul[0].data = hdul[0].data + np.float32(10)
        _vlkb(database, hips, "ingest", "datasets", "--survey", SURVEY, "--transition", "24 um", str(files[1]))
        second = _vlkb(database, hips, "hips", "build", SURVEY)
        assert "tiles updated" in second, second

        after = _tiles(hips / slug)
        rewritten = [n for n in deepest if n in after and after[n].read_bytes() != before[n][1]]
        kept = [n for n in deepest if n in after and after[n].stat().st_mtime_ns == before[n][0]]
        assert rewritten, "no tile of the changed image was written again"
        assert kept, "every deepest tile was written again: not an update"
        # the whole HiPS again from the same files, in another directory
        _vlkb(database, whole, "hips", "build", SURVEY, "--force")
        full = _tiles(whole / slug)
        assert set(full) == set(after)
        for name, path in full.items():
            np.testing.assert_allclose(fits.getdata(after[name]), fits.getdata(path), rtol=1e-6, equal_nan=True,
                                       err_msg=name)
        # and the kept tiles were right to be kept: the whole build gives them byte for byte the same pixels
        for name in kept:
            np.testing.assert_array_equal(fits.getdata(after[name]), fits.getdata(full[name]))
    finally:
        forget_survey(database.url, SURVEY)
