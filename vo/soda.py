"""SODA 1.0 synchronous cutouts: the parameters (section 3) and the cut of one dataset.

:class:`SodaParams` parses a case-folded parameter dict: exactly one ``ID`` (several give
``MultiValuedParamNotSupported``, section 5.2: sync answers one file); at most one of ``POS``
(``CIRCLE``/``RANGE``/``POLYGON``), ``CIRCLE`` and ``POLYGON`` (section 3.3); ``BAND`` (metres,
section 3.3.5), ``TIME`` (MJD, 3.3.6) as DALI intervals; ``POL`` (3.3.7, repeatable: the states
to keep); ``PIXELS`` (``[lo:hi]`` per FITS axis, 1-based inclusive, ``[*]`` for a whole axis,
also the comma form ``[lo:hi,lo:hi]``); and the vlkb extensions ``POSSYS`` (``ICRS``, the
default, or ``GALACTIC``: the frame of the sky shapes, as the ViaLactea client sends) and
``VELO`` (``vl vu``, LSRK radio velocity in km/s, cubes only). Every constraint narrows the
cut. :func:`cutout` plans the cut of one dataset's file with provenance keywords; the pixels
are read later, by the caller, through :meth:`vo.cutout.Cutout.chunks`.

:class:`SodaJobParams` is the async form (section 4): ``ID`` and the spatial parameters may
repeat (one cut per pair) and ``MERGE`` asks for one merged file per region instead;
:func:`merge` checks that the datasets are of one survey and band and merges their cuts.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import structlog
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from vo.caller import Caller, Dataset, datasets
from vo.cutout import Cutout, CutRequest, plan, source
from vo.cutout.merge import Merged, MergeInput
from vo.cutout.merge import merge as merge_cuts
from vo.dali import DaliParams
from vo.errors import MultiValuedParamNotSupported, NotFoundError, UsageError
from vo.lookups import RecentLookups
from vo.readahead import ReadAhead
from vo.shapes import Circle, Interval, Polygon, Range, parse_shape
from vo.sia import parse_pol

__all__ = [
    "ServedCut", "SodaJobParams", "SodaParams", "cutout", "cutout_for", "filename", "merge", "parse_pixels",
    "require_file", "service_version",
]

log = structlog.get_logger("vlkb.soda")

_PIXEL_GROUP = re.compile(r"\[([^\[\]]*)\]")


@cache
def service_version() -> str:
    """The installed vlkb version (VLKBVER in cutouts); read once (package metadata is parsed
    from disk each time it is asked: a fifth of a small cut's time)."""
    try:
        return version("vlkb")
    except PackageNotFoundError:  # running from a source tree without metadata
        return "0+unknown"


def _pixel_range(text: str) -> tuple[int | None, int | None]:
    text = text.strip()
    if text == "*":
        return None, None
    parts = text.split(":")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise UsageError(f"PIXELS: {text!r} is not a range 'lo:hi'")
    out: list[int | None] = []
    for part in parts:
        part = part.strip()
        if part in ("", "*"):
            out.append(None)
            continue
        if not re.fullmatch(r"[+]?\d+", part):
            raise UsageError(f"PIXELS: {part!r} is not a pixel index (1-based integer)")
        value = int(part)
        if value < 1:
            raise UsageError(f"PIXELS: pixel indices start at 1, got {value}")
        out.append(value)
    lo, hi = out
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"PIXELS: lower index {lo} is greater than upper index {hi}")
    return lo, hi


def parse_pixels(text: str) -> tuple[tuple[int | None, int | None], ...]:
    """``[10:50] [20:60] [*]`` (or ``[10:50,20:60]``): one range per FITS axis, in axis order."""
    groups = _PIXEL_GROUP.findall(text)
    if not groups or _PIXEL_GROUP.sub("", text).strip(" ,"):
        raise UsageError(f"PIXELS: expected ranges like '[10:50] [20:60]', got {text.strip()!r}")
    return tuple(_pixel_range(part) for group in groups for part in group.split(","))


def _reader(raw: dict[str, list[str]]) -> DaliParams:
    # SODA 1.0 section 3.2: a repeated single-valued parameter is MultiValuedParamNotSupported
    return DaliParams(raw, repeat_error=MultiValuedParamNotSupported)


_SHAPE_PARSERS = {"POS": parse_shape, "CIRCLE": Circle.parse, "POLYGON": Polygon.parse}


