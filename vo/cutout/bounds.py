"""From a cut request to a pixel box: sky region, spectral interval, time, polarization, pixel ranges.

Everything here works on a FITS header alone; no pixel is read. The sky region (a
:mod:`vo.shapes` shape in ICRS or Galactic degrees) is sampled along its boundary, the samples
are converted to the image's celestial frame and mapped to pixels with ``astropy.wcs``; the
box is the smallest pixel rectangle holding them, clipped to the image. wcslib normalises a
longitude about the reference point, so a map whose ``GLON-CAR`` grid crosses l = 0 (pixels
running 0.4 ... 0 ... 359.6) gives continuous pixel coordinates for ``RANGE -0.2 0.2``,
``RANGE 359.8 360.2`` and ``CIRCLE 359.9 0 0.1`` alike. A region on the far side of the
sky could map onto the image through the ±180° cut of the projection, so the box is kept only
when the region's enclosing circle reaches the image's enclosing circle.

Spectral cuts select whole channels whose centre lies in the interval: ``BAND`` in vacuum
wavelength (metres), the vlkb ``VELO`` extension in radio velocity (km/s) from the rest
frequency (``RESTFRQ``/``RESTWAV``). Boxes are half-open, 0-based, in FITS axis order.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.coordinates import BaseCoordinateFrame, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import wcs_to_celestial_frame

from vo.errors import UsageError
from vo.shapes import Circle, Interval, Polygon, Range

__all__ = [
    "C", "STOKES", "CutRequest", "NoOverlapError", "SkyGrid", "channel_frequencies", "header_wcs", "pixel_box",
    "NoRestFrequency", "rest_frequency", "sky_grid", "to_frequency",
]

C = 299_792_458.0  # m/s
#: FITS Stokes codes (WCS paper I, table 7) and their names.
STOKES = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR", -5: "XX", -6: "YY",
          -7: "XY", -8: "YX"}
_SAMPLES = 90  # boundary samples per circle / per edge


class NoOverlapError(UsageError):
    """The request selects no pixel of the dataset (SODA 1.0 section 5.2: a UsageError)."""


@dataclass(frozen=True)
class CutRequest:
    """What to cut, in world or pixel terms; every part is optional and the parts intersect.

    ``frame`` is ``"icrs"`` or ``"galactic"`` (the frame of ``region``); ``pixels`` holds, per
    FITS axis, a 1-based inclusive ``(lo, hi)`` with ``None`` for an open end.
    """

    region: Circle | Range | Polygon | None = None
    frame: str = "icrs"
    band: Interval | None = None
    velo: Interval | None = None
    time: Interval | None = None
    pol: tuple[str, ...] = ()
    pixels: tuple[tuple[int | None, int | None], ...] = field(default_factory=tuple)


def header_wcs(header: fits.Header) -> WCS:
    """The WCS of ``header``, quietly (the demo and most surveys trigger harmless 'fixes')."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


