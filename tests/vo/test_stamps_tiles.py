"""The kept-tile stamp path (vo/stamps/tiles.py) against the general path and against numpy.

Real FITS tiles written here (float MJy/sr in Galactic CAR; scaled integers with BLANK in ICRS TAN),
stamps cut both ways from the same tile: the files must carry the same cards and the same values,
and the values must be the tile's own pixels times the pixel solid angle (computed here).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from db.datasets import Dataset
from vo.stamps.chunk import icrs_of
from vo.stamps.output import stamp_file
from vo.stamps.stamp import Options, Source, Stamp, make_stamps
from vo.stamps.tiles import TileCache

PIX = 4.0 / 3600


def tile(path: Path, *, icrs: bool = False, scaled: bool = False) -> tuple[Dataset, np.ndarray, WCS]:
    rng = np.random.default_rng(3)
    values = rng.normal(100.0, 5.0, (300, 400))
    h = fits.Header()
    if icrs:
        c = SkyCoord(0.1 * u.deg, 0.05 * u.deg, frame="galactic").icrs
        h["CTYPE1"], h["CTYPE2"], h["CRVAL1"], h["CRVAL2"] = "RA---TAN", "DEC--TAN", c.ra.deg, c.dec.deg
        h["RADESYS"] = "ICRS"
    else:
        h["CTYPE1"], h["CTYPE2"], h["CRVAL1"], h["CRVAL2"] = "GLON-CAR", "GLAT-CAR", 0.1, 0.05
    h["CDELT1"], h["CDELT2"] = -PIX, PIX
    h["CRPIX1"], h["CRPIX2"] = 200.5, 150.5
    h["BUNIT"] = "MJy/sr"
    h["BMAJ"] = h["BMIN"] = 12.0 / 3600
    if scaled:
        raw = np.round((values - 100.0) / 0.01).astype(np.int16)
        raw[10:20, 100:300] = -32768
        hdu = fits.PrimaryHDU(raw, h)
        hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.01, 100.0, -32768
        truth = raw * 0.01 + 100.0
        truth[raw == -32768] = np.nan
    else:
        hdu = fits.PrimaryHDU(values.astype(np.float32), h)
        truth = values.astype(np.float32).astype(np.float64)
    hdu.writeto(path)
    wcs = WCS(h)
    corners = wcs.calc_footprint(axes=(400, 300))
    ds = Dataset(publisher_did=f"ivo://test/vlkb?t/{path.name}", survey="T", path=str(path), size=None,
                 dataproduct_type="image", em_min=None, em_max=None, t_min=None, t_max=None, pol_states=None,
                 vel_min=None, vel_max=None, s_ra=None, s_dec=None, s_fov=None, s_region=None,
                 s_region_galactic=[float(v) for v in corners.ravel()])
    return ds, truth, wcs


SOURCES = [Source("a", 0.1, 0.05, 0.01), Source("b", 0.05, 0.02, 0.006), Source("c", 359.99, 0.1, 0.01),
           Source("edge", 0.1 + 195 * PIX, 0.05, 0.01)]  # the last one's window runs off the tile


def same_header(st: Stamp, general: Stamp) -> tuple[fits.PrimaryHDU, fits.PrimaryHDU]:
    """The files of a kept-tile stamp and of the same stamp made the general way, once their headers
    are checked equal card for card (floats to 1e-12); the two HDUs."""
    a = fits.open(io.BytesIO(stamp_file(st)))[0]
    g = fits.open(io.BytesIO(stamp_file(general)))[0]
    a.verify("exception")
    assert list(a.header) == list(g.header)
    assert list(a.header["HISTORY"]) == list(g.header["HISTORY"])
    assert st.conversions == general.conversions
    for key in g.header:
        if key not in ("HISTORY", "COMMENT"):
            assert a.header[key] == pytest.approx(g.header[key], rel=1e-12) \
                if isinstance(g.header[key], float) else a.header[key] == g.header[key], key
    return a, g


@pytest.mark.parametrize(("icrs", "scaled", "bkg"), [(False, False, None), (True, True, None),
                                                   (False, False, "median"), (True, True, "sigmaclip")])
def test_kept_tile_stamps_equal_the_general_path(tmp_path: Path, icrs: bool, scaled: bool, bkg: str | None) -> None:
    ds, truth, wcs = tile(tmp_path / "t.fits", icrs=icrs, scaled=scaled)
    opts = Options(bkg=bkg)
    cache = TileCache()
    radec = icrs_of(SOURCES)
    # None: the general path (as vo.stamps.chunk takes it)
    fast = [cache.stamp(s, rd, "T/1 um", [ds], opts) or make_stamps(s, [("T/1 um", [ds], [])], opts)[0]
            for s, rd in zip(SOURCES, radec, strict=True)]
    # stamps after the first come from the kept tile (one whose BKG state differs from the template's,
    # e.g. skipped on a blank annulus, takes the general path)
    assert sum(st.file is not None for st in fast[1:]) >= 2
    for src, st in zip(SOURCES, fast, strict=True):
        general = make_stamps(src, [("T/1 um", [ds], [])], opts)[0]
        a, g = same_header(st, general)
        np.testing.assert_array_equal(np.isnan(a.data), np.isnan(g.data))
        np.testing.assert_allclose(a.data, g.data, rtol=1e-6)
        # numpy truth: the tile's own pixels (WCS of the stamp -> tile pixel) x 1e6 x pixel solid angle
        ny, nx = a.data.shape
        world = WCS(a.header).pixel_to_world(np.arange(nx)[None, :].repeat(ny, 0), np.arange(ny)[:, None].repeat(nx, 1))
        tx, ty = (np.round(v).astype(int) for v in wcs.world_to_pixel(world))
        inside = (tx >= 0) & (tx < truth.shape[1]) & (ty >= 0) & (ty < truth.shape[0])
        want = np.full(a.data.shape, np.nan)
        want[inside] = truth[ty[inside], tx[inside]] * 1e6 * (PIX * math.pi / 180) ** 2
        if bkg is not None and "BKGLEVEL" in a.header:
            # the annulus level, measured here: the median of 0.7 R ... R (numpy; sigma-clipped: astropy)
            from astropy.stats import sigma_clipped_stats

            r = np.hypot(*np.mgrid[0:ny, 0:nx] - (ny - 1) / 2)
            ring = want[(r >= 0.7 * (ny - 1) / 2) & (r <= (ny - 1) / 2)]
            ring = ring[np.isfinite(ring)]
            level = sigma_clipped_stats(ring, sigma=3.0, maxiters=5)[1] if bkg == "sigmaclip" else np.median(ring)
            want -= level
            assert a.header["BKGLEVEL"] == pytest.approx(level / (PIX * math.pi / 180) ** 2, rel=1e-6)
        finite = np.abs(want[np.isfinite(want)])
        np.testing.assert_allclose(a.data, want, rtol=1e-5, atol=1e-5 * float(finite.max()) if finite.size else 0,
                                   equal_nan=True)
        assert a.header["VLKBCOV"] == pytest.approx(st.coverage)
    assert fast[-1].coverage < 0.9 and np.isnan(fast[-1].data).any()


def test_steps_that_resample_take_the_general_path(tmp_path: Path) -> None:
    ds, _, _ = tile(tmp_path / "t.fits")
    cache = TileCache()
    for opts in (Options(regrid=True), Options(beam=20.0)):
        assert cache.stamp(SOURCES[0], icrs_of(SOURCES[:1])[0], "T/1 um", [ds], opts) is None
