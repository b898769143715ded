"""The merge engine on generated tiles: a known source, different grids, images and cubes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales

from vo.cutout import CutRequest, NoOverlapError
from vo.cutout.bounds import header_wcs
from vo.cutout.merge import MergeInput, merge
from vo.errors import UsageError
from vo.shapes import Circle, Range

# the injected source: Galactic position (deg), Gaussian sigma (deg), peak (MJy/sr)
SRC_L, SRC_B, SIGMA, PEAK = 30.013, 0.021, 0.004, 50.0
REST = 110_201_354_300.0


def _header(lc: float, n: int, pixel: float, *, nv: int = 0, v0: float = 0.0, dv: float = 0.0) -> fits.Header:
    h = fits.Header()
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CUNIT1="deg", CUNIT2="deg", CDELT1=-pixel, CDELT2=pixel,
             CRPIX1=(n + 1) / 2, CRPIX2=(n + 1) / 2, CRVAL1=lc, CRVAL2=0.0, BUNIT="MJy/sr", BMAJ=0.005, BMIN=0.005,
             BPA=0.0)
    if nv:
        h.update(CTYPE3="VRAD", CUNIT3="m/s", CRVAL3=v0, CDELT3=dv, CRPIX3=1.0, RESTFRQ=REST, SPECSYS="LSRK",
                 BUNIT="K")
    return h


def _tile(path: Path, lc: float, *, n: int = 120, pixel: float = 0.001, nv: int = 0, v0: float = 0.0,
          dv: float = 0.0, spectrum=None) -> Path:
    """A tile with the Gaussian source drawn analytically at its pixel centres (no noise)."""
    h = _header(lc, n, pixel, nv=nv, v0=v0, dv=dv)
    cel = header_wcs(h).celestial
    y, x = np.mgrid[0:n, 0:n]
    lon, lat = cel.pixel_to_world_values(x, y)
    d2 = ((lon - SRC_L) * math.cos(math.radians(SRC_B))) ** 2 + (lat - SRC_B) ** 2
    image = PEAK * np.exp(-d2 / (2 * SIGMA**2))
    if nv:
        v = v0 + dv * np.arange(nv)
        image = spectrum(v)[:, None, None] * image[None]
    fits.PrimaryHDU(image.astype(">f4"), h).writeto(path)
    return path


def _pixel(header: fits.Header) -> tuple[int, int]:
    """(row, column) of the source's position in a map of ``header``."""
    x, y = header_wcs(header).celestial.world_to_pixel_values(SRC_L, SRC_B)
    return round(float(y)), round(float(x))


def _centroid_and_flux(data: np.ndarray, header: fits.Header) -> tuple[float, float, float]:
    """First moment (l, b) and integrated flux (MJy/sr x deg^2) of a 2D map."""
    img = np.nan_to_num(data)
    y, x = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    total = img.sum()
    cx, cy = (img * x).sum() / total, (img * y).sum() / total
    wcs = header_wcs(header).celestial
    lon, lat = wcs.pixel_to_world_values(cx, cy)
    area = float(np.prod(proj_plane_pixel_scales(wcs)))
    return float(lon), float(lat), float(total * area)


def test_two_tiles_reproduce_the_injected_source(tmp_path) -> None:
    # two tiles with different grids (pixel 3.6" and 5.4", centres apart) overlapping on the source
    a = _tile(tmp_path / "a.fits", 30.04, n=120, pixel=0.001)
    b = _tile(tmp_path / "b.fits", 29.99, n=90, pixel=0.0015)
    req = CutRequest(region=Circle(lon=SRC_L, lat=SRC_B, radius=0.03), frame="galactic")
    merged = merge([MergeInput("ivo://x/vlkb?a", a), MergeInput("ivo://x/vlkb?b", b)], req, max_voxels=10**7)
    assert merged.used == ["ivo://x/vlkb?a", "ivo://x/vlkb?b"]
    scales = proj_plane_pixel_scales(header_wcs(merged.header).celestial)
    np.testing.assert_allclose(scales, 0.001, rtol=1e-6)  # the finest input pixel
    lon, lat, flux = _centroid_and_flux(merged.data, merged.header)
    expected = PEAK * 2 * math.pi * SIGMA**2
    assert abs(flux / expected - 1) < 0.01
    assert abs(lon - SRC_L) < 0.0005 and abs(lat - SRC_B) < 0.0005  # within half an output pixel
    # both tiles cover the source: its pixels have about two inputs' weight
    y, x = _pixel(merged.header)
    assert 1.9 < merged.coverage[y, x] <= 2.0 + 1e-6
    hdul = fits.HDUList.fromstring(merged.to_bytes())
    assert hdul[1].header["EXTNAME"] == "COVERAGE" and hdul[0].header["VLKBNSRC"] == 2


def test_disjoint_tile_is_skipped_and_no_overlap_is_an_error(tmp_path) -> None:
    a = _tile(tmp_path / "a.fits", 30.04)
    far = _tile(tmp_path / "far.fits", 35.0)
    req = CutRequest(region=Circle(lon=SRC_L, lat=SRC_B, radius=0.01), frame="galactic")
    merged = merge([MergeInput("a", a), MergeInput("far", far)], req, max_voxels=10**7)
    assert merged.used == ["a"] and merged.skipped[0][0] == "far" and "no overlap" in merged.skipped[0][1]
    with pytest.raises(NoOverlapError):
        merge([MergeInput("far", far)], req, max_voxels=10**7)


