"""FITS writers of the demo: 2D continuum images and 3D line cubes with real WCS.

Each survey of :data:`demo.surveys.DEMO_SURVEYS` gets a few overlapping tiles around
l = 0 (some crossing it) with a Galactic WCS (CAR, TAN or SIN), beam keywords and its
spectral coverage in the header (``WAVELENG``/``WAVEMIN``/``WAVEMAX`` in metres for infrared
maps, ``FREQ``/``BANDWID`` in Hz for radio maps, a ``VRAD`` axis with ``RESTFRQ`` for cubes).

The sky is drawn as sums of 2D Gaussians, each added on a small stamp around its position
(never over the whole image), vectorised over all sources of a stamp size at once. A source's
shape uses the local Jacobian of the WCS, so sizes and position angles are right in any
projection and across l = 0. Drawn are: the band's catalogue sources at their catalogue
positions, sizes and fluxes; filaments as ridges of overlapping Gaussians along their
lines; bubbles as rings; a smooth Galactic background; Gaussian noise. Cubes get clumps and
filament samples with a Gaussian line profile at their LSRK velocity. Files are float32
and byte-for-byte deterministic for a given seed (no creation date is written).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from demo.region import rng_for, wrap360
from demo.sky import Sky
from demo.structures import Structures
from demo.surveys import Layout, Survey

__all__ = ["Blobs", "draw_blobs", "tile_header", "write_survey"]

_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
_STAMPS = np.array([2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128, 181, 256])
_CHUNK = 4_000_000  # stamp pixels per vectorised batch


@dataclass
class Blobs:
    """Elliptical Gaussians to draw: positions (deg), FWHMs (deg), PA (deg, from +b to +l), peak
    amplitudes in image units and, for cubes, LSRK velocity and line FWHM (km/s)."""

    lon: np.ndarray
    lat: np.ndarray
    fwhma: np.ndarray
    fwhmb: np.ndarray
    pa: np.ndarray
    amp: np.ndarray
    vel: np.ndarray | None = None
    dv: np.ndarray | None = None

    @staticmethod
    def concat(parts: Iterable[Blobs]) -> Blobs:
        parts = [p for p in parts if len(p.lon)]
        if not parts:
            z = np.zeros(0)
            return Blobs(z, z, z, z, z, z)
        fields = ("lon", "lat", "fwhma", "fwhmb", "pa", "amp")
        merged = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
        if all(p.vel is not None for p in parts):
            merged["vel"] = np.concatenate([p.vel for p in parts])
            merged["dv"] = np.concatenate([p.dv for p in parts])
        return Blobs(**merged)

    def select(self, mask: np.ndarray) -> Blobs:
        return Blobs(
            self.lon[mask], self.lat[mask], self.fwhma[mask], self.fwhmb[mask], self.pa[mask],
            self.amp[mask], None if self.vel is None else self.vel[mask], None if self.dv is None else self.dv[mask],
        )


# -- headers ---------------------------------------------------------------------------------------
def _mjd(iso: str) -> float:
    return float(Time(iso, format="isot", scale="utc").mjd)


def tile_header(survey: Survey, layout: Layout, centre: tuple[float, float], index: int) -> fits.Header:
    """The primary header of one tile: WCS, beam, instrument, dates and spectral coverage."""
    lc, bc = centre
    cube = survey.dataproduct_type == "cube"
    nx, ny = layout.shape[0], layout.shape[1]
    h = fits.Header()
    h["BITPIX"] = -32
    h["NAXIS"] = 3 if cube else 2
    h["NAXIS1"], h["NAXIS2"] = nx, ny
    if cube:
        h["NAXIS3"] = layout.shape[2]
    h["WCSAXES"] = h["NAXIS"]
    proj = layout.projection
    h["CTYPE1"], h["CTYPE2"] = f"GLON-{proj}", f"GLAT-{proj}"
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    cdelt = layout.pixel / 3600.0
    h["CDELT1"], h["CDELT2"] = -cdelt, cdelt
    h["CRPIX1"] = (nx + 1) / 2.0
    if proj == "CAR":
        # CAR keeps its reference latitude on the equator, so the pixel grid follows l and b
        h["CRVAL1"], h["CRVAL2"] = float(wrap360(np.array(lc))), 0.0
        h["CRPIX2"] = (ny + 1) / 2.0 - bc / cdelt
    else:
        h["CRVAL1"], h["CRVAL2"] = float(wrap360(np.array(lc))), bc
        h["CRPIX2"] = (ny + 1) / 2.0
    if cube:
        unit = survey.velocity_unit or "km/s"
        factor = 1000.0 if unit == "m/s" else 1.0
        h["CTYPE3"], h["CUNIT3"] = "VRAD", unit
        h["CRVAL3"], h["CDELT3"], h["CRPIX3"] = layout.v0_kms * factor, layout.dv_kms * factor, 1.0
        h["SPECSYS"] = "LSRK"
        h["RESTFRQ"] = survey.rest_frequency
    h["BUNIT"] = layout.bunit
    h["BTYPE"] = "Brightness temperature" if layout.bunit == "K" else "Intensity"
    h["BMAJ"] = h["BMIN"] = layout.beam / 3600.0
    h["BPA"] = 0.0
    h["TELESCOP"] = survey.facility
    h["INSTRUME"] = survey.instrument
    h["OBJECT"] = f"G{float(wrap360(np.array(lc))):07.3f}{bc:+06.3f}"
    h["SURVEY"] = survey.name
    h["ORIGIN"] = "vlkb demo generator"
    if layout.wavelength is not None:
        h["WAVELENG"] = (layout.wavelength, "[m] central wavelength")
        if layout.band:
            h["WAVEMIN"] = (layout.band[0], "[m] band lower edge")
            h["WAVEMAX"] = (layout.band[1], "[m] band upper edge")
    elif not cube and layout.frequency is not None:
        h["FREQ"] = (layout.frequency, "[Hz] central frequency")
        h["BANDWID"] = (layout.bandwidth, "[Hz] bandwidth")
    start = _mjd(layout.date_obs) + 0.01 * index
    end = start + layout.exptime / 86400.0
    h["DATE-OBS"] = Time(start, format="mjd", scale="utc").isot
    h["MJD-OBS"] = start
    h["DATE-END"] = Time(end, format="mjd", scale="utc").isot
    h["MJD-END"] = end
    h["EXPTIME"] = (layout.exptime, "[s]")
    return h


# -- drawing ---------------------------------------------------------------------------------------
def _jacobian(wcs: WCS, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel positions and the local (xi, eta) per pixel matrix, xi = dl cos b, eta = db (deg)."""
    eps = 1e-4
    x0, y0 = wcs.world_to_pixel_values(lon, lat)
    xl, yl = wcs.world_to_pixel_values(lon + eps / np.cos(np.deg2rad(lat)), lat)
    xb, yb = wcs.world_to_pixel_values(lon, lat + eps)
    a = np.empty((len(lon), 2, 2))
    a[:, 0, 0], a[:, 0, 1] = (xl - x0) / eps, (xb - x0) / eps
    a[:, 1, 0], a[:, 1, 1] = (yl - y0) / eps, (yb - y0) / eps
    return x0, y0, np.linalg.inv(a)