# -- sky ----------------------------------------------------------------------------------------
def _unit(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lo, la = np.deg2rad(lon), np.deg2rad(lat)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _lonlat(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vec = vec / np.linalg.norm(vec, axis=-1, keepdims=True)
    return np.rad2deg(np.arctan2(vec[..., 1], vec[..., 0])), np.rad2deg(np.arcsin(np.clip(vec[..., 2], -1, 1)))


def _sep(lon1, lat1, lon2, lat2) -> np.ndarray:
    dot = np.sum(_unit(np.asarray(lon1), np.asarray(lat1)) * _unit(np.asarray(lon2), np.asarray(lat2)), axis=-1)
    return np.rad2deg(np.arccos(np.clip(dot, -1, 1)))


def _samples(region: Circle | Range | Polygon) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Boundary samples (lon, lat) and the enclosing circle (lon, lat, radius) of ``region``."""
    if isinstance(region, Circle):
        lat0, lon0, r = map(math.radians, (region.lat, region.lon, region.radius))
        az = np.linspace(0, 2 * np.pi, 4 * _SAMPLES, endpoint=False)
        lat = np.arcsin(np.sin(lat0) * np.cos(r) + np.cos(lat0) * np.sin(r) * np.cos(az))
        lon = lon0 + np.arctan2(np.sin(az) * np.sin(r) * np.cos(lat0), np.cos(r) - np.sin(lat0) * np.sin(lat))
        return np.rad2deg(lon), np.rad2deg(lat), region.lon, region.lat, region.radius
    if isinstance(region, Range):
        lon1, lon2 = region.lon1, region.lon2
        if region.full_longitude or not (math.isfinite(lon1) and math.isfinite(lon2)):
            lon1, lon2 = 0.0, 360.0
        lat1, lat2 = max(region.lat1, -90.0), min(region.lat2, 90.0)
        ls, bs = np.linspace(lon1, lon2, 4 * _SAMPLES), np.linspace(lat1, lat2, _SAMPLES)
        lon = np.concatenate([ls, ls, np.full_like(bs, lon1), np.full_like(bs, lon2)])
        lat = np.concatenate([np.full_like(ls, lat1), np.full_like(ls, lat2), bs, bs])
        # lines of constant latitude are not great circles: sample the middle too, for the box
        lon = np.concatenate([lon, ls])
        lat = np.concatenate([lat, np.full_like(ls, (lat1 + lat2) / 2)])
        clon, clat = (lon1 + lon2) / 2, (lat1 + lat2) / 2
        return lon, lat, clon, clat, float(_sep(clon, clat, lon, lat).max())
    verts = _unit(*map(np.asarray, zip(*region.vertices, strict=True)))
    t = np.linspace(0, 1, _SAMPLES)[:, None]
    edges = [(1 - t) * a + t * b for a, b in zip(verts, np.roll(verts, -1, axis=0), strict=True)]
    lon, lat = _lonlat(np.concatenate(edges))
    mid_lon, mid_lat = _lonlat(verts.mean(axis=0))
    return lon, lat, float(mid_lon), float(mid_lat), float(_sep(mid_lon, mid_lat, lon, lat).max())


@dataclass(frozen=True)
class SkyGrid:
    """What every cut of one image needs of its celestial grid, computed once per dataset
    (vo/cutout/fitsout.py caches it): the celestial sub-WCS (a copy of the WCS to make), its
    frame, and the centre and radius of the footprint (the far-side test)."""

    cel: WCS
    frame: BaseCoordinateFrame
    centre: tuple[float, float]
    radius: float


def sky_grid(wcs: WCS, shape: Sequence[int]) -> SkyGrid:
    """The :class:`SkyGrid` of an image with WCS ``wcs`` and FITS axis lengths ``shape``."""
    cel = wcs.celestial
    nx, ny = shape[wcs.wcs.lng], shape[wcs.wcs.lat]
    corners = cel.calc_footprint(axes=(nx, ny), center=False)
    ilon0, ilat0 = cel.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)
    radius = float(_sep(ilon0, ilat0, corners[:, 0], corners[:, 1]).max())
    return SkyGrid(cel, wcs_to_celestial_frame(cel), (float(ilon0), float(ilat0)), radius)


def _sky_box(wcs: WCS, shape: Sequence[int], region: Circle | Range | Polygon,
             frame: str, grid: SkyGrid | None = None) -> dict[int, tuple[int, int]]:
    grid = grid or sky_grid(wcs, shape)
    cel = grid.cel
    ilon, ilat = wcs.wcs.lng, wcs.wcs.lat
    nx, ny = shape[ilon], shape[ilat]
    lon, lat, clon, clat, radius = _samples(region)
    img_frame = grid.frame

    # the usual case, a region in the image's own frame, needs no SkyCoord (a third of a small cut's time)
    same_frame = img_frame.name == frame.lower() and not hasattr(img_frame, "equinox")

    def to_image(lo, la) -> tuple[np.ndarray, np.ndarray]:
        lo, la = np.atleast_1d(np.asarray(lo, dtype=float)), np.atleast_1d(np.asarray(la, dtype=float))
        if same_frame:
            return lo % 360.0, la
        sph = SkyCoord(lo * u.deg, la * u.deg, frame=frame).transform_to(img_frame).spherical
        return sph.lon.deg, sph.lat.deg

    # far-side test: the region's enclosing circle must reach the image's
    (ilon0, ilat0), img_radius = grid.centre, grid.radius
    centre_lon, centre_lat = to_image(clon, clat)
    if float(_sep(centre_lon[0], centre_lat[0], ilon0, ilat0)) > radius + img_radius:
        raise NoOverlapError("no overlap: the region does not meet the dataset's footprint")
    x, y = cel.world_to_pixel_values(*to_image(lon, lat))
    good = np.isfinite(x) & np.isfinite(y)
    if not good.any():
        raise NoOverlapError("no overlap: the region cannot be projected onto the dataset's grid")
    x, y = x[good], y[good]
    box = {}
    for axis, values, n in ((ilon, x, nx), (ilat, y, ny)):
        # pixel i covers [i - 0.5, i + 0.5) (FITS pixel centres at integers, 0-based here)
        lo = max(0, math.floor(values.min() + 0.5))
        hi = min(n, math.floor(values.max() + 0.5) + 1)
        if lo >= hi:
            raise NoOverlapError("no overlap: the region lies outside the dataset's footprint")
        box[axis] = (lo, hi)
    return box


# -- spectral, time, polarization ---------------------------------------------------------------
def rest_frequency(header: fits.Header, wcs: WCS) -> float | None:
    """The rest frequency (Hz) from the WCS or the header, or None."""
    if wcs.wcs.restfrq:
        return float(wcs.wcs.restfrq)
    if wcs.wcs.restwav:
        return C / float(wcs.wcs.restwav)
    for key in ("RESTFRQ", "RESTFREQ"):
        if header.get(key):
            return float(header[key])
    return None


class NoRestFrequency(ValueError):
    """A velocity or redshift axis without a rest frequency: it has no frequencies."""


def to_frequency(kind: str, values: np.ndarray, f0: float | None) -> np.ndarray | None:
    """Frequencies (Hz) of spectral world values in SI units of axis type ``kind`` (the first four
    letters of its CTYPE), with ``f0`` the rest frequency; None for a type vlkb does not convert.
    The one conversion of cuts (:func:`channel_frequencies`) and of ingest (``em_min``/``em_max``)."""
    if kind == "FREQ":
        return values
    if kind in ("WAVE", "AWAV"):
        return C / values
    if f0 is None:
        raise NoRestFrequency(kind)
    if kind == "VRAD":
        return f0 * (1 - values / C)
    if kind == "VOPT":
        return f0 / (1 + values / C)
    if kind == "ZOPT":
        return f0 / (1 + values)
    if kind in ("VELO", "VELF"):
        return f0 * np.sqrt((C - values) / (C + values))
    return None


def channel_frequencies(header: fits.Header, wcs: WCS, n: int) -> np.ndarray:
    """Frequencies (Hz) of the channel centres of the spectral axis."""
    spec = wcs.wcs.spec
    world = wcs.sub([spec + 1]).wcs_pix2world(np.arange(n, dtype=float), 0)[0]  # SI units
    kind = wcs.wcs.ctype[spec][:4].rstrip("-")
    try:
        freq = to_frequency(kind, world, rest_frequency(header, wcs))
    except NoRestFrequency:
        raise UsageError(f"the dataset's spectral axis {kind} has no rest frequency: "
                         "cannot cut by BAND or VELO") from None
    if freq is None:
        raise UsageError(f"cannot cut the dataset's spectral axis of type {kind}")
    return freq


def _select(values: np.ndarray, iv: Interval, what: str) -> tuple[int, int]:
    # a channel exactly on an end stays in despite rounding in the unit conversions
    tol = 1e-6 * float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 0.0
    idx = np.flatnonzero((values >= iv.lo - tol) & (values <= iv.hi + tol))
    if idx.size == 0:
        raise NoOverlapError(f"no overlap: no channel of the dataset lies in the {what} interval")
    return int(idx.min()), int(idx.max()) + 1


def _spectral_box(header: fits.Header, wcs: WCS, n: int, req: CutRequest,
                  freq: np.ndarray | None = None) -> tuple[int, int]:
    freq = channel_frequencies(header, wcs, n) if freq is None else freq
    lo, hi = 0, n
    if req.band is not None:
        a, b = _select(C / freq, req.band, "BAND")
        lo, hi = max(lo, a), min(hi, b)
    if req.velo is not None:
        f0 = rest_frequency(header, wcs)
        if f0 is None:
            raise UsageError("VELO: the dataset has no rest frequency (RESTFRQ)")
        a, b = _select(C * (1 - freq / f0) / 1000.0, req.velo, "VELO")
        lo, hi = max(lo, a), min(hi, b)
    if lo >= hi:
        raise NoOverlapError("no overlap: the BAND and VELO intervals select no common channel")
    return lo, hi


def _check_band_keywords(header: fits.Header, band: Interval) -> None:
    """A 2D map with WAVEMIN/WAVEMAX: the BAND interval must meet them."""
    lo, hi = header.get("WAVEMIN"), header.get("WAVEMAX")
    if lo and hi and (band.hi < float(lo) or band.lo > float(hi)):
        raise NoOverlapError("no overlap: the dataset's wavelength range is outside the BAND interval")


def _check_time(header: fits.Header, time: Interval) -> None:
    start, end = header.get("MJD-OBS"), header.get("MJD-END")
    if start is None:
        return
    end = start if end is None else end
    if time.hi < float(start) or time.lo > float(end):
        raise NoOverlapError("no overlap: the dataset was observed outside the TIME interval")


def _stokes_box(wcs: WCS, axis: int, n: int, states: Sequence[str]) -> tuple[int, int]:
    codes = wcs.sub([axis + 1]).wcs_pix2world(np.arange(n, dtype=float), 0)[0]
    names = [STOKES.get(round(c)) for c in codes]
    idx = [i for i, name in enumerate(names) if name in states]
    if not idx:
        raise NoOverlapError(f"no overlap: the dataset has none of the polarization states {' '.join(states)}")
    return min(idx), max(idx) + 1


# -- the box ------------------------------------------------------------------------------------
def pixel_box(header: fits.Header, req: CutRequest, wcs: WCS | None = None,
              grid: SkyGrid | None = None, channels: np.ndarray | None = None) -> tuple[tuple[int, int], ...]:
    """Half-open 0-based ``(start, stop)`` per FITS axis (axis 1 first) of the cut.

    ``wcs`` is ``header_wcs(header)``, ``grid`` its :func:`sky_grid` and ``channels`` the
    :func:`channel_frequencies` of a cube when the caller has them.

    Raises :class:`NoOverlapError` when nothing is selected and :class:`~vo.errors.UsageError`
    when the request cannot apply to this dataset.
    """
    naxis = int(header.get("NAXIS", 0))
    shape = [int(header[f"NAXIS{i + 1}"]) for i in range(naxis)]
    box = [(0, n) for n in shape]
    wcs = header_wcs(header) if wcs is None else wcs

    def narrow(axis: int, lo: int, hi: int) -> None:
        a, b = max(box[axis][0], lo), min(box[axis][1], hi)
        if a >= b:
            raise NoOverlapError(f"no overlap: nothing selected on axis {axis + 1}")
        box[axis] = (a, b)

    if req.region is not None:
        if not wcs.has_celestial:
            raise UsageError("POS: the dataset has no celestial axes")
        for axis, (lo, hi) in _sky_box(wcs, shape, req.region, req.frame, grid).items():
            narrow(axis, lo, hi)
    spec = wcs.wcs.spec
    if req.band is not None or req.velo is not None:
        if spec >= 0 and shape[spec] > 1:
            narrow(spec, *_spectral_box(header, wcs, shape[spec], req, channels))
        elif req.band is not None:
            _check_band_keywords(header, req.band)
    if req.time is not None:
        _check_time(header, req.time)
    if req.pol:
        stokes = [i for i, t in enumerate(wcs.wcs.ctype) if t.upper().startswith("STOKES")]
        if stokes:
            narrow(stokes[0], *_stokes_box(wcs, stokes[0], shape[stokes[0]], req.pol))
    if len(req.pixels) > naxis:
        raise UsageError(f"PIXELS: {len(req.pixels)} ranges given for a dataset of {naxis} axes")
    for axis, (first, last) in enumerate(req.pixels):  # 1-based inclusive, None for "*"
        narrow(axis, 0 if first is None else first - 1, shape[axis] if last is None else last)
    return tuple(box)
