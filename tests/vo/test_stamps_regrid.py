"""REGRID stamps (vo/stamps/resample.py, vo/stamps/regrid.py) against numpy truth and the general path.

A real FITS tile is written here: Gaussians of known total flux (Jy, computed here with numpy from
their analytic integral) on a fine 2" Galactic CAR grid in MJy/sr. Their REGRID stamps on a grid 2x
coarser must keep each total within 1% (the resampler conserves flux), sit at the stamp's centre, and
the stamps made from the kept tile (the job path) must equal the general path's (the sync path).
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from reproject import reproject_adaptive

from db.datasets import Dataset
from tests.vo.test_stamps_tiles import same_header
from vo.stamps.output import cube_file, stamp_file
from vo.stamps.regrid import RegridTiles
from vo.stamps.regrid import make_stamps as regrid_stamps
from vo.stamps.resample import KERNEL, resample
from vo.stamps.stamp import Options, Source, make_stamps

PIX = 2.0 / 3600
SR = (math.pi / 180) ** 2
#: (l, b, total Jy, FWHM arcsec): the sources drawn into the tile
GAUSSIANS = [(0.10, 0.05, 2.5, 10.0), (0.13, 0.03, 1.0, 8.0), (0.07, 0.08, 4.0, 14.0), (0.11, 0.09, 0.5, 9.0)]


def tile(path: Path, *, rotated: bool = False) -> tuple[Dataset, WCS]:
    """The Gaussians on a Galactic CAR tile, or (``rotated``) on an ICRS TAN tile turned by 30 degrees."""
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"], h["CRVAL1"], h["CRVAL2"] = "GLON-CAR", "GLAT-CAR", 0.1, 0.05
    h["CDELT1"], h["CDELT2"], h["CRPIX1"], h["CRPIX2"] = -PIX, PIX, 200.5, 150.5
    if rotated:
        c = SkyCoord(0.1 * u.deg, 0.05 * u.deg, frame="galactic").icrs
        h["CTYPE1"], h["CTYPE2"], h["CRVAL1"], h["CRVAL2"] = "RA---TAN", "DEC--TAN", c.ra.deg, c.dec.deg
        h["RADESYS"], h["CRPIX1"], h["CRPIX2"] = "ICRS", 200.5, 200.5
        a = math.radians(30.0)
        h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
    h["BUNIT"], h["BMAJ"], h["BMIN"] = "MJy/sr", 8.0 / 3600, 8.0 / 3600
    wcs = WCS(h)
    y, x = np.mgrid[0:300, 0:400] if not rotated else np.mgrid[0:400, 0:400]
    world = wcs.pixel_to_world(x, y)
    gal = world.galactic if rotated else world
    lon, lat = gal.l.deg, gal.b.deg
    lon = (lon + 180) % 360 - 180
    sky = np.zeros(x.shape)
    for l0, b0, total, fwhm in GAUSSIANS:
        s = fwhm / 3600 / (2 * math.sqrt(2 * math.log(2)))
        r2 = ((lon - l0) * np.cos(np.radians(b0))) ** 2 + (lat - b0) ** 2
        sky += total / (2 * math.pi * s * s * SR) * np.exp(-r2 / (2 * s * s)) / 1e6  # MJy/sr
    fits.PrimaryHDU(sky.astype(np.float32), h).writeto(path)
    corners = wcs.calc_footprint(axes=x.shape[::-1])
    ds = Dataset(publisher_did=f"ivo://test/vlkb?t/{path.name}", survey="T", path=str(path), size=None,
                 dataproduct_type="image", em_min=None, em_max=None, t_min=None, t_max=None, pol_states=None,
                 vel_min=None, vel_max=None, s_ra=None, s_dec=None, s_fov=None, s_region=None,
                 s_region_galactic=[float(v) for v in corners.ravel()])
    return ds, wcs


SOURCES = [Source(f"g{i}", l0 % 360, b0, 0.012) for i, (l0, b0, _, _) in enumerate(GAUSSIANS)]


@pytest.mark.parametrize("frame", ["galactic", "icrs"])
def test_a_gaussian_regridded_twice_coarser_keeps_its_total_flux(tmp_path: Path, frame: str) -> None:
    ds, _ = tile(tmp_path / "t.fits")
    opts = Options(regrid=True, pixel=2 * PIX, frame=frame)  # Jy/pixel, grid 4" (the tile's 2" x 2)
    kept = RegridTiles()
    for src, (l0, b0, total, _) in zip(SOURCES, GAUSSIANS, strict=True):
        for st in (make_stamps(src, [("T/1 um", [ds], [])], opts)[0],
                   regrid_stamps(src, [("T/1 um", [ds], [])], opts, kept)[0]):
            hdu = fits.open(io.BytesIO(stamp_file(st)))[0]
            w = WCS(hdu.header)
            assert abs(hdu.header["CDELT2"]) == pytest.approx(2 * PIX)
            assert np.isfinite(hdu.data).all()
            # the whole Gaussian lies in the stamp: its sum in Jy/pixel is the total flux
            assert float(np.sum(hdu.data, dtype=np.float64)) == pytest.approx(total, rel=0.01), st.conversions
            # the source at the centre pixel (within half a pixel), its centroid too
            c = SkyCoord(l0 * u.deg, b0 * u.deg, frame="galactic")
            x, y = w.world_to_pixel(c)
            ny, nx = hdu.data.shape
            assert abs(x - (nx - 1) / 2) <= 0.5 and abs(y - (ny - 1) / 2) <= 0.5
            yy, xx = np.mgrid[0:ny, 0:nx]
            cx, cy = (float(np.sum(v * hdu.data) / np.sum(hdu.data)) for v in (xx, yy))
            assert abs(cx - x) < 0.2 and abs(cy - y) < 0.2


@pytest.mark.parametrize("opts", [Options(regrid=True), Options(regrid=True, bkg="median", unit="MJy/sr"),
                                  Options(regrid=True, frame="icrs", pixel=3 * PIX, unit="Jy/beam")])
def test_stamps_from_the_kept_tile_equal_the_general_path(tmp_path: Path, opts: Options) -> None:
    ds, _ = tile(tmp_path / "t.fits")
    kept = RegridTiles()
    fast = [regrid_stamps(s, [("T/1 um", [ds], [])], opts, kept)[0] for s in SOURCES]
    assert sum(st.file is not None for st in fast) >= 2  # from the tile's header template
    for src, st in zip(SOURCES, fast, strict=True):
        general = make_stamps(src, [("T/1 um", [ds], [])], opts)[0]
        a, g = same_header(st, general)
        np.testing.assert_allclose(a.data, g.data, rtol=1e-5, atol=1e-6 * float(np.nanmax(np.abs(g.data))))
        # the header of a templated stamp is read back from its file when asked (a cube, a stack)
        assert st.header is not None and st.header["CRVAL1"] == pytest.approx(g.header["CRVAL1"], rel=1e-12)
    assert cube_file(fast[:1]) is not None


def test_every_survey_of_a_source_shares_one_grid(tmp_path: Path) -> None:
    fine, _ = tile(tmp_path / "fine.fits")
    coarse_path = tmp_path / "coarse.fits"
    with fits.open(tmp_path / "fine.fits") as hdul:  # the same sky at 6": every third pixel's mean
        h = hdul[0].header.copy()
        data = hdul[0].data[:, :399].reshape(100, 3, 133, 3).mean(axis=(1, 3))
    h["CDELT1"], h["CDELT2"], h["CRPIX1"], h["CRPIX2"] = -3 * PIX, 3 * PIX, (200.5 + 1) / 3, (150.5 + 1) / 3
    fits.PrimaryHDU(data, h).writeto(coarse_path)
    coarse = Dataset(**{**fine.__dict__, "publisher_did": "ivo://test/vlkb?t/coarse", "path": str(coarse_path)})
    kept = RegridTiles()
    # the third survey only meets the stamp (a merge: the general path) beside two kept tiles
    inputs = [("F/1 um", [fine], []), ("C/2 um", [coarse], []), ("M/3 um", [], [fine])]
    for src in SOURCES:
        for stamps in (regrid_stamps(src, inputs, Options(regrid=True), kept),
                       make_stamps(src, inputs, Options(regrid=True))):
            a, *others = (fits.open(io.BytesIO(stamp_file(s)))[0] for s in stamps)
            assert [s.method for s in stamps] == ["cut", "cut", "merge"]
            for b in others:
                assert a.data.shape == b.data.shape
                assert WCS(a.header).to_header_string() == WCS(b.header).to_header_string()
            assert abs(a.header["CDELT2"]) == pytest.approx(3 * PIX)  # the coarser survey's pixel


def test_the_resampler_is_reprojects_adaptive_one() -> None:
    """The library's 2D core called directly gives the public function's pixels."""
    rng = np.random.default_rng(5)
    data = rng.normal(10.0, 1.0, (40, 40))
    data[3, 5] = np.nan
    wcs_in = WCS(naxis=2)
    wcs_in.wcs.ctype, wcs_in.wcs.crval = ["GLON-TAN", "GLAT-TAN"], [0.1, 0.05]
    wcs_in.wcs.cdelt, wcs_in.wcs.crpix = [-PIX, PIX], [20.5, 20.5]
    grid = WCS(naxis=2)
    c = SkyCoord(0.1 * u.deg, 0.05 * u.deg, frame="galactic").icrs
    grid.wcs.ctype, grid.wcs.crval = ["RA---CAR", "DEC--CAR"], [c.ra.deg, c.dec.deg]
    grid.wcs.cdelt, grid.wcs.crpix = [-2.5 * PIX, 2.5 * PIX], [8.0, 8.0]
    grid.wcs.radesys = "ICRS"
    grid.pixel_shape = (15, 15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = reproject_adaptive((data, wcs_in), grid, shape_out=(15, 15), kernel=KERNEL, conserve_flux=False,
                                  roundtrip_coords=False, return_footprint=False)
    np.testing.assert_array_equal(resample(data, wcs_in, grid), want)


def test_a_rotated_tile_gives_the_grid_s_wcs_and_keeps_the_flux(tmp_path: Path) -> None:
    """A tile turned by 30 degrees in another frame: its stamps carry the common grid's WCS only (none
    of the tile's PCi_j or RADESYS), the same cards as a Galactic tile's stamp, and each total flux."""
    gal, _ = tile(tmp_path / "g.fits")
    rot, _ = tile(tmp_path / "r.fits", rotated=True)
    inputs = [("G/1 um", [gal], []), ("R/1 um", [rot], [])]
    kept = RegridTiles()
    for src, (_, _, total, _) in zip(SOURCES, GAUSSIANS, strict=True):
        for stamps in (regrid_stamps(src, inputs, Options(regrid=True), kept),
                       make_stamps(src, inputs, Options(regrid=True))):
            g, r = (fits.open(io.BytesIO(stamp_file(s)))[0] for s in stamps)
            assert not [k for k in r.header if k.startswith(("PC", "RADESYS", "EQUINOX")) or k in ("CD1_1", "CD1_2")]
            assert WCS(r.header).to_header_string() == WCS(g.header).to_header_string()
            for hdu in (g, r):
                assert float(np.sum(hdu.data, dtype=np.float64)) == pytest.approx(total, rel=0.01)