def draw_blobs(image: np.ndarray, wcs: WCS, blobs: Blobs, velocity: np.ndarray | None = None) -> None:
    """Add ``blobs`` to ``image`` in place: (ny, nx), or (nchan, ny, nx) with channel ``velocity`` (km/s).

    ``wcs`` is the celestial WCS of the image. Every Gaussian is evaluated on a square stamp
    reaching 3.5 sigma along its major axis; stamps of one size are drawn together.
    """
    ny, nx = image.shape[-2:]
    if not len(blobs.lon):
        return
    x, y, jac = _jacobian(wcs, blobs.lon, blobs.lat)
    pixel = np.sqrt(np.abs(np.linalg.det(jac)))
    radius = np.ceil(3.5 * blobs.fwhma / _FWHM / pixel)
    inside = (x > -radius) & (x < nx - 1 + radius) & (y > -radius) & (y < ny - 1 + radius)
    bins = _STAMPS[np.minimum(np.searchsorted(_STAMPS, radius), len(_STAMPS) - 1)]
    flat = image.reshape(-1)
    for r in np.unique(bins[inside]):
        sel = np.flatnonzero(inside & (bins == r))
        size = (2 * int(r) + 1) ** 2
        step = max(1, _CHUNK // size // (1 if velocity is None else 13))
        for start in range(0, len(sel), step):
            part = sel[start:start + step]
            _draw_part(flat, (ny, nx), int(r), x[part], y[part], jac[part], blobs.select(part), velocity)


def _draw_part(flat: np.ndarray, shape: tuple[int, int], r: int, x: np.ndarray, y: np.ndarray, jac: np.ndarray,
               b: Blobs, velocity: np.ndarray | None) -> None:
    ny, nx = shape
    off = np.arange(-r, r + 1)
    ix = np.rint(x)[:, None, None] + off[None, None, :]
    iy = np.rint(y)[:, None, None] + off[None, :, None]
    dx, dy = ix - x[:, None, None], iy - y[:, None, None]
    xi = jac[:, 0, 0, None, None] * dx + jac[:, 0, 1, None, None] * dy
    eta = jac[:, 1, 0, None, None] * dx + jac[:, 1, 1, None, None] * dy
    pa = np.deg2rad(b.pa)[:, None, None]
    u = xi * np.sin(pa) + eta * np.cos(pa)
    v = xi * np.cos(pa) - eta * np.sin(pa)
    sa, sb = (b.fwhma / _FWHM)[:, None, None], (b.fwhmb / _FWHM)[:, None, None]
    val = b.amp[:, None, None] * np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))
    ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ix, iy = np.broadcast_to(ix, val.shape)[ok].astype(np.int64), np.broadcast_to(iy, val.shape)[ok].astype(np.int64)
    pix = iy * nx + ix
    if velocity is None:
        flat += np.bincount(pix, weights=val[ok], minlength=flat.size).astype(flat.dtype)
        return
    assert b.vel is not None and b.dv is not None  # blobs drawn into a cube carry velocities and line widths
    nchan = len(velocity)
    dv0 = velocity[1] - velocity[0]
    sig = b.dv / _FWHM
    half = int(np.ceil(4 * sig.max() / abs(dv0)))
    k = np.rint((b.vel - velocity[0]) / dv0)[:, None] + np.arange(-half, half + 1)[None, :]
    prof = np.exp(-0.5 * ((velocity[0] + k * dv0 - b.vel[:, None]) / sig[:, None]) ** 2)
    kin = (k >= 0) & (k < nchan)
    # each stamp pixel of a source, times the source's line profile, channel offset by offset
    src_pix = np.broadcast_to(np.arange(len(x))[:, None, None], val.shape)[ok]
    spatial = val[ok]
    for j in range(2 * half + 1):
        use = kin[:, j]
        if not use.any():
            continue
        chan = np.where(use, k[:, j], 0).astype(np.int64)
        w = prof[:, j] * use
        voxel = chan[src_pix] * (ny * nx) + pix
        flat += np.bincount(voxel, weights=spatial * w[src_pix], minlength=flat.size).astype(flat.dtype)


