"""Independent footprints of the demo FITS files, for checking SIA answers.

A query region is sampled densely (interior and boundary); each sample is taken to pixel
coordinates with each file's astropy.wcs, and the region matches the file when a sample falls
on the file's pixel grid. To stay clear of sampling and edge-shape differences (the service's
footprints are four corners joined by great circles), a file *must* match when a sample lies
inside its grid shrunk by a margin, and *may* match when one lies inside the grid grown by
it; test regions are chosen so that both sets are equal, which makes the answer exact.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

MARGIN = 0.015  # degrees
STEPS = 60  # samples along each dimension of a region
_C = 299_792_458.0


@dataclass(frozen=True)
class Footprint:
    """One demo file: its key (``survey-dir/file.fits``), celestial WCS, grid size and band (m)."""

    key: str
    survey_dir: str
    wcs: WCS
    shape: tuple[int, int]
    scale: float
    band: tuple[float, float]

    @property
    def crosses_l0(self) -> bool:
        """Whether the file's grid straddles Galactic longitude 0."""
        nx, ny = self.shape
        corners = self.wcs.pixel_to_world([-0.5, nx - 0.5, nx - 0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5])
        lon = corners.galactic.l.deg
        return bool((lon > 270).any() and (lon < 90).any())

    def distance(self, points: SkyCoord) -> np.ndarray:
        """Signed distance (deg, approximately) of each point outside the pixel grid; NaN if unprojectable."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, y = self.wcs.world_to_pixel(points)
        nx, ny = self.shape
        d = np.maximum(np.maximum(-0.5 - x, x - (nx - 0.5)), np.maximum(-0.5 - y, y - (ny - 0.5)))
        return d * self.scale


def _band(h: fits.Header) -> tuple[float, float]:
    if "WAVEMIN" in h:
        return float(h["WAVEMIN"]), float(h["WAVEMAX"])
    if "FREQ" in h:
        f, bw = float(h["FREQ"]), float(h["BANDWID"])
        return _C / (f + bw / 2), _C / (f - bw / 2)
    factor = 1000.0 if h["CUNIT3"].strip() == "km/s" else 1.0  # to m/s
    edges = np.array([0.5, h["NAXIS3"] + 0.5])
    v = (h["CRVAL3"] + (edges - h["CRPIX3"]) * h["CDELT3"]) * factor  # m/s
    wl = _C / (h["RESTFRQ"] * (1 - v / _C))
    return float(wl.min()), float(wl.max())


@cache
def footprints(data_dir: Path) -> tuple[Footprint, ...]:
    """Every demo FITS file under ``data_dir``."""
    out = []
    for path in sorted(data_dir.glob("*/*.fits")):
        h = fits.getheader(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(h).celestial
        out.append(Footprint(
            key=f"{path.parent.name}/{path.name}", survey_dir=path.parent.name, wcs=wcs,
            shape=(int(h["NAXIS1"]), int(h["NAXIS2"])), scale=float(np.max(proj_plane_pixel_scales(wcs))),
            band=_band(h),
        ))
    return tuple(out)


def circle(lon: float, lat: float, r: float, frame: str) -> SkyCoord:
    """Samples of a cone: rings of offsets around the centre, the boundary included."""
    centre = SkyCoord(lon * u.deg, lat * u.deg, frame=frame)
    rho, theta = np.meshgrid(np.linspace(0, r, STEPS), np.linspace(0, 360, 2 * STEPS, endpoint=False))
    return centre.directional_offset_by(theta.ravel() * u.deg, rho.ravel() * u.deg)


def box(lon1: float, lon2: float, lat1: float, lat2: float, frame: str) -> SkyCoord:
    """Samples of a lon/lat range (longitudes may run across 0)."""
    lon, lat = np.meshgrid(np.linspace(lon1, lon2, STEPS), np.linspace(lat1, lat2, STEPS))
    return SkyCoord((lon.ravel() % 360) * u.deg, lat.ravel() * u.deg, frame=frame)


def polygon(vertices: list[tuple[float, float]], frame: str) -> SkyCoord:
    """Samples of a small convex polygon: a triangle fan, filled in lon/lat offsets from vertex 0."""
    v = np.array(vertices, dtype=float)
    v[:, 0] = v[0, 0] + (v[:, 0] - v[0, 0] + 180.0) % 360.0 - 180.0
    a, b = np.meshgrid(np.linspace(0, 1, STEPS), np.linspace(0, 1, STEPS))
    keep = a + b <= 1
    a, b = a[keep], b[keep]
    pts = [v[0] + a[:, None] * (v[i] - v[0]) + b[:, None] * (v[i + 1] - v[0]) for i in range(1, len(v) - 1)]
    p = np.concatenate(pts)
    return SkyCoord((p[:, 0] % 360) * u.deg, p[:, 1] * u.deg, frame=frame)


def expected(data_dir: Path, samples: SkyCoord, *, public_only: bool = True) -> set[str]:
    """The keys of the files a sampled region overlaps; fails if any file is too close to call."""
    must, may = set(), set()
    for fp in footprints(data_dir):
        if public_only and fp.survey_dir.startswith("meerkat-private"):
            continue
        d = fp.distance(samples)
        if (d < -MARGIN).any():
            must.add(fp.key)
        if (d < MARGIN).any():
            may.add(fp.key)
    assert must == may, f"region too close to call for {sorted(may - must)}"
    return must


def in_band(data_dir: Path, lo: float, hi: float) -> set[str]:
    """The public files whose band overlaps [lo, hi] metres."""
    return {fp.key for fp in footprints(data_dir)
            if not fp.survey_dir.startswith("meerkat-private") and fp.band[0] <= hi and fp.band[1] >= lo}
