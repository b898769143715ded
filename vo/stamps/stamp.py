"""One stamp: a source and a survey in, an image in the target unit with its provenance out.

The steps (issue 19; each is named in the header's ``VLKBCONV`` / ``HISTORY``):

1. **cut**: the nearest dataset whose footprint holds the whole stamp is cut by slab (the SODA
   cutout engine, :func:`vo.soda.open_cutout`); when none holds it, the datasets that meet it
   are merged (:func:`vo.soda.merge`, the merge engine), so a source on a tile edge is never a
   half-blank cut. Cubes are collapsed to a moment-0 map (sum x channel width, km/s) over
   ``VELO``/``BAND`` when given, else over every channel.
2. **window**: a square of ``2 n + 1`` pixels centred on the pixel nearest the source (so the
   source lies within half a pixel of the centre pixel), NaN where no data is.
3. **surface brightness** (Jy/sr, :mod:`vo.stamps.units`), what the next steps preserve.
4. **background** (``BKG=median|sigmaclip``): the median (or sigma-clipped median) of the annulus
   0.7 R ... R is subtracted; skipped, and flagged ``BKGSKIP``, when under half of it has data.
5. **common beam** (``BEAM``): convolution with radio-beam's kernel from the native to the target
   beam (``Beam.deconvolve(...).as_kernel``); a target smaller than the native beam is an error.
6. **common grid** (``REGRID``): reproject's adaptive resampler (flux-conserving for surface
   brightness, :mod:`vo.stamps.resample`) onto the source's grid, north-aligned in the requested
   frame, shared by every survey of the source. The whole cut is resampled (no window first), so
   the grid's edge pixels have their neighbours. In a job, a stamp held by one local 2D tile (no
   ``BEAM``) reads only the slab its grid needs from the tile kept open (:mod:`vo.stamps.regrid`).
7. **target unit** with the output pixel, beam and frequency.

No HTTP, no SQL: the datasets come from :mod:`vo.stamps.coverage`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.convolution import convolve_fft
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from radio_beam import Beam
from radio_beam.utils import BeamError

from vo import soda
from vo.caller import Dataset
from vo.cutout.bounds import header_wcs
from vo.errors import UsageError
from vo.shapes import Circle, Interval
from vo.stamps.resample import KERNEL, resample
from vo.stamps.units import Brightness, beam_of, to_surface, to_target

__all__ = ["Options", "Source", "Stamp", "StampError", "common_grid", "make_stamps"]

_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


class StampError(UsageError):
    """One stamp could not be made (reported in its manifest row; the others go on)."""


@dataclass(frozen=True)
class Source:
    """A stamp centre in Galactic degrees, its name and the stamp radius (degrees)."""

    name: str
    l: float  # noqa: E741 - the astronomer's name of Galactic longitude
    b: float
    radius: float
    #: the source's own size, degrees (``STACKSIZE``: a stack scales each stamp by it); None: not given
    size: float | None = None

    @property
    def icrs(self) -> tuple[float, float]:
        c = SkyCoord(self.l * u.deg, self.b * u.deg, frame="galactic").icrs
        return float(c.ra.deg), float(c.dec.deg)


@dataclass(frozen=True)
class Options:
    """What to do to every stamp of a request (see the module text)."""

    unit: str = "Jy/pixel"
    bkg: str | None = None
    regrid: bool = False
    frame: str = "galactic"
    #: output pixel of the common grid, degrees (None: the coarsest native pixel)
    pixel: float | None = None
    #: target beam: "largest", a FWHM in arcsec, or None (native beams kept)
    beam: str | float | None = None
    velo: Interval | None = None
    band: Interval | None = None
    max_voxels: int = 16_000_000


@dataclass
class Stamp:
    """A made stamp (``data`` in the target unit) or a failed one (``error``)."""

    source: Source
    survey: str
    data: np.ndarray | None = None
    header: fits.Header | None = None
    error: str = ""
    dids: list[str] = field(default_factory=list)
    conversions: list[str] = field(default_factory=list)
    coverage: float = 0.0
    method: str = ""
    #: the stamp's FITS file when it was written already (:mod:`vo.stamps.tiles`; ``header`` is then None)
    file: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass
class _Native:
    """A stamp on its native grid, in Jy/sr, before the common grid."""

    data: np.ndarray
    wcs: WCS
    header: fits.Header
    dids: list[str]
    method: str
    notes: list[str] = field(default_factory=list)


def _cel(wcs: WCS) -> WCS:
    """The celestial part of ``wcs``; an image's WCS itself (``WCS.sub`` copies, and costs a header parse)."""
    return wcs if wcs.naxis == 2 and wcs.has_celestial else wcs.celestial


def _pixel_deg(wcs: WCS) -> float:
    return float(np.mean(proj_plane_pixel_scales(_cel(wcs))))


