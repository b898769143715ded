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

What a cut needs of a local file apart from its pixels (the image HDU, its header, WCS and sky
grid, the output header up to the box, where the data start) is parsed once and kept in a
bounded LRU keyed by path, size and modification time (:func:`_source`): a small cut was mostly
astropy parsing and re-serialising the same header (issue 16). A replaced file is a new key;
files at URLs are read afresh each time.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.card import _format_value  # the FITS fixed-format value, as Card writes it
from astropy.wcs import WCS

from vo.cutout.bounds import (
    CutRequest,
    SkyGrid,
    channel_frequencies,
    header_wcs,
    pixel_box,
    rest_frequency,
    sky_grid,
)
from vo.cutout.source import DTYPES, mapping, open_fits, read_raw
from vo.errors import UsageError
from vo.storage import is_remote, location

__all__ = ["Cutout", "fitting_comment", "plan"]

_BLOCK = 2880
_CARD = 80
_CHUNK = 1 << 20  # bytes of data per yielded chunk: reading the next overlaps sending this one (issue 16)
_STRUCTURAL = re.compile(r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|CHECKSUM|DATASUM|GROUPS)$")
_CRPIX = re.compile(r"^CRPIX(\d+)([A-Z]?)$")
#: parsed sources kept per process (a header, a WCS and an output header each: tens of KB)
SOURCE_CACHE = 128
_DEFAULT_UNIT = {"FREQ": "Hz", "WAVE": "m", "AWAV": "m", "VRAD": "m/s", "VOPT": "m/s", "VELO": "m/s",
                 "VELF": "m/s", "ZOPT": "", "ENER": "J"}