def _shapes(p: DaliParams) -> list[tuple[str, str]]:
    """Every spatial constraint as ``(parameter, text)``, POS first."""
    return [(name, text) for name in _SHAPE_PARSERS for text in p.repeated(name)]


def _region(name: str, text: str) -> Circle | Range | Polygon:
    return _SHAPE_PARSERS[name](text, name)


class _Constraints(BaseModel):
    """The non-spatial constraints shared by every SODA request: POSSYS, BAND, TIME, POL, PIXELS, VELO."""

    model_config = ConfigDict(frozen=True)
    possys: str = "ICRS"
    band: Interval | None = None
    time: Interval | None = None
    pol: tuple[str, ...] = ()
    pixels: tuple[tuple[int | None, int | None], ...] = ()
    velo: Interval | None = None

    @staticmethod
    def _read(p: DaliParams) -> dict[str, object]:
        possys = p.possys()
        pol = tuple(dict.fromkeys(parse_pol(s, "POL") for v in p.repeated("POL") for s in v.split()))
        band, time, velo, pixels = (p.single(n) for n in ("BAND", "TIME", "VELO", "PIXELS"))
        return {
            "possys": possys,
            "band": Interval.parse(band, "BAND") if band else None,
            "time": Interval.parse(time, "TIME") if time else None,
            "pol": pol,
            "pixels": parse_pixels(pixels) if pixels else (),
            "velo": Interval.parse(velo, "VELO") if velo else None,
        }

    def _text(self, region: Circle | Range | Polygon | None) -> str:
        parts = [] if region is None else [f"{region.to_text()} {self.possys}"]
        for name, iv in (("BAND", self.band), ("TIME", self.time), ("VELO", self.velo)):
            if iv is not None:
                parts.append(f"{name} {iv.to_text()}")
        if self.pol:
            parts.append("POL " + " ".join(self.pol))
        if self.pixels:
            parts.append("PIXELS " + " ".join(
                f"[{'*' if lo is None else lo}:{'*' if hi is None else hi}]" for lo, hi in self.pixels))
        return "; ".join(parts) or "whole dataset"

    def _cut(self, region: Circle | Range | Polygon | None) -> CutRequest:
        return CutRequest(region=region, frame=self.possys.lower(), band=self.band, velo=self.velo,
                          time=self.time, pol=self.pol, pixels=self.pixels)


class SodaParams(_Constraints):
    """One synchronous SODA request (SODA 1.0 section 3)."""

    id: str
    region: Circle | Range | Polygon | None = None

    @classmethod
    def from_params(cls, raw: dict[str, list[str]]) -> SodaParams:
        """Validate the parameters; every problem is a UsageError naming the parameter."""
        p = _reader(raw)
        ident = p.required("ID", "give the publisher DID of the dataset to cut")
        shapes = _shapes(p)
        if len(shapes) > 1:
            raise MultiValuedParamNotSupported(
                f"{' and '.join(dict.fromkeys(n for n, _ in shapes))}: give one spatial constraint per sync cutout")
        return cls(id=ident, region=_region(*shapes[0]) if shapes else None, **cls._read(p))

    def region_text(self) -> str:
        """The request's constraints as text, for the provenance keywords."""
        return self._text(self.region)

    def cut_request(self) -> CutRequest:
        return self._cut(self.region)


class SodaJobParams(_Constraints):
    """An asynchronous SODA request (SODA 1.0 section 3, over UWS): several IDs, several regions.

    Each (ID, region) pair is one cut; with ``merge`` every region instead gives one merged
    file of all the IDs (:mod:`vo.cutout.merge`). ``/soda/merge`` uses the same parameters
    with ``merge`` always on.
    """

    ids: tuple[str, ...]
    regions: tuple[Circle | Range | Polygon | None, ...] = (None,)
    merge: bool = False

    @classmethod
    def from_params(cls, raw: dict[str, list[str]], *, merge: bool | None = None,
                    max_cuts: int | None = None) -> SodaJobParams:
        """Validate the parameters; ``merge`` forces the MERGE option (``/soda/merge``)."""
        p = _reader(raw)
        ids = tuple(dict.fromkeys(p.repeated("ID")))
        if not ids:
            raise UsageError("ID: missing; give the publisher DID of each dataset to cut")
        regions: tuple[Circle | Range | Polygon | None, ...] = tuple(_region(n, t) for n, t in _shapes(p)) or (None,)
        merge = p.flag("MERGE") if merge is None else merge
        if merge and regions == (None,):
            raise UsageError("POS: a merge needs a region (POS, CIRCLE or POLYGON)")
        cuts = len(regions) if merge else len(ids) * len(regions)
        if max_cuts is not None and cuts > max_cuts:
            raise UsageError(f"ID: {cuts} cuts requested; at most {max_cuts} per job")
        return cls(ids=ids, regions=regions, merge=merge, **cls._read(p))

    def cuts(self) -> list[SodaParams]:
        """One sync request per (ID, region), IDs slowest."""
        common = {name: getattr(self, name) for name in _Constraints.model_fields}
        return [SodaParams(id=i, region=reg, **common) for i in self.ids for reg in self.regions]

    def region_text(self, region: Circle | Range | Polygon | None) -> str:
        return self._text(region)

    def cut_request(self, region: Circle | Range | Polygon | None) -> CutRequest:
        return self._cut(region)