# -- what each survey shows ------------------------------------------------------------------------
def _catalogue_blobs(sky: Sky, layout: Layout) -> Blobs:
    cat = sky.tables[f"compactsources.{layout.catalogue}"]
    fa, fb = np.asarray(cat["fwhma"]) / 3600, np.asarray(cat["fwhmb"]) / 3600
    flux = np.asarray(cat["flux"])
    # MJy/sr peak of a Gaussian of integrated flux F (Jy): F / (2 pi sigma_a sigma_b) / 1e6
    sigma_sr = (fa / _FWHM) * (fb / _FWHM) * (np.pi / 180) ** 2
    amp = flux / (2 * np.pi * sigma_sr) / 1e6
    lon = np.asarray(cat["glon"])
    return Blobs(np.where(lon > 180, lon - 360, lon), np.asarray(cat["glat"]), fa, fb, np.asarray(cat["pa"]), amp)


def _ridges(structures: Structures, layout: Layout, beam_deg: float, peak: float, cube: bool) -> Blobs:
    """Filament ridges: points every third of a FWHM along each line, summing to ``peak`` x strength."""
    parts = []
    for lx, ly, width, strength, vel in structures.ridges:
        fwhm = np.hypot(width, beam_deg)
        seg = np.hypot(np.diff(lx), np.diff(ly))
        s = np.concatenate([[0.0], np.cumsum(seg)])
        n = max(2, int(np.ceil(s[-1] / (fwhm / 3))) + 1)
        t = np.linspace(0.0, s[-1], n)
        step = t[1] - t[0]
        amp = peak * strength * step / (np.sqrt(2 * np.pi) * fwhm / _FWHM)
        f = np.full(n, fwhm)
        parts.append(Blobs(
            np.interp(t, s, lx), np.interp(t, s, ly), f, f, np.zeros(n), np.full(n, amp),
            np.interp(t, s, vel) if cube else None, np.full(n, 2.5) if cube else None,
        ))
    return Blobs.concat(parts)


