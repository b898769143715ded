"""Merging the cuts of several datasets of one survey into one FITS file on a common grid.

Each dataset is cut as a SODA cutout would be (:func:`vo.cutout.plan`, only the slab read),
reprojected with ``reproject.reproject_interp`` (bilinear, with its footprint) onto one
output grid, and combined as a coverage-weighted mean: ``sum(w_i * v_i) / sum(w_i)`` where
``w_i`` is the footprint of input ``i`` (1 inside it, fractions on its edge, 0 outside or
blank). The output has the merged image or cube in the primary HDU and the summed weights in
a ``COVERAGE`` image extension (about the number of inputs covering each pixel).

The output grid is chosen from the inputs so that no input loses resolution:

- when every input lies on one pixel grid (same frame, projection, reference and pixel size
  up to whole-pixel shifts, as the tiles of one survey usually do), the output is that grid,
  extended to hold every cut, and the inputs are added pixel for pixel: nothing is
  interpolated and the merge is exact (``VLKBMETH`` says which path was taken);
- otherwise, celestial axes: the frame and projection of the first input, the finest pixel
  scale of all inputs, and the smallest grid holding every cut (``find_optimal_celestial_wcs``);
  each input is interpolated (``reproject_interp``, bilinear) onto the part of that grid its
  footprint covers;
- spectral axis (cubes): the coarsest channel width of all inputs (a finer grid would
  invent resolution the coarser inputs do not have), on the channel grid of the first input,
  over the union of the inputs' spectral ranges. When every input has exactly those channels
  (the usual case in one survey) nothing is interpolated along the spectral axis; otherwise
  the 3D interpolation regrids it linearly.

The inputs must be of one survey, species and transition: the caller checks the survey; here
the images must agree on ``BUNIT`` and the cubes on the rest frequency too. No HTTP, no SQL.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel, proj_plane_pixel_scales, wcs_to_celestial_frame
from reproject import reproject_interp
from reproject.mosaicking import find_optimal_celestial_wcs

from vo.cutout.bounds import CutRequest, NoOverlapError, header_wcs, rest_frequency
from vo.cutout.fitsout import Cutout, fitting_comment, plan
from vo.errors import NotFoundError, UsageError

__all__ = ["MergeInput", "Merged", "merge"]

_SI_UNIT = {"FREQ": "Hz", "WAVE": "m", "AWAV": "m", "VRAD": "m/s", "VOPT": "m/s", "VELO": "m/s", "VELF": "m/s",
            "ZOPT": ""}
#: how far (pixels) from a whole-pixel shift two grids may be and still count as one grid
_ALIGNED = 1e-4
_KEEP = ("BUNIT", "BTYPE", "SPECSYS", "SSYSOBS", "VELREF", "TELESCOP", "INSTRUME", "SURVEY", "WAVELENG",
         "WAVEMIN", "WAVEMAX", "FREQ", "BANDWID")


@dataclass(frozen=True)
class MergeInput:
    """One dataset to merge: its DID (for provenance) and its file."""

    did: str
    #: a local path or a URL (:mod:`vo.cutout.source`)
    path: str | Path


@dataclass
class Merged:
    """A merge result: the combined values, the summed weights and the output header."""

    data: np.ndarray
    coverage: np.ndarray
    header: fits.Header
    used: list[str] = field(default_factory=list)
    #: DIDs left out, with the reason (no overlap with the region)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def hdulist(self) -> fits.HDUList:
        cov_header = self.header.copy()
        for key in ("BUNIT", "BTYPE", "BMAJ", "BMIN", "BPA"):
            cov_header.remove(key, ignore_missing=True)
        cov_header["BUNIT"] = ("", "sum of the inputs' footprint weights")
        cov_header["EXTNAME"] = "COVERAGE"
        return fits.HDUList([fits.PrimaryHDU(self.data, self.header), fits.ImageHDU(self.coverage, cov_header)])

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.hdulist().writeto(buf)
        return buf.getvalue()

    def write(self, dest: Path) -> None:
        self.hdulist().writeto(dest)


@dataclass(frozen=True)
class _Piece:
    did: str
    cut: Cutout
    wcs: WCS
    shape: tuple[int, ...]


def _spec_world(wcs: WCS, n: int) -> np.ndarray:
    """World values (SI) of the channel centres."""
    return wcs.sub([wcs.wcs.spec + 1]).wcs_pix2world(np.arange(n, dtype=float), 0)[0]


def _check_alike(pieces: Sequence[_Piece]) -> None:
    first = pieces[0]
    naxis = len(first.shape)
    units = {str(p.cut.header.get("BUNIT", "")).strip().lower() for p in pieces}
    if len(units) > 1:
        raise UsageError(f"ID: the datasets have different units ({', '.join(sorted(units))}); merge one survey")
    for p in pieces:
        if len(p.shape) != naxis:
            raise UsageError("ID: cannot merge images with cubes; merge datasets of one survey")
        if not p.wcs.has_celestial:
            raise UsageError(f"ID: {p.did} has no celestial axes")
    if naxis == 2:
        return
    if naxis != 3 or any(p.wcs.wcs.spec != 2 for p in pieces):
        raise UsageError("ID: only 2D images and 3D cubes with a spectral third axis can be merged")
    kinds = {p.wcs.wcs.ctype[2][:4].rstrip("-") for p in pieces}
    if len(kinds) > 1:
        raise UsageError(f"ID: the cubes have different spectral axes ({', '.join(sorted(kinds))})")
    rest = [rest_frequency(p.cut.header, p.wcs) for p in pieces]
    if rest[0] is not None and any(f is None or abs(f - rest[0]) > 1e-7 * rest[0] for f in rest):
        raise UsageError("ID: the cubes have different rest frequencies; merge one species and transition")


def _shared_grid(pieces: Sequence[_Piece]) -> tuple[WCS, tuple[int, int], list[tuple[int, int]]] | None:
    """The first input's pixel grid extended over all inputs, with each input's (row, column)
    offset on it, when every input lies on that grid (integer pixel shifts); else None."""
    first = pieces[0].wcs.celestial
    offsets = []
    for p in pieces:
        ny, nx = p.shape[-2:]
        x = np.array([0.0, nx - 1.0, 0.0, (nx - 1) / 2])
        y = np.array([0.0, 0.0, ny - 1.0, (ny - 1) / 2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fx, fy = pixel_to_pixel(p.wcs.celestial, first, x, y)
        dx, dy = np.asarray(fx) - x, np.asarray(fy) - y
        if not (np.all(np.isfinite(dx)) and np.all(np.isfinite(dy))):
            return None
        ox, oy = round(float(dx[0])), round(float(dy[0]))
        if np.abs(dx - ox).max() > _ALIGNED or np.abs(dy - oy).max() > _ALIGNED:
            return None
        offsets.append((oy, ox))
    y0 = min(o[0] for o in offsets)
    x0 = min(o[1] for o in offsets)
    ny = max(o[0] + p.shape[-2] for o, p in zip(offsets, pieces, strict=True)) - y0
    nx = max(o[1] + p.shape[-1] for o, p in zip(offsets, pieces, strict=True)) - x0
    grid = first.deepcopy()
    grid.wcs.crpix = [grid.wcs.crpix[0] - x0, grid.wcs.crpix[1] - y0]
    return grid, (ny, nx), [(oy - y0, ox - x0) for oy, ox in offsets]


def _spectral_offsets(pieces: Sequence[_Piece], start: float, step: float) -> list[int] | None:
    """Each cube's first channel on the common spectral axis, when its channels are exactly there."""
    out = []
    for p in pieces:
        world = _spec_world(p.wcs, p.shape[0])
        k = (world - start) / step
        if world.size > 1 and abs(float(np.median(np.diff(world))) - step) > 1e-9 * abs(step):
            return None
        if np.abs(k - np.round(k)).max() > _ALIGNED:
            return None
        out.append(round(float(k[0])))
    return out