def cutout(path: str | Path, did: str, q: SodaParams) -> Cutout:
    """Plan the cut of the dataset ``did`` stored at ``path`` (reads its header only)."""
    region = q.region_text()
    provenance = {
        "VLKBSRC": (did, "source dataset (publisher DID)"),
        "VLKBREG": (region, "region cut (SODA parameters)"),
        "VLKBVER": (service_version(), "vlkb version that made this cutout"),
    }
    return plan(path, q.cut_request(), provenance, history=f"vlkb SODA cutout of {did}: {region}")


def _check_one_survey(datasets: Sequence[Dataset]) -> None:
    """A merge combines one survey, species and transition: same survey, overlapping spectral coverage."""
    surveys = sorted({d.survey for d in datasets})
    if len(surveys) > 1:
        raise UsageError(f"ID: the datasets belong to several surveys ({', '.join(surveys)}); merge one survey")
    lows = [d.em_min for d in datasets if d.em_min is not None]
    highs = [d.em_max for d in datasets if d.em_max is not None]
    if lows and highs and max(lows) > min(highs) * (1 + 1e-6):
        raise UsageError("ID: the datasets cover different bands or transitions; merge one species and transition")


def open_cutout(ds: Dataset | None, q: SodaParams) -> Cutout:
    """The one sequence from a lookup to a planned cut: absent (missing or not readable by the
    caller) is a NotFoundError, so is a dataset whose file is gone; then the cut of ``q``."""
    if ds is None:
        raise NotFoundError(f"{q.id}: no such dataset")
    require_file(ds)
    return cutout(ds.path, ds.publisher_did, q)


#: a cut whose output file is at most this many bytes is read whole with its plan (Cutout.preread);
#: a bigger one streams: measured over HTTP, a 1.2 MB cut answered in one piece was slower than
#: streamed (its header goes out while the slab is read), a 0.3 MB one faster
INLINE_BYTES = 1 << 19

#: pieces of a streamed cut read ahead of the response (1 MB each but the first, the header): the
#: memory a slow client holds besides what its socket holds; 3 measured no faster than 2
READ_AHEAD = 2

#: DIDs of datasets cut lately -> their file, so the next cut of one is planned while its lookup runs
_RECENT_PATHS: OrderedDict[str, str] = OrderedDict()
RECENT_PATHS = 4096  # bounded: a DID and a path each, about 0.5 MB at most


@dataclass(frozen=True)
class ServedCut:
    """A cut ready to answer: the dataset, its plan, and the file's pieces, already being read
    (None when the whole file is in ``cut.body``)."""

    dataset: Dataset
    cut: Cutout
    pieces: AsyncIterator[bytes | memoryview] | None


def _opener(path: str, did: str, q: SodaParams) -> Callable[[], tuple[Cutout, Iterator[bytes | memoryview] | None]]:
    """The plan of ``q`` on the file at ``path`` (a small cut read whole), then the file's pieces."""

    def open_() -> tuple[Cutout, Iterator[bytes | memoryview] | None]:
        _require_path(path, did)
        cut = cutout(path, did, q).preread(INLINE_BYTES)
        return cut, (cut.chunks() if cut.body is None else None)

    return open_