def _rings(structures: Structures, beam_deg: float, peak: float) -> Blobs:
    parts = []
    for rx, ry, strength in structures.rings:
        x, y = np.append(rx, rx[0]), np.append(ry, ry[0])
        s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        fwhm = max(beam_deg * 1.5, 0.004)
        n = int(np.ceil(s[-1] / (fwhm / 3)))
        t = np.linspace(0.0, s[-1], n, endpoint=False)
        step = t[1] - t[0]
        amp = peak * strength * step / (np.sqrt(2 * np.pi) * fwhm / _FWHM)
        f = np.full(n, fwhm)
        parts.append(Blobs(np.interp(t, s, x), np.interp(t, s, y), f, f, np.zeros(n), np.full(n, amp)))
    return Blobs.concat(parts)


def _radio(sky: Sky, structures: Structures, layout: Layout, seed: int, slug: str) -> Blobs:
    """Radio continuum: compact H II regions on protostellar clumps, background sources, bubble interiors."""
    rng = rng_for(seed, "radio", slug)
    beam = layout.beam / 3600
    hii = np.flatnonzero(sky.protostellar & (rng.random(len(sky.lon)) < 0.08))
    n_bg = 3000
    lon = np.concatenate([sky.lon[hii], rng.uniform(-2.0, 2.0, n_bg)])
    lat = np.concatenate([sky.lat[hii], rng.uniform(-1.6, 1.6, n_bg)])
    flux = np.concatenate([10 ** rng.uniform(-3.5, -0.5, len(hii)), 10 ** rng.uniform(-4.0, -1.5, n_bg)])
    size = np.concatenate([beam * rng.uniform(1.0, 2.5, len(hii)), np.full(n_bg, beam)])
    # Jy/beam peak of a Gaussian of flux F: F x beam area / source area
    amp = flux * beam**2 / size**2
    blobs = Blobs(lon, lat, size, size, np.zeros(len(lon)), amp)
    disc = [Blobs(np.array([np.mean(rx)]), np.array([np.mean(ry)]),
                  np.array([np.ptp(rx) * 0.6]), np.array([np.ptp(ry) * 0.6]), np.zeros(1),
                  np.array([strength * 20 * layout.noise])) for rx, ry, strength in structures.rings]
    return Blobs.concat([blobs, *disc])


def _cube_clumps(sky: Sky, layout: Layout, survey: Survey) -> Blobs:
    """Line emission of the clumps: peak brightness growing with mass, size with the beam and distance."""
    t13 = np.clip(1.2 * (sky.mass / 100.0) ** 0.35, 0.3, 12.0)
    ratio = 1.0 if survey.species == "13CO" else 0.18
    size = np.hypot(layout.beam / 3600, np.rad2deg(0.6e-3 / sky.dist))
    dv = np.clip(1.5 * (sky.mass / 100.0) ** 0.15, 1.0, 5.0)
    return Blobs(sky.lon, sky.lat, size, size, np.zeros(len(sky.lon)), t13 * ratio, sky.vlsr, dv)


