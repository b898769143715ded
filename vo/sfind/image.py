"""From a planned cut to the 2D image a finder searches: checks, moment-0 collapse, scratch file.

The cut comes from the cutout engine (:func:`vo.soda.open_cutout`), so only the slab of the
region is read. A cube becomes a moment-0 map over the ``BAND``/``VELO`` range it was cut to
(sum of the channels times the channel width, in image units times the spectral unit); a cube
with no range is refused, since summing every channel of a line survey is rarely what a user
wants. Every reason an image cannot be searched is a UsageError saying which.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from vo.cutout import Cutout
from vo.errors import TooLargeError, UsageError
from vo.sfind.finder import FinderImage

__all__ = ["prepare_image"]

#: keywords kept from the source header besides the celestial WCS (beam, units, provenance)
_KEEP = ("BUNIT", "BTYPE", "BMAJ", "BMIN", "BPA", "TELESCOP", "INSTRUME", "OBJECT", "SURVEY", "ORIGIN", "DATE-OBS",
         "MJD-OBS", "FREQ", "BANDWID", "WAVELENG", "RESTFRQ", "VLKBSRC", "VLKBREG")


def _two_d_header(header: fits.Header, wcs: WCS, shape: tuple[int, int]) -> fits.Header:
    out = fits.Header()
    out["NAXIS"] = 2
    out["NAXIS1"], out["NAXIS2"] = shape[1], shape[0]
    out.update(wcs.celestial.to_header())
    for key in _KEEP:
        if key in header:
            out[key] = header[key]
    return out


def _moment0(data: np.ndarray, header: fits.Header, wcs: WCS, spectral_given: bool, did: str) -> np.ndarray:
    if not spectral_given:
        raise UsageError(f"ID: {did} is a cube; give BAND or VELO to collapse a range of it to a moment-0 map")
    spec = wcs.wcs.spec
    width, unit = 1.0, ""
    if spec >= 0:
        step = abs(float(wcs.wcs.cdelt[spec])) * u.Unit(wcs.wcs.cunit[spec] or "")
        # a line survey's moment-0 is in image units times km/s, the usual unit
        width, unit = ((step.to_value(u.km / u.s), "km/s") if step.unit.is_equivalent(u.km / u.s)
                       else (step.value, step.unit.to_string()))
    header["BUNIT"] = f"{header.get('BUNIT', '')} {unit}".strip()
    with np.errstate(invalid="ignore"):
        return np.nansum(data, axis=0) * width


def prepare_image(cut: Cutout, did: str, workdir: Path, *, spectral_given: bool, max_pixels: int) -> FinderImage:
    """The 2D image of ``cut`` written to ``workdir/image.fits``, checked for a finder."""
    header = cut.header.copy()
    try:
        wcs = WCS(header)
    except Exception as exc:  # astropy raises many kinds for broken WCS keywords
        raise UsageError(f"ID: {did} has no usable WCS ({exc})") from None
    if not wcs.has_celestial:
        raise UsageError(f"ID: {did} has no celestial WCS; a finder needs sky coordinates")
    ny_nx = cut.shape[-2:]
    if int(np.prod(ny_nx)) > max_pixels:
        raise TooLargeError(f"ID: the image of {did} has {ny_nx[1]} x {ny_nx[0]} pixels, above the limit of "
                            f"{max_pixels}; give a region (POS, CIRCLE or POLYGON)")
    data = cut.read()
    # axes beyond the spectral one (Stokes, degenerate) of length 1 go
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 3 and data.shape[0] > 1:
        data = _moment0(data, header, wcs, spectral_given, did)
    elif data.ndim == 3:
        data = data[0]
    if data.ndim != 2:
        raise UsageError(f"ID: {did} has {data.ndim} axes; a finder needs an image or a cube")
    if not np.isfinite(data).any():
        raise UsageError(f"ID: the image of {did} has no finite pixel in the region")
    if "BMAJ" not in header:
        raise UsageError(f"ID: {did} declares no beam (BMAJ); a finder needs the resolution")
    out = _two_d_header(header, wcs, data.shape)
    path = workdir / "image.fits"
    fits.PrimaryHDU(data.astype(np.float32), out).writeto(path, overwrite=True)
    return FinderImage(data=data.astype(np.float32), header=out, path=path, workdir=workdir)