async def cutout_for(pool: AsyncConnectionPool, q: SodaParams, caller: Caller,
                     recent: RecentLookups | None = None) -> ServedCut:
    """Look ``q.id`` up for ``caller``, plan its cut and start reading it (in a worker thread).

    ``recent``: the datasets this process found lately (:mod:`vo.lookups`); a DID found for the
    same caller, with no change of access since, is cut with no lookup at all. Else a dataset
    cut lately is planned, and its first pieces read, while the lookup runs (issue 16: the
    lookup's round trip and the plan were each about a millisecond of a cut). Nothing of that is
    used unless the lookup lets ``caller`` read that DID and gives the same file; else it is
    dropped, and an unknown or unreadable DID is the same 404 as ever.
    """
    ds = recent.get(q.id, caller) if recent is not None else None
    if ds is not None:
        reader = ReadAhead(_opener(ds.path, ds.publisher_did, q), READ_AHEAD)
    else:
        generation = recent.generation if recent is not None else 0
        ds, reader = await _looked_up(pool, q, caller)
        if recent is not None:
            recent.put(ds, caller, generation)
    _remember(ds)
    try:
        cut = await reader.opened()
    except BaseException:
        reader.close()
        raise
    return ServedCut(ds, cut, reader.pieces() if cut.body is None else None)


async def _looked_up(pool: AsyncConnectionPool, q: SodaParams, caller: Caller) -> tuple[Dataset, ReadAhead]:
    """The dataset ``caller`` may read under ``q.id`` (NotFoundError if none), and its cut's reader."""
    hinted = _RECENT_PATHS.get(q.id)
    early = ReadAhead(_opener(hinted, q.id, q), READ_AHEAD) if hinted is not None else None
    try:
        ds = (await datasets(pool, [q.id], caller)).get(q.id)
    except BaseException:
        if early is not None:
            early.close()
        raise
    if ds is None or ds.path != hinted:
        if early is not None:
            early.close()
        if ds is None:
            raise NotFoundError(f"{q.id}: no such dataset")
        early = ReadAhead(_opener(ds.path, ds.publisher_did, q), READ_AHEAD)
    assert early is not None
    return ds, early


def _remember(ds: Dataset) -> None:
    _RECENT_PATHS[ds.publisher_did] = ds.path
    _RECENT_PATHS.move_to_end(ds.publisher_did)
    while len(_RECENT_PATHS) > RECENT_PATHS:
        _RECENT_PATHS.popitem(last=False)


async def merge_for(pool: AsyncConnectionPool, q: SodaJobParams, caller: Caller, *, max_voxels: int) -> Merged:
    """Look ``q.ids`` up for ``caller`` (every one must be readable) and merge their cuts of
    ``q``'s one region (in a thread: it reads and regrids pixels); a synchronous merge."""
    if len(q.regions) > 1:
        raise MultiValuedParamNotSupported("POS: a sync merge takes one region; use /soda/merge/async for several")
    region = q.regions[0]
    assert region is not None  # SodaJobParams requires a region to merge
    found = await datasets(pool, q.ids, caller)
    if missing := [i for i in q.ids if i not in found]:
        raise NotFoundError(f"{missing[0]}: no such dataset")
    return await asyncio.to_thread(merge, [found[i] for i in q.ids], q, region, max_voxels=max_voxels)


def require_file(ds: Dataset) -> None:
    """NotFoundError when a dataset the caller may read has lost its file (an operator's problem, logged)."""
    _require_path(ds.path, ds.publisher_did)


def _require_path(path: str, did: str) -> None:
    if not source.exists(path):
        log.error("dataset file missing", did=did, path=path)
        raise NotFoundError(f"{did}: the file of this dataset is not available")


def merge(datasets: Sequence[Dataset], q: SodaJobParams, region: Circle | Range | Polygon, *,
          max_voxels: int) -> Merged:
    """Merge the cuts of ``datasets`` (visible to the caller) for ``region`` (:mod:`vo.cutout.merge`)."""
    if not datasets:
        raise NotFoundError("ID: no such dataset")
    _check_one_survey(datasets)
    for d in datasets:
        require_file(d)
    text = q.region_text(region)
    provenance = {
        "VLKBREG": (text, "region cut (SODA parameters)"),
        "VLKBVER": (service_version(), "vlkb version that made this merge"),
    }
    inputs = [MergeInput(d.publisher_did, d.path) for d in datasets]
    return merge_cuts(inputs, q.cut_request(region), max_voxels=max_voxels, provenance=provenance,
                      history=f"vlkb SODA merge of {len(inputs)} datasets: {text}")


def filename(did: str) -> str:
    """The download name of a cutout of ``did``: ``<file stem>_cutout.fits``."""
    stem = Path(did.rsplit("?", 1)[-1].rsplit("/", 1)[-1]).stem or "dataset"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", stem) + "_cutout.fits"
