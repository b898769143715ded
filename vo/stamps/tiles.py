"""A job's tiles kept open, and the fast stamp of the common case: one tile holds it, nothing resampled.

The general path (:func:`vo.stamps.stamp.make_stamps`) plans a cut through the SODA engine, reads
it as float64, parses the cut's header into a WCS, converts units through ``Brightness``, builds an
astropy header and writes it with astropy: some 20 ms a stamp, nearly all of it header and WCS work
that is the same for every stamp of one tile. Here the first stamp of each tile is made by that
general path and kept as the tile's template: the cutout engine's memory map of the tile
(:func:`vo.cutout.source.mapping`), the tile's WCS, the one factor from the tile's unit to the
target unit, and the stamp's serialised header cards. The next stamps of that tile slice the memory
map directly and rewrite only the cards that differ (size, reference pixel, source, coverage), so
a stamp file is the general path's file within float rounding, at a fraction of the cost.

Taken when a local uncompressed 2D image holds the whole stamp and no step resamples it (no
``BEAM`` or ``REGRID``: stacks and cubes regrid, so they take the general path). ``BKG`` is
applied here too (the annulus level of the stamp in the target unit, the same as the general
path's in Jy/sr times a positive factor), with its level card and HISTORY note rewritten;
otherwise :meth:`TileCache.stamp` answers None and the caller takes the general path.

Hand-written FITS header cards (the template's card images with a few replaced) because astropy's
``Header``/``writeto`` verifies every card of every file, which was half of a stamp's time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from vo import soda
from vo.caller import Dataset
from vo.cutout import Cutout
from vo.cutout.bounds import header_wcs
from vo.cutout.source import mapping
from vo.errors import UsageError
from vo.stamps.stamp import (
    Options,
    Source,
    Stamp,
    _cel,
    _coverage,
    _params,
    _pixel_deg,
    make_stamps,
    subtract_background,
)
from vo.stamps.units import Brightness, parse_bunit
from vo.storage import location

__all__ = ["TileCache", "fast_path_applies"]

_BLOCK = 2880
#: the cards of a stamp that depend on the source (all the others are the tile's)
_VARYING = ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "OBJECT", "VLKBSRCL", "VLKBSRCB", "VLKBCOV")


def fast_path_applies(opts: Options) -> bool:
    """Whether stamps of ``opts`` may take the kept-tile path (see the module text)."""
    return opts.beam is None and not opts.regrid


@dataclass
class Plane:
    """A local 2D image read through its kept memory map (:mod:`vo.cutout.source`): the raw values
    and how they become physical ones. Kept-tile stamps, native and regridded, read their pixels here."""

    data: np.ndarray
    scale: float
    zero: float
    blank: int | None

    @classmethod
    def of(cls, cut: Cutout) -> Plane | None:
        """The plane ``cut`` is planned on, or None when it is not a local uncompressed 2D image."""
        if cut.mapped is None or len(cut.shape) != 2:
            return None
        version, offset, dtype, shape = cut.mapped
        data = mapping(str(location(cut.path)), version, offset, dtype, shape)
        if data.ndim != 2:
            return None
        blank = cut.header.get("BLANK")
        return cls(data, float(cut.header.get("BSCALE", 1.0)), float(cut.header.get("BZERO", 0.0)),
                   int(blank) if blank is not None and np.dtype(dtype).kind in "iu" else None)

    def window(self, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
        """Physical values (``BSCALE``/``BZERO`` applied, ``BLANK`` as NaN) of pixels ``[y0:y1, x0:x1]``
        (0-based), as float64; NaN where the window leaves the plane."""
        out = np.full((y1 - y0, x1 - x0), np.nan, dtype=np.float64)
        ny, nx = self.data.shape
        sx, sy = slice(max(0, x0), min(nx, x1)), slice(max(0, y0), min(ny, y1))
        if sx.start < sx.stop and sy.start < sy.stop:
            raw = self.data[sy, sx]
            part = raw.astype(np.float64)
            if self.blank is not None:
                part[raw == self.blank] = np.nan
            out[sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = part
        out *= self.scale
        out += self.zero
        return out


@dataclass
class _Tile:
    """One tile as its stamps share it."""

    plane: Plane
    wcs: WCS
    galactic: bool
    pixel: float
    #: tile values -> target unit
    factor: float
    cards: list[str]
    where: dict[str, int]
    comments: dict[str, str]
    conversions: list[str]
    #: BKG: the method, the template's state (skipped or not), the target unit -> Jy/sr factor, and
    #: where the level's note sits in the conversions and the header's HISTORY cards
    bkg: str | None = None
    skipped: bool = False
    to_jysr: float = 1.0
    note_at: int = -1
    history_at: int = -1


def _tile(ds: Dataset, src: Source, survey: str, opts: Options) -> tuple[_Tile | None, Stamp]:
    """The tile of ``ds`` (None when it cannot be kept) and the stamp of ``src`` made the general way."""
    first = make_stamps(src, [(survey, [ds], [])], opts)[0]
    if not first.ok:
        return None, first
    cut = soda.open_cutout(ds, _params([ds.publisher_did], src, opts).cuts()[0])
    plane = Plane.of(cut)
    if plane is None:
        return None, first
    wcs = _cel(header_wcs(cut.header)).deepcopy()
    wcs.wcs.crpix = [wcs.wcs.crpix[0] + cut.box[0][0], wcs.wcs.crpix[1] + cut.box[1][0]]
    assert first.data is not None and first.header is not None
    # the general path's relations (vo.stamps.units) on the tile's own grid: native unit -> Jy/sr -> target
    bright = Brightness.of(first.header, wcs)
    try:
        ratio = bright.factor(parse_bunit(str(cut.header.get("BUNIT", "")))) / bright.factor(opts.unit)
    except UsageError:
        return None, first
    primary = fits.PrimaryHDU(first.data, first.header).header
    cards = [card.image for card in primary.cards]
    skipped = "BKGSKIP" in primary
    varying = (*_VARYING, "BKGLEVEL") if opts.bkg is not None and not skipped else _VARYING
    where = {k: i for i, card in enumerate(primary.cards) if (k := card.keyword) in varying}
    if set(where) != set(varying) or len(cards) != len(primary.cards):
        return None, first
    note_at = history_at = -1
    if opts.bkg is not None and not skipped:
        note_at = next((i for i, n in enumerate(first.conversions) if n.startswith("background ")), -1)
        history_at = next((i for i, c in enumerate(primary.cards)
                           if c.keyword == "HISTORY" and str(c.value).startswith("vlkb stamp: background ")), -1)
        if note_at < 0 or history_at < 0:
            return None, first
    tile = _Tile(plane, wcs, wcs.wcs.ctype[0].startswith("GLON"), _pixel_deg(wcs), ratio, cards, where,
                 {k: primary.comments[k] for k in varying}, list(first.conversions), opts.bkg, skipped,
                 bright.factor(opts.unit), note_at, history_at)
    return tile, first


def _card(key: str, value: object, comment: str) -> str:
    """One fixed-format card; numbers formatted here (astropy's ``Card`` costs ~0.1 ms), text by astropy."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fits.Card(key, value, comment).image
    text = str(value) if isinstance(value, int) else repr(float(value)).upper()
    if len(text) > 20:
        text = f"{value:.15E}"
    card = f"{key:<8}= {text:>20}" + (f" / {comment}" if comment else "")
    return card[:80].ljust(80)


def _file(data: np.ndarray, tile: _Tile, values: dict[str, object], history: str | None = None) -> bytes:
    cards = list(tile.cards)
    for key, value in values.items():
        cards[tile.where[key]] = _card(key, value, tile.comments[key])
    if history is not None:
        cards[tile.history_at] = history
    head = "".join(cards) + "END".ljust(80)
    head += " " * (-len(head) % _BLOCK)
    body = np.ascontiguousarray(data, dtype=">f4").tobytes()
    return head.encode("ascii") + body + b"\0" * (-len(body) % _BLOCK)


class TileCache:
    """The tiles of one job (or one chunk of it), by DID; a tile that cannot be kept is remembered as such."""

    def __init__(self) -> None:
        self._tiles: dict[str, _Tile | None] = {}

    def stamp(self, src: Source, radec: tuple[float, float], survey: str, full: Sequence[Dataset],
              opts: Options) -> Stamp | None:
        """The stamp of ``src`` from ``full[0]``, or None: take the general path."""
        if not full or not fast_path_applies(opts):
            return None
        ds = full[0]
        did = ds.publisher_did
        if did not in self._tiles:
            try:
                tile, first = _tile(ds, src, survey, opts)
            except UsageError:
                self._tiles[did] = None
                return None
            self._tiles[did] = tile
            return first if tile is not None else None
        tile = self._tiles[did]
        if tile is None:
            return None
        return _cut(tile, src, radec, survey, did)


def _cut(tile: _Tile, src: Source, radec: tuple[float, float], survey: str, did: str) -> Stamp | None:
    lon, lat = (src.l, src.b) if tile.galactic else radec
    x, y = (float(v) for v in tile.wcs.all_world2pix([[lon, lat]], 0)[0])
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    half = max(1, math.ceil(src.radius / tile.pixel))
    ix, iy = round(x), round(y)
    size = 2 * half + 1
    x0, y0 = ix - half, iy - half
    out = tile.plane.window(x0, x0 + size, y0, y0 + size)
    out *= tile.factor
    conversions = list(tile.conversions)
    history = None
    values: dict[str, object] = {}
    if tile.bkg is not None:
        # the annulus level in the target unit: a positive factor commutes with the median and the clip
        sub, level = subtract_background(out, tile.bkg)
        if (level is None) != tile.skipped:
            return None  # the template's cards do not fit: the general path
        if level is not None:
            out = sub
            values["BKGLEVEL"] = level * tile.to_jysr
            note = f"background {tile.bkg} {level * tile.to_jysr:.6g} Jy/sr subtracted"
            conversions[tile.note_at] = note
            history = fits.Card("HISTORY", f"vlkb stamp: {note}").image
            if len(history) != 80:
                return None
    data = out.astype(np.float32)
    cov = _coverage(data)
    # FITS pixels count from 1: the tile's reference pixel, moved to the window's corner
    crpix1, crpix2 = float(tile.wcs.wcs.crpix[0] - x0), float(tile.wcs.wcs.crpix[1] - y0)
    stamp = Stamp(src, survey, data, None, dids=[did], conversions=conversions, coverage=cov, method="cut")
    values.update({"NAXIS1": size, "NAXIS2": size, "CRPIX1": crpix1, "CRPIX2": crpix2, "OBJECT": src.name,
                   "VLKBSRCL": src.l, "VLKBSRCB": src.b, "VLKBCOV": round(cov, 6)})
    stamp.file = _file(data, tile, values, history)
    return stamp