def _background(wcs: WCS, shape: tuple[int, int], level: float) -> np.ndarray:
    """Smooth Galactic emission, brighter on the plane, computed on a coarse grid and expanded."""
    ny, nx = shape
    step = 8
    gy, gx = np.mgrid[0:ny + step:step, 0:nx + step:step]
    lon, lat = wcs.pixel_to_world_values(gx, gy)
    lon = np.where(lon > 180, lon - 360, lon)
    coarse = level * np.exp(-0.5 * (lat / 0.3) ** 2) * (1 + 0.3 * np.cos(2 * np.pi * lon / 1.3))
    # bilinear expansion of the coarse grid
    fy = np.arange(ny) / step
    fx = np.arange(nx) / step
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    wy, wx = (fy - y0)[:, None], (fx - x0)[None, :]
    c00 = coarse[np.ix_(y0, x0)]
    c01 = coarse[np.ix_(y0, x0 + 1)]
    c10 = coarse[np.ix_(y0 + 1, x0)]
    c11 = coarse[np.ix_(y0 + 1, x0 + 1)]
    return (c00 * (1 - wy) * (1 - wx) + c01 * (1 - wy) * wx + c10 * wy * (1 - wx) + c11 * wy * wx)


def _tile_data(survey: Survey, layout: Layout, header: fits.Header, sky: Sky, structures: Structures,
               seed: int, index: int) -> np.ndarray:
    wcs = WCS(header, naxis=2)
    nx, ny = layout.shape[0], layout.shape[1]
    rng = rng_for(seed, "noise", survey.slug, index)
    beam = layout.beam / 3600
    if survey.dataproduct_type == "cube":
        nchan = layout.shape[2]
        velocity = layout.v0_kms + layout.dv_kms * np.arange(nchan)
        data = np.zeros((nchan, ny, nx), dtype=np.float64)
        blobs = Blobs.concat([
            _cube_clumps(sky, layout, survey),
            _ridges(structures, layout, beam, 1.5 * layout.filament_weight, cube=True),
        ])
        draw_blobs(data, wcs, blobs, velocity)
        data += rng.standard_normal(data.shape, dtype=np.float32) * layout.noise
        return data.astype(np.float32)
    data = _background(wcs, (ny, nx), 25 * layout.noise)
    parts = []
    if layout.catalogue:
        parts.append(_catalogue_blobs(sky, layout))
    else:
        parts.append(_radio(sky, structures, layout, seed, survey.slug))
    if layout.filament_weight:
        parts.append(_ridges(structures, layout, beam, 40 * layout.noise * layout.filament_weight, cube=False))
    ring_weight = {"24 um": 1.0, "70 um": 0.6, "160 um": 0.3}.get(survey.transition, 0.0)
    if ring_weight:
        parts.append(_rings(structures, beam, 15 * layout.noise * ring_weight))
    draw_blobs(data, wcs, Blobs.concat(parts))
    data += rng.standard_normal(data.shape, dtype=np.float32) * layout.noise
    return data.astype(np.float32)


def write_survey(data_dir: Path, survey: Survey, layout: Layout, sky: Sky, structures: Structures,
                 seed: int) -> list[Path]:
    """Write the tiles of one survey under ``data_dir/<slug>/``; returns their paths."""
    out = data_dir / survey.slug
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, centre in enumerate(layout.tiles, start=1):
        header = tile_header(survey, layout, centre, k)
        data = _tile_data(survey, layout, header, sky, structures, seed, k)
        hdu = fits.PrimaryHDU(data=data, header=header)
        path = out / f"{survey.slug}_tile{k}.fits"
        hdu.writeto(path, overwrite=True, output_verify="exception")
        paths.append(path)
    return paths
