"""Previews of odd FITS files: NaNs, Stokes axes, scaled integers, flat maps; the cache."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

from vo.preview import cached_preview, render_preview


def _write(path: Path, data: np.ndarray, ctypes: list[str], **cards) -> Path:
    hdu = fits.PrimaryHDU(data)
    for i, ctype in enumerate(ctypes, start=1):
        hdu.header[f"CTYPE{i}"] = ctype
        hdu.header[f"CRPIX{i}"] = 1.0
        hdu.header[f"CDELT{i}"] = -0.01 if i == 1 else 0.01
        hdu.header[f"CRVAL{i}"] = 0.0
    hdu.header.update(cards)
    hdu.writeto(path)
    return path


def _png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_cube_with_stokes_and_nans(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cube = rng.normal(size=(1, 40, 30, 50)).astype(np.float32)  # stokes, channels, lat, lon
    cube[0, :, :5, :] = np.nan
    path = _write(tmp_path / "c.fits", cube, ["GLON-CAR", "GLAT-CAR", "VRAD", "STOKES"],
                  BUNIT="K", CUNIT3="m/s", RESTFRQ=1.1e11)
    img = _png(render_preview(path))
    assert img.mode == "RGB" and min(img.size) >= 256
    # the blank rows are the bottom of the picture (FITS rows run upwards), drawn grey
    assert img.getpixel((20, img.height - 20)) == (200, 200, 200)


def test_scaled_integers_big_and_flat_maps(tmp_path: Path) -> None:
    data = (np.arange(2000 * 1000) % 3000).reshape(1000, 2000).astype(np.int16)
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", BSCALE=0.5, BZERO=10.0)
    hdu.writeto(tmp_path / "big.fits")
    img = _png(render_preview(tmp_path / "big.fits"))
    assert max(img.size) < 2000 / 2 + 200  # subsampled
    flat = _write(tmp_path / "flat.fits", np.ones((20, 20), np.float32), ["GLON-CAR", "GLAT-CAR"])
    assert _png(render_preview(flat)).size[0] >= 256


def test_cache_is_keyed_by_file_state(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.fits", np.eye(64, dtype=np.float32), ["GLON-CAR", "GLAT-CAR"])
    cache = tmp_path / "cache"
    first = cached_preview(path, "ivo://x/y?m.fits", cache)
    assert cached_preview(path, "ivo://x/y?m.fits", cache) == first
    os.utime(path, ns=(0, 10**9))
    second = cached_preview(path, "ivo://x/y?m.fits", cache)
    assert second != first and second.exists()
    assert not list(cache.glob("*.tmp"))
