"""The covering datasets of a chunk of stamps (vo/stamps/coverage.py) against the tiles' own WCS.

The demo's Hi-GAL 160 um mosaic is four tiles overlapping by 10% around (l, b) = (0, 0). A chunk of
sources scattered over the overlaps is looked up in one statement; for each source, the tiles that
hold its whole circle (found here from each tile's FITS header with astropy, the circle kept well
inside or well outside every edge) must come first, nearest tile centre first, as the stamps rely on.
"""

from __future__ import annotations

import numpy as np
import psycopg
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from vo.caller import Caller
from vo.stamps.chunk import icrs_of
from vo.stamps.coverage import covering_many_blocking, resolve_blocking
from vo.stamps.stamp import Source

RADIUS = 5.0 / 3600
MARGIN = 30.0 / 3600  # no circle comes nearer a tile edge than this, so astropy and pgSphere agree


def _place(wcs: WCS, shape: tuple[int, int], l: float, b: float) -> str:  # noqa: E741
    """Where the circle at (l, b) lies in the tile: "inside" or "outside" by more than MARGIN, else "edge"."""
    x, y = wcs.world_to_pixel(SkyCoord(l * u.deg, b * u.deg, frame="galactic"))
    pad = MARGIN / abs(wcs.wcs.cdelt[1])
    if pad - 0.5 <= x <= shape[1] - 0.5 - pad and pad - 0.5 <= y <= shape[0] - 0.5 - pad:
        return "inside"
    if x < -0.5 - pad or x > shape[1] - 0.5 + pad or y < -0.5 - pad or y > shape[0] - 0.5 + pad:
        return "outside"
    return "edge"


def test_a_chunk_gets_the_tiles_holding_each_circle_nearest_first(database) -> None:
    caller = Caller()
    with psycopg.connect(database.url, autocommit=True) as conn:
        (survey,) = resolve_blocking(conn, ["Hi-GAL/160 um"], caller)
        dids = [r[0] for r in conn.execute(
            "SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = 'Hi-GAL' AND obs_title = %s",
            (survey.title,))]
        assert len(dids) == 4
        rng = np.random.default_rng(16)
        # over the central overlaps: |l| and |b| within a few arcmin of the seams, so most circles
        # lie in two or four tiles; the rest of the chunk anywhere on the mosaic
        seams = [(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.3, 0.3))) for _ in range(80)]
        seams += [(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.03, 0.03))) for _ in range(80)]
        seams += [(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.3, 0.3))) for _ in range(40)]
        sources = [Source(f"s{k}", l % 360.0, b, RADIUS) for k, (l, b) in enumerate(seams)]  # noqa: E741
        radec = icrs_of(sources)
        centres = [(s.l, s.b, s.radius, ra, dec) for s, (ra, dec) in zip(sources, radec, strict=True)]
        known: dict = {}
        covers = covering_many_blocking(conn, survey, centres, caller, known)

    tiles = {}
    for did in dids:
        ds = known.get(did)
        if ds is None:
            continue
        header = fits.getheader(ds.path)
        tiles[did] = (WCS(header).celestial, (header["NAXIS2"], header["NAXIS1"]), ds)
    checked = multi = 0
    for src, (ra, dec), cov in zip(sources, radec, covers, strict=True):
        l = src.l if src.l < 180 else src.l - 360  # noqa: E741
        places = {d: _place(w, shape, l, src.b) for d, (w, shape, _) in tiles.items()}
        holding = [d for d, where in places.items() if where == "inside"]
        if "edge" in places.values() or not holding:
            continue  # a circle near an edge: astropy's and pgSphere's edges may differ by a pixel
        here = SkyCoord(ra * u.deg, dec * u.deg)
        distance = {d: here.separation(SkyCoord(tiles[d][2].s_ra * u.deg, tiles[d][2].s_dec * u.deg)).deg
                    for d in holding}
        expected = sorted(holding, key=lambda d: (distance[d], d))
        assert [d.publisher_did for d in cov.full] == expected
        assert cov.partial == []
        checked += 1
        multi += len(holding) > 1
    assert checked >= 150 and multi >= 100
