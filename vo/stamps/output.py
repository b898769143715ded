"""Stamp files and the manifest: FITS per stamp, a cube per source, a multi-extension sync answer.

- one stamp: a primary HDU with the image and its provenance header;
- ``FORMAT=cube``: one file per source, every survey a plane of one C x H x W cube on the
  source's common grid (``CTYPE3 = 'SURVEY'``, plane ``k`` named by ``PLANEk``, its unit by
  ``BUNITk``); a survey that failed is a NaN plane;
- ``/stamps/sync``: an empty primary HDU and one image extension per survey (``EXTNAME`` the
  survey), failed surveys listed in the primary header;
- the manifest: a VOTable with one row per source and survey, written as the rows come.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from astropy.io import fits

from vo.stamps.stamp import Stamp

__all__ = ["MANIFEST_COLUMNS", "ManifestWriter", "cube_file", "manifest_row", "stamp_file", "sync_file"]


def _bytes(hdus: fits.HDUList) -> bytes:
    buf = io.BytesIO()
    hdus.writeto(buf)
    return buf.getvalue()


def stamp_file(stamp: Stamp) -> bytes:
    """One stamp as a FITS file."""
    if stamp.file is not None:
        return stamp.file
    assert stamp.data is not None and stamp.header is not None
    return _bytes(fits.HDUList([fits.PrimaryHDU(stamp.data, stamp.header)]))


def cube_file(stamps: Sequence[Stamp]) -> bytes | None:
    """The stamps of one source (on one grid) as planes of one cube; None when none was made."""
    made = [s for s in stamps if s.ok]
    if not made:
        return None
    first = made[0]
    assert first.data is not None and first.header is not None
    planes = np.full((len(stamps), *first.data.shape), np.nan, dtype=np.float32)
    header = first.header.copy()
    for key in [k for k in header if k.startswith("VLKBS") and k[5:].isdigit()]:
        header.remove(key)
    for key in ("BUNIT", "SURVEY", "BMAJ", "BMIN", "BPA", "VLKBCOV", "VLKBMETH", "VLKBNSRC", "HISTORY"):
        header.remove(key, ignore_missing=True, remove_all=True)
    for k, s in enumerate(stamps, start=1):
        header[f"PLANE{k}"] = (s.survey, "survey of this plane")
        if s.ok:
            assert s.data is not None and s.header is not None
            if s.data.shape == first.data.shape:
                planes[k - 1] = s.data
            header[f"BUNIT{k}"] = s.header["BUNIT"]
            header[f"COVER{k}"] = (round(s.coverage, 6), "fraction of the stamp circle with data")
        else:
            header[f"BUNIT{k}"] = ""
            header[f"ERROR{k}"] = s.error[:60]
    hdu = fits.PrimaryHDU(planes)
    for card in header.cards:
        if card.keyword not in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "WCSAXES"):
            hdu.header[card.keyword] = (card.value, card.comment)
    hdu.header["WCSAXES"] = 3
    hdu.header["CTYPE3"] = ("SURVEY", "plane k is survey PLANEk")
    hdu.header["CRPIX3"], hdu.header["CRVAL3"], hdu.header["CDELT3"] = 1.0, 1.0, 1.0
    return _bytes(fits.HDUList([hdu]))


def sync_file(stamps: Sequence[Stamp], cube: bool = False) -> bytes:
    """The ``/stamps/sync`` answer: one image extension per survey made (or one cube)."""
    if cube:
        out = cube_file(stamps)
        assert out is not None
        return out
    primary = fits.PrimaryHDU()
    primary.header["NSTAMPS"] = (sum(s.ok for s in stamps), "image extensions, one per survey")
    hdus = [primary]
    for k, s in enumerate(stamps, start=1):
        if not s.ok:
            primary.header[f"FAIL{k}"] = f"{s.survey}: {s.error}"[:68]
            continue
        ext = fits.ImageHDU(s.data, s.header)
        ext.header["EXTNAME"] = s.survey[:68]
        hdus.append(ext)
    return _bytes(fits.HDUList(hdus))


MANIFEST_COLUMNS = ("source", "glon", "glat", "radius", "survey", "status", "reason", "file", "method",
                    "coverage", "conversions", "datasets")


_DESCRIBED = {
        "source": ("the source's name", None), "glon": ("Galactic longitude of the stamp centre", "deg"),
        "glat": ("Galactic latitude of the stamp centre", "deg"), "radius": ("stamp radius", "deg"),
        "survey": ("survey as requested (name/transition)", None),
        "status": ("OK, or ERROR when the stamp could not be made", None),
        "reason": ("why the stamp failed (error code and text)", None),
        "file": ("the stamp's file in the archive (and result, when results are listed one by one)", None),
        "method": ("cut: one dataset held the stamp; merge: tiles were merged", None),
        "coverage": ("fraction of the stamp circle with data", None),
        "conversions": ("the steps applied (unit conversion, background, beam, grid), '; '-separated", None),
        "datasets": ("the input datasets (publisher DIDs), space-separated", None),
}
_FLOATS = ("glon", "glat", "radius", "coverage")


def manifest_row(stamp: Stamp, file: str) -> tuple:
    s = stamp.source
    return (s.name, s.l, s.b, s.radius, stamp.survey, "OK" if stamp.ok else "ERROR", stamp.error,
            file if stamp.ok else "", stamp.method, stamp.coverage, "; ".join(stamp.conversions),
            " ".join(stamp.dids))


class ManifestWriter:
    """The manifest written row by row into ``out`` (VOTable 1.4 TABLEDATA), so a job of 100,000
    sources never holds its rows. Hand-written rather than astropy's writer, which needs the whole
    table in memory; the FIELDs are those of :func:`manifest_votable`."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.rows = 0
        fields = []
        for name in MANIFEST_COLUMNS:
            text, unit = _DESCRIBED[name]
            kind = 'datatype="double"' if name in _FLOATS else 'datatype="unicodeChar" arraysize="*"'
            unit_attr = f" unit={quoteattr(unit)}" if unit else ""
            fields.append(f'<FIELD name="{name}" ID="{name}" {kind}{unit_attr}>'
                          f"<DESCRIPTION>{escape(text)}</DESCRIPTION></FIELD>\n")
        out.write(('<?xml version="1.0" encoding="utf-8"?>\n'
                   '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
                   'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
                   '<RESOURCE type="results">\n<TABLE name="manifest">\n' + "".join(fields)
                   + "<DATA><TABLEDATA>\n").encode())

    def add(self, row: tuple) -> None:
        cells = []
        for name, value in zip(MANIFEST_COLUMNS, row, strict=True):
            if name in _FLOATS:
                v = float(value)
                cells.append("<TD>NaN</TD>" if not math.isfinite(v) else f"<TD>{v!r}</TD>")
            else:
                cells.append(f"<TD>{escape(str(value))}</TD>")
        self.out.write(("<TR>" + "".join(cells) + "</TR>\n").encode())
        self.rows += 1

    def close(self) -> None:
        self.out.write(b"</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n")