def _celestial_grid(pieces: Sequence[_Piece]) -> tuple[WCS, tuple[int, int]]:
    first = pieces[0].wcs.celestial
    resolution = min(float(np.min(proj_plane_pixel_scales(p.wcs.celestial))) for p in pieces)
    projection = first.wcs.ctype[0][5:8] or "CAR"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITSFixedWarning and friends on the inputs' headers
        wcs, shape = find_optimal_celestial_wcs(
            [(p.shape[-2:], p.wcs.celestial) for p in pieces], frame=wcs_to_celestial_frame(first),
            projection=projection, resolution=resolution * u.deg,
        )
    return wcs, (int(shape[0]), int(shape[1]))


def _spectral_axis(pieces: Sequence[_Piece]) -> tuple[float, float, int]:
    """``(first channel, step, count)`` of the common spectral axis, SI units."""
    worlds = [_spec_world(p.wcs, p.shape[0]) for p in pieces]
    steps = [float(np.median(np.diff(w))) if w.size > 1 else 0.0 for w in worlds]
    step = max(steps, key=abs)
    if step == 0.0:
        raise UsageError("ID: the cubes have a single channel each; cut them with BAND or VELO")
    origin = float(worlds[0][0])
    lo = min(float(w.min()) for w in worlds)
    hi = max(float(w.max()) for w in worlds)
    ks = sorted(((lo - origin) / step, (hi - origin) / step))
    k0 = math.floor(ks[0] + 1e-6)
    k1 = math.ceil(ks[1] - 1e-6)
    return origin + k0 * step, step, k1 - k0 + 1