@dataclass(frozen=True)
class Cutout:
    """A planned cut: the source, which HDU, the box (FITS axis order) and the output header."""

    #: a local path or a URL (:mod:`vo.cutout.source`)
    path: str | Path
    hdu: int
    box: tuple[tuple[int, int], ...]
    #: the output header block, serialised (the stream, its size and Content-Length use it)
    header_bytes: bytes
    #: BITPIX of the data (the source's)
    bitpix: int
    #: a local uncompressed file: (its size and mtime, where the data start, dtype, numpy shape),
    #: so the slab is read from the kept memory map without opening the file again
    mapped: tuple[tuple[int, int], int, str, tuple[int, ...]] | None = None
    #: the whole output file, read ahead by :meth:`preread` (small cuts), else None
    body: bytes | memoryview | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The cut's numpy shape (slowest axis first)."""
        return tuple(b - a for a, b in reversed(self.box))

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape)) * abs(self.bitpix) // 8

    @cached_property
    def header(self) -> fits.Header:
        """The output header (parsed from :attr:`header_bytes` when asked: merges, stamps, tests)."""
        return fits.Header.fromstring(self.header_bytes.decode("ascii"))

    @property
    def size(self) -> int:
        """The size of the output file in bytes."""
        return len(self.header_bytes) + -(-self.data_bytes // _BLOCK) * _BLOCK

    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in reversed(self.box))

    def _groups(self) -> Iterator[tuple[slice, ...]]:
        """The slab as groups of whole planes of the slowest axis, about ``_CHUNK`` bytes each."""
        shape = self.shape
        plane = max(1, int(np.prod(shape[1:])) * abs(self.bitpix) // 8)
        step = max(1, _CHUNK // plane)
        first, *rest = self.slices()
        for i in range(first.start, first.stop, step):
            yield (slice(i, min(i + step, first.stop)), *rest)

    def preread(self, limit: int) -> Cutout:
        """This cut with its whole output file in :attr:`body` if it is at most ``limit`` bytes.

        A small cut is then answered in one piece, read in the same worker thread as its plan,
        instead of a thread hop and a socket write per chunk (issue 16: most of a small cut's time
        besides the lookup); a bigger one keeps streaming, so memory stays bounded by ``limit``.
        """
        if self.body is not None or self.size > limit:
            return self
        if self.mapped is None:
            return replace(self, body=b"".join(self.chunks()))
        # the slab copied once, straight from the kept memory map into the output buffer
        version, offset, dtype, shape = self.mapped
        data = mapping(str(location(self.path)), version, offset, dtype, shape)
        buf = bytearray(self.size)  # zeros: the padding after the data
        head = len(self.header_bytes)
        buf[:head] = self.header_bytes
        out = np.frombuffer(buf, dtype=data.dtype, count=int(np.prod(self.shape)), offset=head)
        np.copyto(out.reshape(self.shape), data[self.slices()])
        return replace(self, body=memoryview(buf))

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The output FITS file, in pieces; only the slab is read from the source."""
        if self.body is not None:
            yield self.body
            return
        yield self.header_bytes
        if self.mapped is not None:
            version, offset, dtype, shape = self.mapped
            data = mapping(str(location(self.path)), version, offset, dtype, shape)
            for group in self._groups():
                # one copy (the slab's rows gathered), handed out as a buffer, not copied again by tobytes()
                yield np.ascontiguousarray(data[group]).data.cast("B")
        else:
            with open_fits(self.path) as hdul:
                for group in self._groups():
                    part = read_raw(hdul, self.hdu, group, self.path)
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


def _base_header(src: fits.Header, wcs: WCS, naxis: int) -> fits.Header:
    """The output header of every cut of ``src`` but for the box (NAXISn, CRPIXn) and provenance."""
    out = fits.Header()
    out["SIMPLE"] = (True, "conforms to FITS standard")
    out["BITPIX"] = src["BITPIX"]
    out["NAXIS"] = naxis
    for i in range(1, naxis + 1):
        out[f"NAXIS{i}"] = int(src[f"NAXIS{i}"])
    for card in src.cards:
        if _STRUCTURAL.match(card.keyword):
            continue
        out.append(card, end=True)
    spec = wcs.wcs.spec
    if naxis >= 3 and spec >= 0:
        # the ViaLactea client and legacy VLKB cutouts rely on CUNIT3 and RESTFRQ on every cube
        for axis in sorted({spec + 1, 3}):
            if not str(out.get(f"CUNIT{axis}", "")).strip():
                kind = str(out.get(f"CTYPE{axis}", ""))[:4].rstrip("-")
                out[f"CUNIT{axis}"] = _DEFAULT_UNIT.get(kind, "")
        if "RESTFRQ" not in out:
            f0 = rest_frequency(src, wcs)
            out["RESTFRQ"] = (f0 if f0 is not None else 0.0, "[Hz] rest frequency (0: unknown)")
    return out


def _out_header(base: fits.Header, box: tuple[tuple[int, int], ...], provenance: dict[str, tuple[str, str]],
                history: str) -> fits.Header:
    """``base`` with the box's NAXISn and shifted CRPIXn (every other WCS keyword stays valid),
    then the provenance keywords and the history line."""
    out = base.copy()
    for i, (a, b) in enumerate(box, start=1):
        out[f"NAXIS{i}"] = b - a
    for key in list(out.keys()):
        m = _CRPIX.match(key)
        if m and int(m.group(1)) <= len(box):
            out[key] = float(out[key]) - box[int(m.group(1)) - 1][0]
    for key, (value, comment) in provenance.items():
        out[key] = (value, fitting_comment(value, comment))
    out.add_history(history)
    return out


@dataclass(frozen=True)
class _Template:
    """The output header of every cut of one source as card images, with the places of what a cut
    changes: built once by :func:`_out_header` itself, so a cut only formats a few cards (issue 16:
    copying and editing an astropy Header was half of a small cut's time) and the bytes are those
    :func:`_out_header` gives (tests/vo/test_cutout_cache.py compares them)."""

    #: one string per card of the template (a long string value's CONTINUE cards in one)
    images: tuple[str, ...]
    #: NAXISn: (place, n, comment)
    naxis: tuple[tuple[int, int, str], ...]
    #: CRPIXn[a]: (place, keyword, n, value in the source, comment)
    crpix: tuple[tuple[int, str, int, float, str], ...]
    #: provenance keyword -> place
    provenance: dict[str, int]
    #: where the HISTORY line goes
    history: int


_MARK = "vlkb-template-mark"


def _template(base: fits.Header, keys: tuple[str, ...]) -> _Template | None:
    """The :class:`_Template` of ``base`` with provenance ``keys``; None when the header is one whose
    card places could depend on the values (trailing blank cards, which astropy fills first)."""
    cards = base.cards
    if len(cards) and not cards[-1].keyword and not str(cards[-1].value).strip():
        return None
    naxis = int(base["NAXIS"])
    full = tuple((0, int(base[f"NAXIS{i}"])) for i in range(1, naxis + 1))
    out = _out_header(base, full, {k: (_MARK, "") for k in keys}, _MARK)
    places = {card.keyword: i for i, card in enumerate(out.cards) if card.keyword != "HISTORY"}
    marks = [i for i, card in enumerate(out.cards) if card.keyword == "HISTORY" and card.value == _MARK]
    if len(marks) != 1 or any(k not in places for k in keys):
        return None
    crpix = []
    for key, i in places.items():
        m = _CRPIX.match(key)
        if m and int(m.group(1)) <= naxis:
            crpix.append((i, key, int(m.group(1)), float(base[key]), base.comments[key]))
    return _Template(
        images=tuple(card.image for card in out.cards),
        naxis=tuple((places[f"NAXIS{n}"], n, base.comments[f"NAXIS{n}"]) for n in range(1, naxis + 1)),
        crpix=tuple(crpix), provenance={k: places[k] for k in keys}, history=marks[0])


def _header_bytes(t: _Template, box: tuple[tuple[int, int], ...], provenance: dict[str, tuple[str, str]],
                  history: str) -> bytes:
    """What ``_out_header(...).tostring(padding=True)`` gives, from the template ``t``."""
    images = list(t.images)
    for i, n, comment in t.naxis:
        a, b = box[n - 1]
        images[i] = card_image(f"NAXIS{n}", b - a, comment)
    for i, key, n, ref, comment in t.crpix:
        images[i] = card_image(key, ref - box[n - 1][0], comment)
    for key, (text, note) in provenance.items():
        images[t.provenance[key]] = card_image(key, text, fitting_comment(text, note))
    images[t.history] = history_image(history)
    text = "".join(images) + "END".ljust(80)
    return (text + " " * (-len(text) % _BLOCK)).encode("ascii")


_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}\Z")
_ASCII_TEXT = re.compile(r"[ -~]*\Z")  # what a FITS card may hold (FITS 4.0 section 4.1.2.3)


def card_image(key: str, value: bool | int | float | str, comment: str) -> str:
    """``fits.Card(key, value, comment).image``, without astropy's Card object where the card is a
    plain one: a keyword of 8 characters or fewer, printable ASCII, a finite number or a string
    that fits on one card. Anything else goes through Card (its CONTINUE cards, its errors).

    Why: astropy's Card reads its configuration several times per card (about 30 us a card here);
    a cut formats ten cards (NAXISn, CRPIXn, provenance, HISTORY), which was most of planning a cut
    of a cached source (0.5 of 0.8 ms). The value is still formatted by astropy's own function for FITS
    fixed-format values; tests/vo/test_cutout_cache.py compares the images with Card's.
    """
    plain = isinstance(value, str) and _ASCII_TEXT.match(value) is not None or (
        isinstance(value, int | float) and math.isfinite(value))
    if plain and _KEYWORD.match(key) and _ASCII_TEXT.match(comment):
        image = f"{key:8}= {_format_value(value)}" + (f" / {comment}" if comment else "")
        if len(image) <= _CARD:
            return image.ljust(_CARD)
    return fits.Card(key, value, comment).image


def history_image(text: str) -> str:
    """The card images of ``Header.add_history(text)`` (a long text over several HISTORY cards),
    without building a Header (see :func:`card_image`)."""
    if not text or not _ASCII_TEXT.match(text):
        lines = fits.Header()
        lines.add_history(text)
        return "".join(card.image for card in lines.cards)
    room = _CARD - 8
    return "".join(f"HISTORY {text[i:i + room]}".ljust(_CARD) for i in range(0, len(text), room))


@dataclass(frozen=True)
class _Source:
    """What the cuts of one file share (see the module docstring)."""

    hdu: int
    header: fits.Header
    wcs: WCS
    grid: SkyGrid | None
    #: frequencies of the channels of a cube (BAND and VELO cuts), when it has them
    channels: np.ndarray | None
    base: fits.Header
    #: (data offset, dtype, numpy shape) of a memory-mappable HDU, else None
    layout: tuple[int, str, tuple[int, ...]] | None
    #: held while the shared WCS computes a box: wcslib's structures are not for concurrent use
    lock: threading.Lock
    #: header templates by provenance keywords (:func:`_template`; None: use _out_header)
    templates: dict[tuple[str, ...], _Template | None]

    def template(self, keys: tuple[str, ...]) -> _Template | None:
        if keys not in self.templates:
            if len(self.templates) >= 8:  # a handful of callers, each with its own keywords
                self.templates.clear()
            self.templates[keys] = _template(self.base, keys)
        return self.templates[keys]


def _read_source(path: str | Path) -> _Source:
    with open_fits(path) as hdul:
        idx = _image_hdu(hdul)
        src = hdul[idx].header.copy()
        info = hdul.fileinfo(idx)
        file = info["file"] if info else None
        plain = (not isinstance(hdul[idx], fits.CompImageHDU) and file is not None and bool(file.memmap)
                 and not file.compression and int(src["BITPIX"]) in DTYPES)
        offset = int(info["datLoc"]) if plain and info else None
    wcs = header_wcs(src)
    naxis = int(src["NAXIS"])
    shape = [int(src[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    grid = sky_grid(wcs, shape) if wcs.has_celestial else None
    channels = None
    if wcs.wcs.spec >= 0 and shape[wcs.wcs.spec] > 1:
        try:
            channels = channel_frequencies(src, wcs, shape[wcs.wcs.spec])
        except UsageError:
            channels = None  # a BAND or VELO cut then says why, from pixel_box
    layout = (offset, DTYPES[int(src["BITPIX"])], tuple(reversed(shape))) if offset is not None else None
    return _Source(idx, src, wcs, grid, channels, _base_header(src, wcs, naxis), layout, threading.Lock(), {})


@lru_cache(maxsize=SOURCE_CACHE)
def _cached_source(path: str, version: tuple[int, int]) -> _Source:
    """A local file's :class:`_Source`, kept for the next cuts (``version``: size and mtime)."""
    return _read_source(path)


def _source(path: str | Path) -> tuple[_Source, tuple[int, int] | None]:
    """The source of ``path`` and, for a local file, its version (cached); read afresh for a URL."""
    loc = location(path)
    if is_remote(loc):
        return _read_source(path), None
    st = os.stat(loc)
    version = (st.st_size, st.st_mtime_ns)
    return _cached_source(str(loc), version), version


def plan(path: str | Path, req: CutRequest, provenance: dict[str, tuple[str, str]] | None = None,
         history: str = "cutout made by vlkb") -> Cutout:
    """Plan the cut of ``path`` for ``req``: reads the header only (once per file and version).

    ``provenance`` maps keywords to ``(value, comment)`` added to the output header.
    """
    src, version = _source(path)
    with src.lock:
        box = pixel_box(src.header, req, src.wcs, src.grid, src.channels)
    for i, (a, b) in enumerate(box, start=1):
        history += f"; axis {i} pixels {a + 1}:{b}"
    mapped = (version, *src.layout) if version is not None and src.layout is not None else None
    provenance = provenance or {}
    template = src.template(tuple(provenance))
    if template is not None and len(box) == len(template.naxis):
        header = _header_bytes(template, box, provenance, history)
    else:
        header = _out_header(src.base, box, provenance, history).tostring(padding=True).encode("ascii")
    # serialised here, in the planning thread, not later in an event loop
    return Cutout(path=path, hdu=src.hdu, box=box, header_bytes=header, bitpix=int(src.header["BITPIX"]),
                  mapped=mapped)
