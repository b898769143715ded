"""Stamp units (issue 19) against the textbook relations, computed here with numpy and CODATA constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.constants import c, k_B
from astropy.io import fits
from astropy.wcs import WCS

from vo.errors import UsageError
from vo.stamps.units import Brightness, frequency_of, parse_unit, to_surface, to_target


def header(bunit: str, **extra: float) -> tuple[fits.Header, WCS]:
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "GLON-CAR", "GLAT-CAR"
    h["CDELT1"], h["CDELT2"] = -4.0 / 3600, 4.0 / 3600
    h["CRPIX1"] = h["CRPIX2"] = 1.0
    h["CRVAL1"] = h["CRVAL2"] = 0.0
    h["BUNIT"] = bunit
    h["BMAJ"], h["BMIN"], h["BPA"] = 15.0 / 3600, 10.0 / 3600, 0.0
    for key, value in extra.items():
        h[key] = value
    return h, WCS(h)


PIXEL_SR = (4.0 / 3600 * math.pi / 180) ** 2
BEAM_SR = math.pi / (4 * math.log(2)) * (15.0 / 3600) * (10.0 / 3600) * (math.pi / 180) ** 2


def test_surface_brightness_relations() -> None:
    h, wcs = header("MJy/sr")
    b = Brightness.of(h, wcs)
    ones = np.ones((2, 2))
    jy_sr, _ = to_surface(ones, "MJy/sr", b)
    np.testing.assert_allclose(jy_sr, 1e6)
    np.testing.assert_allclose(to_target(jy_sr, "Jy/pixel", b)[0], 1e6 * PIXEL_SR, rtol=1e-9)
    np.testing.assert_allclose(to_target(jy_sr, "Jy/beam", b)[0], 1e6 * BEAM_SR, rtol=1e-6)
    np.testing.assert_allclose(to_surface(ones, "Jy/beam", b)[0], 1 / BEAM_SR, rtol=1e-6)
    np.testing.assert_allclose(to_surface(ones, "Jy/pixel", b)[0], 1 / PIXEL_SR, rtol=1e-9)


def test_rayleigh_jeans_at_the_rest_frequency() -> None:
    nu = 110.2013543e9
    h, wcs = header("K", RESTFRQ=nu)
    b = Brightness.of(h, wcs)
    jy_sr, _ = to_surface(np.array([2.0]), "K", b)
    # I = 2 k T nu^2 / c^2, in Jy/sr
    expected = 2 * k_B.si.value * 2.0 * nu**2 / c.si.value**2 / 1e-26
    assert jy_sr[0] == pytest.approx(expected, rel=1e-9)
    assert to_target(jy_sr, "K", b)[0][0] == pytest.approx(2.0, rel=1e-12)
    # the textbook Jy/beam per K: 2 k nu^2 Omega / c^2
    per_beam = to_target(jy_sr, "Jy/beam", b)[0][0]
    assert per_beam == pytest.approx(2.0 * 2 * k_B.si.value * nu**2 * BEAM_SR / c.si.value**2 / 1e-26, rel=1e-6)


def test_frequency_from_wavelength_and_unknown() -> None:
    h, _ = header("MJy/sr", WAVELENG=160e-6)
    assert frequency_of(h).value == pytest.approx(c.si.value / 160e-6)
    h, wcs = header("MJy/sr")
    with pytest.raises(UsageError, match="frequency"):
        to_target(np.ones(1), "K", Brightness.of(h, wcs))
    del h["BMAJ"]
    with pytest.raises(UsageError, match="beam"):
        to_target(np.ones(1), "Jy/beam", Brightness.of(h, WCS(h)))


def test_unit_names() -> None:
    assert parse_unit(None) == "Jy/pixel"
    assert parse_unit("mjy/SR") == "MJy/sr"
    with pytest.raises(UsageError, match="UNIT"):
        parse_unit("erg")
    h, wcs = header("counts")
    with pytest.raises(UsageError, match="cannot be converted"):
        to_surface(np.ones(1), "counts", Brightness.of(h, wcs))