def _cube_to_map(data: np.ndarray, header: fits.Header, wcs: WCS) -> tuple[np.ndarray, float]:
    """Moment 0: the sum over channels times the channel width in km/s (the factor returned)."""
    spec = wcs.sub([3])
    width = abs(float(spec.wcs.cdelt[0]))
    unit = u.Unit(spec.wcs.cunit[0] or "m/s")
    kms = (width * unit).to(u.km / u.s).value if unit.physical_type == "speed" else width
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        blank = np.all(~np.isfinite(data), axis=0)
        out = np.nansum(data, axis=0) * kms
    out[blank] = np.nan
    return out, float(kms)


def _window(data: np.ndarray, wcs: WCS, src: Source) -> tuple[np.ndarray, WCS]:
    """The ``2n+1`` square centred on the pixel nearest ``src`` (NaN outside ``data``) and its WCS."""
    cel = _cel(wcs)
    frame = "galactic" if cel.wcs.ctype[0].startswith("GLON") else "icrs"
    coord = SkyCoord(src.l * u.deg, src.b * u.deg, frame="galactic").transform_to(frame)
    x, y = (float(v) for v in cel.world_to_pixel(coord))
    if not (math.isfinite(x) and math.isfinite(y)):
        raise StampError("the source is outside the projection of the data")
    half = max(1, math.ceil(src.radius / _pixel_deg(cel)))
    ix, iy = round(x), round(y)
    size = 2 * half + 1
    out = np.full((size, size), np.nan, dtype=np.float64)
    ny, nx = data.shape
    x0, y0 = ix - half, iy - half
    sx, sy = slice(max(0, x0), min(nx, x0 + size)), slice(max(0, y0), min(ny, y0 + size))
    if sx.start < sx.stop and sy.start < sy.stop:
        out[sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = data[sy, sx]
    sub = cel.deepcopy()
    sub.wcs.crpix = [sub.wcs.crpix[0] - x0, sub.wcs.crpix[1] - y0]
    return out, sub


def _region(src: Source) -> Circle:
    # a margin so the centred square (corners included) is inside the cut
    return Circle(lon=src.l % 360.0, lat=src.b, radius=min(180.0, src.radius * 1.5 + 0.005))


def _params(dids: Sequence[str], src: Source, opts: Options) -> soda.SodaJobParams:
    return soda.SodaJobParams(ids=tuple(dids), regions=(_region(src),), merge=len(dids) > 1, possys="GALACTIC",
                              velo=opts.velo, band=opts.band)


def _native(full: Sequence[Dataset], partial: Sequence[Dataset], src: Source, opts: Options) -> _Native:
    """Cut (one dataset holds the stamp) or merge (several meet it), window, Jy/sr."""
    if full:
        ds = full[0]
        cut = soda.open_cutout(ds, _params([ds.publisher_did], src, opts).cuts()[0])
        if math.prod(cut.shape) > opts.max_voxels:
            raise StampError(f"the cut would hold {math.prod(cut.shape)} pixels; use a smaller SIZE")
        data, header, dids, method = cut.read(), cut.header, [ds.publisher_did], "cut"
    else:
        chosen = list(partial)
        merged = soda.merge(chosen, _params([d.publisher_did for d in chosen], src, opts), _region(src),
                            max_voxels=opts.max_voxels)
        data, header, dids, method = merged.data.astype(np.float64), merged.header, merged.used, "merge"
    wcs = header_wcs(header)
    notes: list[str] = []
    bunit = str(header.get("BUNIT", "")).strip()
    if data.ndim == 3:
        data, kms = _cube_to_map(data, header, wcs)
        notes.append(f"moment 0 over {int(header.get('NAXIS3', 0)) or 'all'} channels x {kms:g} km/s")
    elif data.ndim != 2:
        raise StampError(f"cannot make a stamp of data with {data.ndim} axes")
    # REGRID resamples the whole cut (the grid's edges need their neighbours); else the centred window
    data, cel = (data, _cel(wcs)) if opts.regrid else _window(data, wcs, src)
    out_header = cel.to_header()
    for key in ("BMAJ", "BMIN", "BPA", "RESTFRQ", "RESTFREQ", "FREQ", "WAVELENG", "TELESCOP", "INSTRUME"):
        if key in header:
            out_header[key] = header[key]
    surface, note = to_surface(data, bunit, Brightness.of(out_header, cel))
    notes.append(note)
    return _Native(surface, cel, out_header, dids, method, notes)


def _annulus(shape: tuple[int, int], inner: float, outer: float) -> np.ndarray:
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    r = np.hypot(x - (nx - 1) / 2, y - (ny - 1) / 2)
    return (r >= inner) & (r <= outer)


def subtract_background(data: np.ndarray, how: str) -> tuple[np.ndarray, float | None]:
    """``data`` minus the annulus level (0.7 R ... R) and that level; None when the annulus is mostly blank."""
    half = (min(data.shape) - 1) / 2
    ring = data[_annulus(data.shape, 0.7 * half, half)]
    good = ring[np.isfinite(ring)]
    if good.size < max(3, ring.size // 2):
        return data, None
    clipped = how == "sigmaclip"
    level = float(sigma_clipped_stats(good, sigma=3.0, maxiters=5)[1] if clipped else np.median(good))
    return data - level, level


def annulus_noise(data: np.ndarray) -> float:
    """Robust rms of the annulus 0.7 R ... R (1.4826 x MAD): the noise of a stamp or a stack."""
    half = (min(data.shape) - 1) / 2
    ring = data[_annulus(data.shape, 0.7 * half, half)]
    good = ring[np.isfinite(ring)]
    if good.size < 3:
        return float("nan")
    return float(1.4826 * np.median(np.abs(good - np.median(good))))


def _target_beam(beam: str | float | None, natives: Sequence[_Native]) -> Beam | None:
    if beam is None:
        return None
    if beam == "largest":
        beams = [b for n in natives if (b := beam_of(n.header)) is not None]
        return max(beams, key=lambda b: b.sr) if beams else None
    return Beam(float(beam) * u.arcsec)


def _convolve(n: _Native, target: Beam) -> None:
    native = beam_of(n.header)
    if native is None:
        raise StampError("BEAM: the data has no beam (BMAJ/BMIN) to convolve from")
    if native == target:
        return
    try:
        kernel_beam = target.deconvolve(native)
    except (BeamError, ValueError):
        raise StampError(f"BEAM: the target beam {target.major.to(u.arcsec):.2f} is smaller than the data's "
                         f"{native.major.to(u.arcsec):.2f}") from None
    if kernel_beam.major.to(u.deg).value > 2 * _pixel_deg(n.wcs) * max(n.data.shape):
        raise StampError("BEAM: the target beam is larger than the stamp; ask for a larger SIZE or a smaller BEAM")
    kernel = kernel_beam.as_kernel(_pixel_deg(n.wcs) * u.deg)
    # surface brightness is preserved by a normalised kernel, so the flux is too
    n.data = convolve_fft(n.data, kernel, normalize_kernel=True, nan_treatment="interpolate", preserve_nan=True,
                          allow_huge=False)
    n.notes.append(f"beam {native.major.to(u.arcsec).value:.2f}\" -> {target.major.to(u.arcsec).value:.2f}\"")
    n.header["VLKBBMA0"] = (native.major.to(u.deg).value, "[deg] beam major axis before convolution")
    for key, value in target.to_header_keywords().items():
        n.header[key] = value


def common_grid(src: Source, pixels: Sequence[float], opts: Options) -> WCS:
    """The grid shared by every survey of ``src``: north-aligned CAR in the requested frame, the
    coarsest of the native ``pixels`` (degrees; or ``opts.pixel``), centred on the source."""
    pixel = opts.pixel or max(pixels)
    half = max(1, math.ceil(src.radius / pixel))
    if (2 * half + 1) ** 2 > opts.max_voxels:
        raise StampError(f"PIXSCALE: a grid of {2 * half + 1} pixels a side is more than allowed; use a larger pixel")
    coord = SkyCoord(src.l * u.deg, src.b * u.deg, frame="galactic").transform_to(opts.frame)
    wcs = WCS(naxis=2)
    if opts.frame == "galactic":
        wcs.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
        wcs.wcs.crval = [float(coord.l.deg), float(coord.b.deg)]
    else:
        wcs.wcs.ctype = ["RA---CAR", "DEC--CAR"]
        wcs.wcs.crval = [float(coord.ra.deg), float(coord.dec.deg)]
        wcs.wcs.radesys = "ICRS"
    wcs.wcs.cdelt = [-pixel, pixel]
    wcs.wcs.crpix = [half + 1.0, half + 1.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.pixel_shape = (2 * half + 1, 2 * half + 1)
    return wcs


def _regrid(n: _Native, grid: WCS) -> None:
    # the native WCS cards go with the native grid (a rotated tile's PCi_j would otherwise rotate the stamp)
    for key in n.wcs.to_header():
        n.header.remove(key, ignore_missing=True, remove_all=True)
    n.data, n.wcs = resample(n.data, n.wcs, grid), grid
    n.notes.append(regrid_note(grid))


def regrid_note(grid: WCS) -> str:
    """The provenance note of a regrid onto ``grid``."""
    return f"reproject_adaptive ({KERNEL}) onto {grid.wcs.ctype[0][:4]} CAR grid of {_pixel_deg(grid) * 3600:.3f}\""


def _coverage(data: np.ndarray) -> float:
    half = (min(data.shape) - 1) / 2
    inside = _annulus(data.shape, 0.0, half)
    return float(np.isfinite(data[inside]).mean())


def _finish(n: _Native, src: Source, survey: str, opts: Options) -> Stamp:
    if opts.bkg is not None:
        n.data, level = subtract_background(n.data, opts.bkg)
        if level is None:
            n.header["BKGSKIP"] = (True, "background not subtracted: annulus mostly blank")
            n.notes.append("background skipped (annulus mostly blank)")
        else:
            n.header["BKGLEVEL"] = (level, "[Jy/sr] background subtracted (annulus 0.7R-R)")
            n.notes.append(f"background {opts.bkg} {level:.6g} Jy/sr subtracted")
    final = Brightness.of(n.header, n.wcs)
    data, note = to_target(n.data, opts.unit, final)
    n.notes.append(note)
    header = n.wcs.to_header()
    for card in n.header.cards:
        if card.keyword not in header and card.keyword not in ("COMMENT", "HISTORY", ""):
            header[card.keyword] = (card.value, card.comment)
    header["BUNIT"] = opts.unit + (" km/s" if any(x.startswith("moment 0") for x in n.notes) else "")
    header["OBJECT"] = src.name
    header["SURVEY"] = survey
    header["VLKBSRCL"] = (src.l, "[deg] source Galactic longitude")
    header["VLKBSRCB"] = (src.b, "[deg] source Galactic latitude")
    header["VLKBMETH"] = (n.method, "cut: one dataset; merge: tiles merged")
    header["VLKBNSRC"] = (len(n.dids), "number of input datasets")
    for i, did in enumerate(n.dids, start=1):
        header[f"VLKBS{i:03d}"] = did
    cov = _coverage(data)
    header["VLKBCOV"] = (round(cov, 6), "fraction of the stamp circle with data")
    for note in n.notes:
        header.add_history(f"vlkb stamp: {note}")
    header["VLKBVER"] = (soda.service_version(), "vlkb version that made this stamp")
    return Stamp(src, survey, data.astype(np.float32), header, dids=list(n.dids), conversions=list(n.notes),
                 coverage=cov, method=n.method)


#: another way to a survey's ``REGRID`` stamp (:func:`vo.stamps.regrid.make_stamps`): given the survey and
#: its full datasets, None (the general way) or the pixel (degrees) and the stamp on the common grid
Shortcut = Callable[[str, Sequence[Dataset]], tuple[float, Callable[[WCS], Stamp]] | None]


def make_stamps(src: Source, inputs: Sequence[tuple[str, Sequence[Dataset], Sequence[Dataset]]],
                opts: Options, shortcut: Shortcut | None = None) -> list[Stamp]:
    """The stamps of one source, one per ``(survey text, full, partial)``: failures are stamps
    with ``error`` set, never exceptions, so one bad survey does not lose the others.
    ``shortcut`` (with ``REGRID`` only) may make some of them another way, on the same grid."""
    natives: dict[str, _Native] = {}
    others: dict[str, tuple[float, Callable[[WCS], Stamp]]] = {}
    out: dict[str, Stamp] = {}
    for survey, full, partial in inputs:
        if not full and not partial:
            out[survey] = no_coverage(src, survey)
            continue
        try:
            other = None if shortcut is None else shortcut(survey, full)
            if other is not None:
                others[survey] = other
            else:
                natives[survey] = _native(full, partial, src, opts)
        except UsageError as exc:
            out[survey] = failed(src, survey, exc)
    target = _target_beam(opts.beam, list(natives.values())) if natives else None
    pixels = [_pixel_deg(n.wcs) for n in natives.values()] + [pixel for pixel, _ in others.values()]
    grid = common_grid(src, pixels, opts) if pixels and opts.regrid else None
    for survey, n in natives.items():
        try:
            if target is not None:
                _convolve(n, target)
            if grid is not None:
                _regrid(n, grid)
            out[survey] = _finish(n, src, survey, opts)
        except UsageError as exc:
            out[survey] = failed(src, survey, exc)
    for survey, (_, make) in others.items():
        assert grid is not None  # a shortcut is only given with REGRID
        try:
            out[survey] = make(grid)
        except UsageError as exc:
            out[survey] = failed(src, survey, exc)
    return [out[s] for s, _, _ in inputs]


def no_coverage(src: Source, survey: str) -> Stamp:
    """The stamp of a survey no dataset of which meets the stamp."""
    return Stamp(src, survey, error="no coverage: no dataset of this survey meets the stamp")


def failed(src: Source, survey: str, exc: UsageError) -> Stamp:
    """The stamp that ``exc`` stopped (its manifest row gives the reason)."""
    return Stamp(src, survey, error=f"{exc.code}: {exc.message}")
