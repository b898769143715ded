"""The per-file cache of cutout planning (vo/cutout/fitsout.py, issue 16): repeated cuts give the
same answer as a first one, a replaced file is read again, and the cache is bounded."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
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


# -- the output header template and the small cut read ahead (issue 16) -----------------------------

PROV = {"VLKBSRC": ("ivo://x/vlkb?a/b.fits", "source dataset (publisher DID)"),
        "VLKBREG": ("CIRCLE 10.0 0.0 0.05 GALACTIC; VELO -30 -10 and a region text long enough to need "
                    "CONTINUE cards on the way", "region cut (SODA parameters)"),
        "VLKBVER": ("1.2.3", "vlkb version that made this cutout")}


def _headers(tmp_path: Path) -> list[Path]:
    """Cubes whose headers exercise the card placement: plain, with HISTORY and COMMENT cards and
    alternate WCS, with provenance keywords already (a cut of a cut)."""
    plain = _cube(tmp_path / "plain.fits")
    data, header = fits.getdata(plain), fits.getheader(plain)
    out = [plain]
    for name, edit in (
        ("history", lambda h: (h.add_history("made by a test"), h.add_comment("a comment"),
                               h.set("CRPIX1A", 3.5, "alternate reference pixel"), h.set("CTYPE1A", "PIXEL"),
                               h.add_history("a second line " * 8))),
        ("recut", lambda h: (h.set("VLKBSRC", "ivo://y/vlkb?older.fits", "source"), h.add_history("older cut"))),
    ):
        h = header.copy()
        edit(h)
        path = tmp_path / f"{name}.fits"
        fits.PrimaryHDU(data, h).writeto(path)
        out.append(path)
    return out


@pytest.mark.parametrize("history", ["short", "vlkb SODA cutout of ivo://x/vlkb?a/b.fits: " + "a long line; " * 12])
def test_the_header_template_gives_the_bytes_of_the_full_build(tmp_path: Path, history: str) -> None:
    """What a cut's header is made of (the template, a few cards formatted) equals the header built
    card by card with astropy (the path before the template, kept for the headers it cannot do)."""
    for path in _headers(tmp_path):
        src, _ = fitsout._source(path)
        cut = plan(path, REQ, PROV, history)
        full = history + "".join(f"; axis {i} pixels {a + 1}:{b}" for i, (a, b) in enumerate(cut.box, start=1))
        slow = fitsout._out_header(src.base, cut.box, PROV, full).tostring(padding=True).encode("ascii")
        assert cut.header_bytes == slow, path.name
        template = src.template(tuple(PROV))
        assert template is not None
        assert fitsout._header_bytes(template, cut.box, PROV, full) == slow
        # astropy fills trailing blank cards first, so such a header is built card by card instead
        blanks = src.base.copy()
        blanks.append()
        assert fitsout._template(blanks, tuple(PROV)) is None
        assert cut.header["NAXIS3"] == cut.box[2][1] - cut.box[2][0]


def test_a_small_cut_read_ahead_is_the_streamed_file(tmp_path: Path) -> None:
    path = _cube(tmp_path / "c.fits")
    cut = plan(path, REQ, PROV)
    streamed = b"".join(bytes(c) for c in cut.chunks())
    small = cut.preread(cut.size)
    assert small.body is not None and bytes(small.body) == streamed
    assert b"".join(bytes(c) for c in small.chunks()) == streamed
    assert cut.preread(cut.size - 1).body is None  # a bigger cut keeps streaming
    _same_pixels(path, fits.open(io.BytesIO(streamed))[0])


# -- card images without astropy's Card object (issue 16) ---------------------------------------------

_VALUES = [0, 1, -7, 2**31, 10**19, -(10**19), 10**25, True, False,
           0.0, -0.0, 0.1 + 0.2, 1.0, -1.5, 0.5 - 1024, 1e-300, 5e-324, 1.7976931348623157e308, 123456789012345678.0,
           1 / 3, 6.02214076e23, 1e15, 1e16, 1e-5, float("nan"), float("inf"),
           "", "x", "O'Brien", "''", " leading", "trailing ", "a" * 66, "a" * 67, "a" * 68, "a" * 69, "b" * 150,
           "ivo://x/vlkb?a/b.fits", "CIRCLE 10.0 0.0 0.05 GALACTIC; VELO -30 -10", "it's " * 15, "caf\u00e9",
           "tab\there"]
_COMMENTS = ["", "source dataset (publisher DID)", "c" * 40, "c" * 70, "accents \u00e9", "[Hz] rest frequency"]


@pytest.mark.parametrize("key", ["NAXIS3", "CRPIX1", "CRPIX2A", "VLKBREG", "A"])
def test_a_card_image_is_astropys(key: str) -> None:
    """Every value and comment give the image astropy's Card gives, or the same error."""
    import warnings

    for value in _VALUES:
        for comment in _COMMENTS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    expected: str | type[Exception] = fits.Card(key, value, comment).image
                except (ValueError, TypeError) as exc:
                    expected = type(exc)
                try:
                    got: str | type[Exception] = fitsout.card_image(key, value, comment)
                except (ValueError, TypeError) as exc:
                    got = type(exc)
            assert got == expected, (key, value, comment)


@pytest.mark.parametrize("text", ["", " ", "short", "h" * 72, "h" * 73, "vlkb SODA cutout: " + "a long line; " * 20,
                                  "two  spaces  " * 9, "caf\u00e9 " * 30])
def test_history_images_are_astropys(text: str) -> None:
    lines = fits.Header()
    try:
        lines.add_history(text)
        expected: str | type[Exception] = "".join(card.image for card in lines.cards)
    except ValueError as exc:
        expected = type(exc)
    try:
        got: str | type[Exception] = fitsout.history_image(text)
    except ValueError as exc:
        got = type(exc)
    assert got == expected
