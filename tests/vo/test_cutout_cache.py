"""The per-file cache of cutout planning (vo/cutout/fitsout.py, issue 16): repeated cuts give the
same answer as a first one, a replaced file is read again, and the cache is bounded."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from tests.vo.test_cutout import _cube, _same_pixels
from vo.cutout import CutRequest, fitsout, plan
from vo.shapes import Circle, Interval

REQ = CutRequest(region=Circle(lon=10.0, lat=0.0, radius=0.05), frame="galactic",
                 velo=Interval(lo=-30.0, hi=-10.0))


def _body(path: Path, req: CutRequest = REQ) -> bytes:
    cut = plan(path, req, {"VLKBSRC": ("ivo://x/vlkb?a/b.fits", "src")})
    body = b"".join(cut.chunks())
    assert len(body) == cut.size
    return body


def test_repeated_cuts_are_identical_and_right(tmp_path: Path) -> None:
    path = _cube(tmp_path / "c.fits")
    fitsout._cached_source.cache_clear()
    first = _body(path)
    assert fitsout._cached_source.cache_info().currsize == 1
    for _ in range(3):
        assert _body(path) == first
    assert fitsout._cached_source.cache_info().hits >= 3
    hdu = fits.open(io.BytesIO(first))[0]
    _same_pixels(path, hdu)  # against astropy's own read of the source
    assert hdu.data.shape[0] < 64 and hdu.header["HISTORY"]


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = _cube(tmp_path / "c.fits")
    before = _body(path)
    data = fits.getdata(path)
    header = fits.getheader(path)
    header["CRVAL1"] = 10.02  # the grid moved: another box, other pixels
    fits.PrimaryHDU(np.asarray(data * 2, dtype=">f4"), header).writeto(path, overwrite=True)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = _body(path)
    assert after != before
    _same_pixels(path, fits.open(io.BytesIO(after))[0])


def test_the_cache_is_bounded() -> None:
    assert fitsout._cached_source.cache_info().maxsize == fitsout.SOURCE_CACHE <= 1024
