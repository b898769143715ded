"""Reading only the slab and writing it as a new FITS file, in chunks.

:func:`plan` reads the header of the first image HDU, computes the pixel box
(:func:`vo.cutout.bounds.pixel_box`) and the output header: the source header with the
structural keywords rewritten, every ``CRPIXn`` (and alternate ``CRPIXna``) shifted by the box
origin so all other WCS keywords stay valid as they are, ``CUNIT3`` and ``RESTFRQ`` on cubes,
and provenance keywords. :meth:`Cutout.chunks` then opens the file (memory-mapped when local,
ranged reads for a URL or a compressed file: :mod:`vo.cutout.source`; raw values:
``BZERO``/``BSCALE``/``BLANK`` travel in the header) and yields the header block, the slab one
plane group at a time, and the padding, so memory stays flat and only the slab is ever read
(architecture decision 5).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from vo.cutout.bounds import CutRequest, header_wcs, pixel_box, rest_frequency
from vo.cutout.source import open_fits, read_raw
from vo.errors import UsageError

__all__ = ["Cutout", "fitting_comment", "plan"]

_BLOCK = 2880
_CHUNK = 8 << 20  # bytes of data per yielded chunk, about
_STRUCTURAL = re.compile(r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|CHECKSUM|DATASUM|GROUPS)$")
_CRPIX = re.compile(r"^CRPIX(\d+)([A-Z]?)$")
_DEFAULT_UNIT = {"FREQ": "Hz", "WAVE": "m", "AWAV": "m", "VRAD": "m/s", "VOPT": "m/s", "VELO": "m/s",
                 "VELF": "m/s", "ZOPT": "", "ENER": "J"}


@dataclass(frozen=True)
class Cutout:
    """A planned cut: the source, which HDU, the box (FITS axis order) and the output header."""

    #: a local path or a URL (:mod:`vo.cutout.source`)
    path: str | Path
    hdu: int
    box: tuple[tuple[int, int], ...]
    header: fits.Header

    @property
    def shape(self) -> tuple[int, ...]:
        """The cut's numpy shape (slowest axis first)."""
        return tuple(b - a for a, b in reversed(self.box))

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape)) * abs(int(self.header["BITPIX"])) // 8

    @cached_property
    def header_bytes(self) -> bytes:
        """The output header block, serialised once (size, Content-Length and the stream use it)."""
        return self.header.tostring(padding=True).encode("ascii")

    @property
    def size(self) -> int:
        """The size of the output file in bytes."""
        return len(self.header_bytes) + -(-self.data_bytes // _BLOCK) * _BLOCK

    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in reversed(self.box))

    def _groups(self) -> Iterator[tuple[slice, ...]]:
        """The slab as groups of whole planes of the slowest axis, about ``_CHUNK`` bytes each."""
        shape = self.shape
        plane = max(1, int(np.prod(shape[1:])) * abs(int(self.header["BITPIX"])) // 8)
        step = max(1, _CHUNK // plane)
        first, *rest = self.slices()
        for i in range(first.start, first.stop, step):
            yield (slice(i, min(i + step, first.stop)), *rest)

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The output FITS file, in pieces; only the slab is read from the source."""
        yield self.header_bytes
        with open_fits(self.path) as hdul:
            for group in self._groups():
                part = read_raw(hdul, self.hdu, group, self.path)
                # one copy (the slab's rows gathered), handed out as a buffer, not copied again by tobytes()
                yield np.ascontiguousarray(part, dtype=part.dtype.newbyteorder(">")).data.cast("B")
                del part
        pad = -self.data_bytes % _BLOCK
        if pad:
            yield b"\0" * pad

    def read(self) -> np.ndarray:
        """The slab as float64 physical values (``BSCALE``/``BZERO`` applied, ``BLANK`` as NaN).

        For the merge engine, which needs numbers rather than the raw bytes; still only the
        slab is read.
        """
        with open_fits(self.path) as hdul:
            raw = read_raw(hdul, self.hdu, self.slices(), self.path)
            out = np.array(raw, dtype=np.float64)
            blank = self.header.get("BLANK")
            if blank is not None and raw.dtype.kind in "iu":
                out[raw == int(blank)] = np.nan
            del raw
        out *= float(self.header.get("BSCALE", 1.0))
        out += float(self.header.get("BZERO", 0.0))
        return out

    def write(self, dest: Path) -> None:
        """Write the cut to ``dest``."""
        with open(dest, "wb") as out:
            for chunk in self.chunks():
                out.write(chunk)


def _image_hdu(hdul: fits.HDUList) -> int:
    for i, hdu in enumerate(hdul):
        if hdu.is_image and int(hdu.header.get("NAXIS", 0)) >= 2:
            return i
    raise UsageError("the dataset holds no image to cut")


def fitting_comment(value: str, comment: str) -> str:
    """``comment`` cut to what fits on the card of the string ``value`` (FITS 4.0 section 4.2.1).

    Left too long, astropy truncates it itself with a VerifyWarning at every serialisation: a
    warning per cut that cost more than the whole header (a DID of 45 characters is enough).
    """
    shown = max(len(value.replace("'", "''")) + 2, 20)
    room = 80 - 10 - shown - 3  # "KEYWORD = ", the quoted value, " / "
    if shown > 70:  # a long string goes over CONTINUE cards, with the comment on the last one
        return comment
    return comment[:room] if room > 0 else ""


def _out_header(src: fits.Header, wcs: WCS, box: tuple[tuple[int, int], ...], provenance: dict[str, tuple[str, str]],
                history: str) -> fits.Header:
    out = fits.Header()
    out["SIMPLE"] = (True, "conforms to FITS standard")
    out["BITPIX"] = src["BITPIX"]
    out["NAXIS"] = len(box)
    for i, (a, b) in enumerate(box, start=1):
        out[f"NAXIS{i}"] = b - a
    for card in src.cards:
        if _STRUCTURAL.match(card.keyword):
            continue
        out.append(card, end=True)
    for key in list(out.keys()):
        m = _CRPIX.match(key)
        if m and int(m.group(1)) <= len(box):
            out[key] = float(out[key]) - box[int(m.group(1)) - 1][0]
    spec = wcs.wcs.spec
    if len(box) >= 3 and spec >= 0:
        # the ViaLactea client and legacy VLKB cutouts rely on CUNIT3 and RESTFRQ on every cube
        for axis in sorted({spec + 1, 3}):
            if not str(out.get(f"CUNIT{axis}", "")).strip():
                kind = str(out.get(f"CTYPE{axis}", ""))[:4].rstrip("-")
                out[f"CUNIT{axis}"] = _DEFAULT_UNIT.get(kind, "")
        if "RESTFRQ" not in out:
            f0 = rest_frequency(src, wcs)
            out["RESTFRQ"] = (f0 if f0 is not None else 0.0, "[Hz] rest frequency (0: unknown)")
    for key, (value, comment) in provenance.items():
        out[key] = (value, fitting_comment(value, comment))
    out.add_history(history)
    return out


def plan(path: str | Path, req: CutRequest, provenance: dict[str, tuple[str, str]] | None = None,
         history: str = "cutout made by vlkb") -> Cutout:
    """Plan the cut of ``path`` for ``req``: reads the header only.

    ``provenance`` maps keywords to ``(value, comment)`` added to the output header.
    """
    with open_fits(path) as hdul:
        idx = _image_hdu(hdul)
        src = hdul[idx].header.copy()
    wcs = header_wcs(src)
    box = pixel_box(src, req, wcs)
    for i, (a, b) in enumerate(box, start=1):
        history += f"; axis {i} pixels {a + 1}:{b}"
    cut = Cutout(path=path, hdu=idx, box=box, header=_out_header(src, wcs, box, provenance or {}, history))
    cut.header_bytes  # noqa: B018 - serialised here, in the planning thread, not later in an event loop
    return cut
