"""Brightness units of stamps: from a survey's ``BUNIT`` to surface brightness and back to the target unit.

Every stamp is carried in surface brightness (Jy/sr) between the cut and the output, because
that is what background subtraction, convolution and regridding preserve; the target unit is
applied last, with the output pixel and beam. The relations (docs/stamps.md):

- ``MJy/sr`` = 1e6 Jy/sr;
- ``Jy/pixel`` = Jy/sr x the pixel solid angle (``astropy.wcs.utils.proj_plane_pixel_area``);
- ``Jy/beam`` = Jy/sr x the beam solid angle (``radio_beam.Beam.sr`` = pi/(4 ln 2) BMAJ BMIN),
  the beam from the header (``BMAJ``/``BMIN``/``BPA``);
- ``K`` (brightness temperature) = Jy/sr through Rayleigh-Jeans at the frequency of the data
  (``astropy.units.brightness_temperature``): ``RESTFRQ``/``RESTFREQ`` of line data, else
  ``FREQ`` of radio maps, else c / ``WAVELENG``.

Conversions use ``astropy.units`` equivalencies; nothing is hand-coded but the choice of the
frequency. No HTTP, no SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from radio_beam import Beam

from vo.errors import UsageError

__all__ = ["TARGETS", "Brightness", "beam_of", "frequency_of", "parse_bunit", "parse_unit", "to_target"]

#: the target units a request may ask for (UNIT), by their spelling in requests and headers
TARGETS = ("Jy/pixel", "MJy/sr", "Jy/beam", "K")
_PER_SR = u.Jy / u.sr


def parse_unit(text: str | None) -> str:
    """``UNIT``: one of :data:`TARGETS` (case-insensitive), ``Jy/pixel`` when absent."""
    if text is None:
        return "Jy/pixel"
    for name in TARGETS:
        if text.strip().lower() == name.lower():
            return name
    raise UsageError(f"UNIT: unknown unit {text!r}; expected one of {', '.join(TARGETS)}")


def beam_of(header: fits.Header) -> Beam | None:
    """The beam of ``header`` (``BMAJ``/``BMIN``/``BPA`` in degrees); None when it has none."""
    if "BMAJ" not in header:
        return None
    try:
        beam = Beam.from_fits_header(header)
    except (ValueError, TypeError):
        return None
    return beam if beam.major.value > 0 else None


def frequency_of(header: fits.Header) -> u.Quantity | None:
    """The frequency the Rayleigh-Jeans relation is taken at (see the module text); None if unknown."""
    for key in ("RESTFRQ", "RESTFREQ", "FREQ"):
        value = header.get(key)
        if isinstance(value, int | float) and value > 0:
            return float(value) * u.Hz
    wave = header.get("WAVELENG")
    if isinstance(wave, int | float) and wave > 0:
        return (float(wave) * u.m).to(u.Hz, equivalencies=u.spectral())
    return None


def parse_bunit(text: str) -> str:
    """A header BUNIT as one of the forms this module knows (spelling variants folded)."""
    t = text.strip().replace(" ", "").lower()
    if t in ("mjy/sr", "mjysr-1", "mjy.sr-1", "mjy/steradian"):
        return "MJy/sr"
    if t in ("jy/sr", "jysr-1"):
        return "Jy/sr"
    if t in ("jy/beam", "jybeam-1", "jy/bm", "beam-1jy"):
        return "Jy/beam"
    if t in ("jy/pixel", "jy/pix", "jypix-1", "jy/px"):
        return "Jy/pixel"
    if t in ("k", "kelvin", "k(tb)", "k(ta*)"):
        return "K"
    raise UsageError(f"the survey's unit {text!r} cannot be converted (known: MJy/sr, Jy/sr, Jy/beam, Jy/pixel, K)")


@dataclass(frozen=True)
class Brightness:
    """What turns one image's values into Jy/sr and back: its pixel area, beam and frequency."""

    pixel_sr: float
    beam: Beam | None
    frequency: u.Quantity | None

    @classmethod
    def of(cls, header: fits.Header, wcs: WCS) -> Brightness:
        cel = wcs if wcs.naxis == 2 else wcs.celestial
        area = proj_plane_pixel_area(cel) * (math.pi / 180) ** 2
        return cls(float(area), beam_of(header), frequency_of(header))

    def factor(self, unit: str) -> float:
        """Jy/sr per one ``unit`` (multiply values in ``unit`` by it to get Jy/sr)."""
        if unit == "MJy/sr":
            return 1e6
        if unit == "Jy/sr":
            return 1.0
        if unit == "Jy/pixel":
            return 1.0 / self.pixel_sr
        if unit == "Jy/beam":
            if self.beam is None:
                raise UsageError("Jy/beam needs a beam (BMAJ/BMIN) and the data has none")
            return float((1 * u.Jy / u.beam).to(_PER_SR, equivalencies=u.beam_angular_area(self.beam.sr)).value)
        if unit == "K":
            if self.frequency is None:
                raise UsageError("K (brightness temperature) needs the data's frequency (RESTFRQ, FREQ or WAVELENG)")
            return float((1 * u.K).to(_PER_SR, equivalencies=u.brightness_temperature(self.frequency)).value)
        raise UsageError(f"unknown unit {unit!r}")


def to_surface(data: np.ndarray, bunit: str, b: Brightness) -> tuple[np.ndarray, str]:
    """``data`` in Jy/sr, and a note of the conversion made (provenance)."""
    unit = parse_bunit(bunit)
    f = b.factor(unit)
    return data * f, f"{unit} -> Jy/sr x {f:.6g}"


def to_target(data: np.ndarray, target: str, b: Brightness) -> tuple[np.ndarray, str]:
    """``data`` (Jy/sr) in ``target``, with ``b`` the output grid's pixel, beam and frequency."""
    f = b.factor(target)
    return data / f, f"Jy/sr -> {target} / {f:.6g}"