def test_too_large_a_grid_is_refused_before_reading(tmp_path) -> None:
    a = _tile(tmp_path / "a.fits", 30.04)
    req = CutRequest(region=Range(lon1=29.9, lon2=30.2, lat1=-0.1, lat2=0.1), frame="galactic")
    with pytest.raises(UsageError, match="more than"):
        merge([MergeInput("a", a)], req, max_voxels=1000)


def test_cubes_on_one_spectral_grid_keep_their_channels(tmp_path) -> None:
    line = lambda v: np.exp(-0.5 * ((v - 2000.0) / 3000.0) ** 2)  # noqa: E731
    a = _tile(tmp_path / "a.fits", 30.04, n=60, pixel=0.002, nv=20, v0=-10000.0, dv=1000.0, spectrum=line)
    b = _tile(tmp_path / "b.fits", 29.99, n=60, pixel=0.002, nv=20, v0=-5000.0, dv=1000.0, spectrum=line)
    req = CutRequest(region=Circle(lon=SRC_L, lat=SRC_B, radius=0.02), frame="galactic")
    merged = merge([MergeInput("a", a), MergeInput("b", b)], req, max_voxels=10**7)
    h = merged.header
    assert merged.data.shape[0] == 25  # the union -10 ... +14 km/s, 1 km/s channels
    assert h["CRVAL3"] == -10000.0 and h["CDELT3"] == 1000.0 and h["CUNIT3"] == "m/s" and h["RESTFRQ"] == REST
    # channels only one cube has are covered once; the shared ones twice, where the tiles overlap
    y, x = _pixel(h)
    assert merged.coverage[0, y, x] == pytest.approx(1.0) and merged.coverage[10, y, x] > 1.9
    k = 12  # v = 2 km/s, the line peak
    _, _, flux = _centroid_and_flux(merged.data[k], h)
    assert abs(flux / (PEAK * line(2000.0) * 2 * math.pi * SIGMA**2) - 1) < 0.01


def test_cubes_with_different_channels_are_regridded(tmp_path) -> None:
    line = lambda v: 1.0 + v / 1e5  # noqa: E731 - linear in v, so linear regridding is exact
    a = _tile(tmp_path / "a.fits", 30.04, n=60, pixel=0.002, nv=40, v0=-10000.0, dv=500.0, spectrum=line)
    b = _tile(tmp_path / "b.fits", 29.99, n=60, pixel=0.002, nv=10, v0=-9000.0, dv=2000.0, spectrum=line)
    req = CutRequest(region=Circle(lon=SRC_L, lat=SRC_B, radius=0.02), frame="galactic")
    merged = merge([MergeInput("a", a), MergeInput("b", b)], req, max_voxels=10**7)
    h = merged.header
    assert h["CDELT3"] == 2000.0  # the coarsest channel width
    v = h["CRVAL3"] + h["CDELT3"] * np.arange(merged.data.shape[0])
    y, x = _pixel(h)
    spectrum = merged.data[:, y, x] / merged.data[:, y, x].max() * line(v[np.nanargmax(merged.data[:, y, x])])
    good = np.isfinite(spectrum)
    np.testing.assert_allclose(spectrum[good], line(v[good]), rtol=1e-3)


def test_images_and_cubes_or_other_units_do_not_merge(tmp_path) -> None:
    a = _tile(tmp_path / "a.fits", 30.04, n=60, pixel=0.002)
    c = _tile(tmp_path / "c.fits", 30.0, n=60, pixel=0.002, nv=5, v0=0.0, dv=1000.0, spectrum=lambda v: v * 0 + 1)
    req = CutRequest(region=Circle(lon=SRC_L, lat=SRC_B, radius=0.02), frame="galactic")
    with pytest.raises(UsageError, match="units|cubes"):
        merge([MergeInput("a", a), MergeInput("c", c)], req, max_voxels=10**7)


def test_tiles_on_one_grid_are_added_pixel_for_pixel(tmp_path) -> None:
    # same CAR grid (pixel 0.002 deg, reference on the equator), tiles shifted by whole pixels
    paths = []
    for name, lc, value in (("a", 30.04, 1.0), ("b", 30.0, 3.0)):
        h = _header(lc, 60, 0.002)
        fits.PrimaryHDU(np.full((60, 60), value, dtype=">f4"), h).writeto(tmp_path / f"{name}.fits")
        paths.append(tmp_path / f"{name}.fits")
    req = CutRequest(region=Range(lon1=29.97, lon2=30.07, lat1=-0.02, lat2=0.02), frame="galactic")
    merged = merge([MergeInput("a", paths[0]), MergeInput("b", paths[1])], req, max_voxels=10**7)
    assert merged.header["VLKBMETH"] == "coverage-weighted mean" and "exact" in merged.header.comments["VLKBMETH"]
    assert set(np.unique(merged.data[np.isfinite(merged.data)])) == {1.0, 2.0, 3.0}
    assert set(np.unique(merged.coverage)) <= {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(merged.data[merged.coverage == 2], 2.0)
