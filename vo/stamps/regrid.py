"""Tiles kept for ``REGRID`` stamps in a job: a slab per stamp, no header parsed, the file from a template.

**Kept tiles** (:class:`RegridTiles`): a stamp cut from one local uncompressed 2D tile keeps that
tile's memory map (:func:`vo.cutout.source.mapping`), its celestial WCS, its unit factor and the
header cards a stamp inherits, so each further stamp reads only the slab its grid needs (the grid's
outline mapped into the tile, plus the kernel's reach) with no header parse, no ``WCS`` built and
no temporary file. The general path (:func:`vo.stamps.stamp.make_stamps`) is the same steps from
a SODA cut. A kept tile moves its WCS's reference pixel to each slab rather than copying the WCS
(a copy costs ~1 ms), under a lock.

**Files from a template**: the first stamp of a tile on one kind of grid (survey, shape, pixel,
frame) is finished the general way (:func:`vo.stamps.stamp._finish`) and its serialised header
kept; the next stamps of that tile and grid rewrite only the cards that differ between sources
(``CRVAL``, ``LONPOLE``/``LATPOLE``, ``OBJECT``, source position, coverage, background level and
its ``HISTORY`` card), as :mod:`vo.stamps.tiles` does for native stamps (astropy's header
building and verification were a quarter of a stamp's time). Such a stamp is a
:class:`FileStamp`: its header is parsed back from its file only when a cube or a stack asks.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel

from vo import soda
from vo.caller import Dataset
from vo.cutout.bounds import header_wcs
from vo.errors import UsageError
from vo.stamps.resample import resample
from vo.stamps.stamp import (
    Options,
    Source,
    Stamp,
    StampError,
    _coverage,
    _finish,
    _Native,
    _params,
    _pixel_deg,
    regrid_note,
    subtract_background,
)
from vo.stamps.stamp import make_stamps as general_stamps
from vo.stamps.tiles import Plane, _card
from vo.stamps.units import Brightness, parse_bunit

_BLOCK = 2880
#: the cards of a regridded stamp that differ between sources on grids of one shape and pixel
_VARYING = ("CRVAL1", "CRVAL2", "LONPOLE", "LATPOLE", "OBJECT", "VLKBSRCL", "VLKBSRCB", "VLKBCOV")

__all__ = ["FileStamp", "KeptTile", "RegridTiles", "make_stamps", "slab_box"]

#: header keywords a stamp takes from its tile (beam, frequency, instrument)
CARRIED = ("BMAJ", "BMIN", "BPA", "RESTFRQ", "RESTFREQ", "FREQ", "WAVELENG", "TELESCOP", "INSTRUME")


def slab_box(wcs: WCS, grid: WCS) -> tuple[int, int, int, int] | None:
    """``(x0, x1, y0, y1)``: the pixels of an image on ``wcs`` that ``grid`` needs (its outline
    mapped into ``wcs``, plus the kernel's reach (one output pixel) doubled, plus two input pixels);
    may reach outside the image. None when the grid does not map into ``wcs``."""
    nx, ny = grid.pixel_shape
    edge_x = np.arange(-0.5, nx, 1.0)
    edge_y = np.arange(-0.5, ny, 1.0)
    xs = np.concatenate([edge_x, edge_x, np.full(edge_y.size, -0.5), np.full(edge_y.size, nx - 0.5)])
    ys = np.concatenate([np.full(edge_x.size, -0.5), np.full(edge_x.size, ny - 0.5), edge_y, edge_y])
    if _same_frame(wcs, grid):
        world = grid.wcs_pix2world(np.column_stack([xs, ys]), 0)
        px = wcs.wcs_world2pix(world, 0)
        x, y = px[:, 0], px[:, 1]
    else:
        x, y = pixel_to_pixel(grid, wcs, xs, ys)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    ratio = abs(float(grid.wcs.cdelt[1])) / _pixel_deg(wcs)
    reach = math.ceil(2 * ratio) + 2
    return (math.floor(x.min()) - reach, math.ceil(x.max()) + reach + 1,
            math.floor(y.min()) - reach, math.ceil(y.max()) + reach + 1)


def _same_frame(a: WCS, b: WCS) -> bool:
    return a.wcs.ctype[0][:4] == b.wcs.ctype[0][:4] and (a.wcs.ctype[0].startswith("GLON")
                                                         or (a.wcs.radesys or "ICRS") == (b.wcs.radesys or "ICRS"))


@dataclass
class _Template:
    """The FITS header of a tile's first stamp on one kind of grid, with where the varying cards sit."""

    cards: list[str]
    where: dict[str, int]
    comments: dict[str, str]
    conversions: list[str]
    #: Jy/sr per one target unit on the grid
    per_target: float
    skipped: bool = False
    note_at: int = -1
    history_at: int = -1


@dataclass
class KeptTile:
    """One tile as the regridded stamps cut from it share it."""

    did: str
    plane: Plane
    #: the tile's celestial WCS; its reference pixel is moved per slab (:meth:`resampled`)
    wcs: WCS
    crpix: tuple[float, float]
    pixel: float
    #: tile values -> Jy/sr
    factor: float
    #: the cards a stamp inherits (beam, frequency, instrument)
    header: fits.Header
    note: str
    #: the header templates of this tile's stamps, by survey and grid (shape, pixel, frame)
    templates: dict[tuple[object, ...], _Template | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resampled(self, grid: WCS, max_voxels: int) -> np.ndarray:
        """The slab of the tile ``grid`` needs (NaN outside the tile), in Jy/sr, resampled onto ``grid``."""
        with self.lock:  # the kept WCS is moved to the slab: one slab at a time
            self.wcs.wcs.crpix = self.crpix
            self.wcs.wcs.set()
            box = slab_box(self.wcs, grid)
            if box is None:
                raise StampError("the source is outside the projection of the data")
            x0, x1, y0, y1 = box
            if (x1 - x0) * (y1 - y0) > max_voxels:
                raise StampError(f"the cut would hold {(x1 - x0) * (y1 - y0)} pixels; use a smaller SIZE")
            out = self.plane.window(x0, x1, y0, y1)
            out *= self.factor
            self.wcs.wcs.crpix = [self.crpix[0] - x0, self.crpix[1] - y0]
            self.wcs.wcs.set()
            return resample(out, self.wcs, grid)


def _keep(ds: Dataset, query: soda.SodaParams) -> KeptTile | None:
    """``ds`` as a :class:`KeptTile`, or None when it cannot be kept (remote, compressed, a cube,
    a unit that cannot be converted)."""
    cut = soda.open_cutout(ds, query)
    plane = Plane.of(cut)
    if plane is None:
        return None
    full = header_wcs(cut.header)
    if full.naxis != 2 or not full.has_celestial:
        return None
    wcs = full.celestial
    crpix = (float(wcs.wcs.crpix[0] + cut.box[0][0]), float(wcs.wcs.crpix[1] + cut.box[1][0]))
    header = fits.Header([c for c in cut.header.cards if c.keyword in CARRIED])
    try:
        unit = parse_bunit(str(cut.header.get("BUNIT", "")))
        factor = Brightness.of(header, wcs).factor(unit)
    except UsageError:
        return None
    return KeptTile(ds.publisher_did, plane, wcs, crpix, _pixel_deg(wcs), factor, header,
                    f"{unit} -> Jy/sr x {factor:.6g}")


class RegridTiles:
    """The tiles of one job kept for regridded stamps, by DID (None: cannot be kept, take the general path)."""

    def __init__(self) -> None:
        self._tiles: dict[str, KeptTile | None] = {}

    def tile(self, ds: Dataset, query: soda.SodaParams) -> KeptTile | None:
        """The kept tile of ``ds`` (``query``: any cut of it, to plan the first)."""
        did = ds.publisher_did
        if did not in self._tiles:
            try:
                self._tiles[did] = _keep(ds, query)
            except UsageError:
                self._tiles[did] = None
        return self._tiles[did]


class FileStamp(Stamp):
    """A stamp whose FITS file is written already; its header is read back from the file only when
    asked (a cube or a stack needs it, a file per stamp does not)."""

    @property
    def header(self) -> fits.Header | None:
        head = self.__dict__.get("_header")
        if head is None and self.file is not None:
            head = self.__dict__["_header"] = fits.Header.fromfile(io.BytesIO(self.file))
        return head

    @header.setter
    def header(self, value: fits.Header | None) -> None:
        self.__dict__["_header"] = value


def _grid_key(grid: WCS) -> tuple[object, ...]:
    w = grid.wcs
    return (tuple(grid.pixel_shape), tuple(w.cdelt), tuple(w.crpix), tuple(w.ctype), w.radesys)


def _template(first: Stamp, per_target: float, opts: Options) -> _Template | None:
    """The template of ``first`` (made the general way), or None when its cards do not fit one."""
    assert first.data is not None and first.header is not None
    primary = fits.PrimaryHDU(first.data, first.header).header
    skipped = "BKGSKIP" in primary
    varying = (*_VARYING, "BKGLEVEL") if opts.bkg is not None and not skipped else _VARYING
    where = {k: i for i, card in enumerate(primary.cards) if (k := card.keyword) in varying}
    if set(where) != set(varying):
        return None
    t = _Template([card.image for card in primary.cards], where, {k: primary.comments[k] for k in varying},
                  list(first.conversions), per_target, skipped)
    if opts.bkg is not None and not skipped:
        t.note_at = next((i for i, n in enumerate(first.conversions) if n.startswith("background ")), -1)
        t.history_at = next((i for i, c in enumerate(primary.cards)
                             if c.keyword == "HISTORY" and str(c.value).startswith("vlkb stamp: background ")), -1)
        if t.note_at < 0 or t.history_at < 0:
            return None
    return t


def _from_template(t: _Template, sb: np.ndarray, src: Source, survey: str, grid: WCS, did: str,
                   opts: Options) -> Stamp | None:
    """The stamp of ``sb`` (Jy/sr on ``grid``) with ``t``'s cards, or None: the template does not fit."""
    values: dict[str, object] = {}
    conversions = list(t.conversions)
    cards = list(t.cards)
    if opts.bkg is not None:
        sub, level = subtract_background(sb, opts.bkg)
        if (level is None) != t.skipped:
            return None
        if level is not None:
            sb = sub
            note = f"background {opts.bkg} {level:.6g} Jy/sr subtracted"
            conversions[t.note_at] = note
            history = fits.Card("HISTORY", f"vlkb stamp: {note}").image
            if len(history) != 80:
                return None
            cards[t.history_at] = history
            values["BKGLEVEL"] = level
    data = (sb / t.per_target).astype(np.float32)
    cov = _coverage(data)
    values.update({"CRVAL1": float(grid.wcs.crval[0]), "CRVAL2": float(grid.wcs.crval[1]),
                   "LONPOLE": float(grid.wcs.lonpole), "LATPOLE": float(grid.wcs.latpole), "OBJECT": src.name,
                   "VLKBSRCL": src.l, "VLKBSRCB": src.b, "VLKBCOV": round(cov, 6)})
    for key, value in values.items():
        cards[t.where[key]] = _card(key, value, t.comments[key])
    head = "".join(cards) + "END".ljust(80)
    head += " " * (-len(head) % _BLOCK)
    body = np.ascontiguousarray(data, dtype=">f4").tobytes()
    stamp = FileStamp(src, survey, data, None, dids=[did], conversions=conversions, coverage=cov, method="cut")
    stamp.file = head.encode("ascii") + body + b"\0" * (-len(body) % _BLOCK)
    return stamp


def _tile_stamp(tile: KeptTile, src: Source, survey: str, grid: WCS, opts: Options) -> Stamp:
    """The stamp of ``src`` from a kept tile: its slab resampled onto ``grid``; the header from the
    tile's template for this kind of grid, or (the first) made the general way and kept as one."""
    sb = tile.resampled(grid, opts.max_voxels)
    key = (survey, *_grid_key(grid))
    t = tile.templates.get(key)
    if t is not None:
        made = _from_template(t, sb, src, survey, grid, tile.did, opts)
        if made is not None:
            return made
    n = _Native(sb, grid, tile.header.copy(), [tile.did], "cut", [tile.note, regrid_note(grid)])
    first = _finish(n, src, survey, opts)
    if key not in tile.templates:
        tile.templates[key] = _template(first, Brightness.of(tile.header, grid).factor(opts.unit), opts)
    return first


def make_stamps(src: Source, inputs: Sequence[tuple[str, Sequence[Dataset], Sequence[Dataset]]],
                opts: Options, kept: RegridTiles) -> list[Stamp]:
    """:func:`vo.stamps.stamp.make_stamps` with the job's ``kept`` tiles: a ``REGRID`` stamp held
    by one local 2D tile (no ``BEAM``) is made from its slab (see the module text)."""

    def from_tile(survey: str, full: Sequence[Dataset]) -> tuple[float, Callable[[WCS], Stamp]] | None:
        tile = kept.tile(full[0], _params([full[0].publisher_did], src, opts).cuts()[0]) if full else None
        return None if tile is None else (tile.pixel, lambda grid: _tile_stamp(tile, src, survey, grid, opts))

    return general_stamps(src, inputs, opts, from_tile if opts.regrid and opts.beam is None else None)