def _output_header(pieces: Sequence[_Piece], cel: WCS) -> fits.Header:
    header = cel.to_header()
    first = pieces[0]
    src = first.cut.header
    if len(first.shape) == 3:
        start, step, _ = _spectral_axis(pieces)
        kind = first.wcs.wcs.ctype[2]
        header["CTYPE3"] = kind
        header["CUNIT3"] = _SI_UNIT.get(kind[:4].rstrip("-"), "")
        header["CRVAL3"], header["CDELT3"], header["CRPIX3"] = start, step, 1.0
        header["RESTFRQ"] = (rest_frequency(src, first.wcs) or 0.0, "[Hz] rest frequency (0: unknown)")
        header["WCSAXES"] = 3
    for key in _KEEP:
        if key in src:
            header[key] = (src[key], src.comments[key])
    # the merged resolution is at best the coarsest input beam
    beams = [(float(p.cut.header["BMAJ"]), p.cut.header) for p in pieces if "BMAJ" in p.cut.header]
    if beams:
        _, widest = max(beams, key=lambda b: b[0])
        for key in ("BMAJ", "BMIN", "BPA"):
            if key in widest:
                header[key] = (widest[key], widest.comments[key])
    return header


def _reproject(piece: _Piece, data: np.ndarray, out_wcs: WCS,
               shape: tuple[int, ...]) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """``piece`` interpolated onto the part of the output grid its footprint covers (the rest
    of the grid would only get zero weights): that part's slices, values and footprint."""
    ny, nx = piece.shape[-2:]
    edge_x = np.concatenate([np.linspace(-0.5, nx - 0.5, 64), np.full(64, nx - 0.5), np.linspace(-0.5, nx - 0.5, 64),
                             np.full(64, -0.5)])
    edge_y = np.concatenate([np.full(64, -0.5), np.linspace(-0.5, ny - 0.5, 64), np.full(64, ny - 0.5),
                             np.linspace(-0.5, ny - 0.5, 64)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITSFixedWarning on the inputs' headers, NaN in interpolation
        ox, oy = (np.asarray(v) for v in pixel_to_pixel(piece.wcs.celestial, out_wcs.celestial, edge_x, edge_y))
        good = np.isfinite(ox) & np.isfinite(oy)
        if not good.any():
            return (), np.zeros(0), np.zeros(0)
        x0, x1 = max(0, math.floor(ox[good].min())), min(shape[-1], math.ceil(ox[good].max()) + 1)
        y0, y1 = max(0, math.floor(oy[good].min())), min(shape[-2], math.ceil(oy[good].max()) + 1)
        if x0 >= x1 or y0 >= y1:
            return (), np.zeros(0), np.zeros(0)
        sub = out_wcs.deepcopy()
        sub.wcs.crpix = [sub.wcs.crpix[0] - x0, sub.wcs.crpix[1] - y0, *sub.wcs.crpix[2:]]
        sub_shape = (*shape[:-2], y1 - y0, x1 - x0)
        values, footprint = reproject_interp((data, piece.wcs), sub, shape_out=sub_shape, order="bilinear",
                                             return_footprint=True, roundtrip_coords=False)
    where = (*(slice(None) for _ in shape[:-2]), slice(y0, y1), slice(x0, x1))
    return where, np.asarray(values), np.asarray(footprint)


def merge(inputs: Sequence[MergeInput], req: CutRequest, *, max_voxels: int,
          provenance: dict[str, tuple[str, str]] | None = None, history: str = "vlkb merge") -> Merged:
    """Cut each input for ``req``, reproject the cuts onto a common grid and combine them.

    Inputs that ``req`` does not reach are skipped and listed in :attr:`Merged.skipped`; when
    none is left, :class:`~vo.cutout.NoOverlapError`. A grid of more than ``max_voxels``
    pixels is a :class:`~vo.errors.UsageError` raised before any pixel is read.
    """
    if not inputs:
        raise NotFoundError("ID: none of the datasets exists")
    pieces: list[_Piece] = []
    skipped: list[tuple[str, str]] = []
    for item in inputs:
        try:
            cut = plan(item.path, req)
        except NoOverlapError as exc:
            skipped.append((item.did, exc.message))
            continue
        pieces.append(_Piece(item.did, cut, header_wcs(cut.header), cut.shape))
    if not pieces:
        raise NoOverlapError("no overlap: the region meets none of the datasets")
    _check_alike(pieces)
    shared = _shared_grid(pieces)
    cel, (ny, nx) = (shared[0], shared[1]) if shared else _celestial_grid(pieces)
    header = _output_header(pieces, cel)
    shape: tuple[int, ...] = (ny, nx)
    paste: list[tuple[int, ...]] | None = list(shared[2]) if shared else None
    if len(pieces[0].shape) == 3:
        start, step, nchan = _spectral_axis(pieces)
        shape = (nchan, ny, nx)
        channels = _spectral_offsets(pieces, start, step) if paste is not None else None
        paste = None if channels is None or paste is None else [(k, *o) for k, o in zip(channels, paste, strict=True)]
    voxels = int(np.prod(shape))
    if voxels > max_voxels:
        raise UsageError(f"the merged grid would hold {voxels} pixels (shape {shape}), more than the "
                         f"{max_voxels} allowed; use a smaller region or a narrower BAND/VELO")
    out_wcs = header_wcs(header)
    num = np.zeros(shape, dtype=np.float64)
    den = np.zeros(shape, dtype=np.float64)
    for i, piece in enumerate(pieces):
        data = piece.cut.read()
        if paste is not None:
            # one pixel grid: each input pixel is an output pixel, nothing to interpolate
            where = tuple(slice(o, o + n) for o, n in zip(paste[i], data.shape, strict=True))
            weight = np.isfinite(data).astype(np.float64)
            values = data
        else:
            where, values, footprint = _reproject(piece, data, out_wcs, shape)
            if not where:
                continue
            weight = np.where(np.isfinite(values), footprint, 0.0)
            weight[weight < 0] = 0.0
        num[where] += np.where(weight > 0, values, 0.0) * weight
        den[where] += weight
        del data, values, weight
    with np.errstate(invalid="ignore", divide="ignore"):
        data = np.where(den > 0, num / den, np.nan).astype(np.float32)
    for key, (value, comment) in (provenance or {}).items():
        header[key] = (value, fitting_comment(value, comment))
    header["VLKBNSRC"] = (len(pieces), "number of datasets merged")
    for i, piece in enumerate(pieces, start=1):
        header[f"VLKBS{i:03d}"] = (piece.did, fitting_comment(piece.did, "merged dataset"))
    header["VLKBMETH"] = ("coverage-weighted mean", "one grid: exact" if paste is not None
                          else "bilinear reprojection, footprint weights")
    header.add_history(history)
    return Merged(data=data, coverage=den.astype(np.float32), header=header, used=[p.did for p in pieces],
                  skipped=skipped)
