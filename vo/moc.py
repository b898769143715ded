"""Coverage MOCs (IVOA MOC 2.0) of surveys, survey bands and datasets, built with mocpy.

A MOC is the union of the ICRS footprints (``ivoa.obscore.s_region``, converted from the
Galactic frame at ingest: a polygon's edges are great circles in any frame, so converting the
vertices is exact) of the datasets a caller can see. Building one costs a HEALPix rasterisation
per polygon, so MOCs are cached as MOC 2.0 FITS files under a directory, keyed by a digest of
the footprints they were made from: a new ingest (or a policy change) changes the digest, so a
stale MOC is never served, and :func:`refresh` rebuilds after an ingest. No HTTP and no SQL here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mocpy import MOC
from psycopg_pool import AsyncConnectionPool

from db.footprints import Footprint, footprints, survey_summaries
from vo.caller import Caller, session
from vo.errors import NotFoundError, UsageError

__all__ = [
    "FORMATS", "MocCache", "MocFormat", "band_key", "build", "dataset_moc", "encode", "pick_format",
    "refresh", "scope_digest", "survey_bands", "survey_moc",
]

#: Registry records carry a coarse MOC (VODataService 1.2 section 3.5 suggests about order 6).
RECORD_ORDER = 6
#: the statement timeout of reading footprints, seconds
_TIMEOUT = 60.0


@dataclass(frozen=True)
class MocFormat:
    """One serialisation of MOC 2.0 (sections 4.2-4.4): its FORMAT name and media type."""

    name: str
    media_type: str


FORMATS = {
    "fits": MocFormat("fits", "application/fits"),
    "ascii": MocFormat("ascii", "text/plain"),
    "json": MocFormat("json", "application/json"),
}
_ALIASES = {
    "fits": "fits", "application/fits": "fits", "image/fits": "fits", "application/x-fits": "fits",
    "ascii": "ascii", "text": "ascii", "txt": "ascii", "text/plain": "ascii",
    "json": "json", "application/json": "json",
}


def pick_format(format_param: str | None, accept: str | None) -> MocFormat:
    """The serialisation asked for: ``FORMAT`` (a name or media type) wins over ``Accept``; FITS,
    the MOC 2.0 reference serialisation, when neither says.

    ``Accept`` entries are tried by quality (RFC 9110 section 12.5.1); ``*/*`` and unknown ones
    fall back to FITS, while an unknown ``FORMAT`` is the caller's mistake.
    """
    if format_param is not None:
        key = _ALIASES.get(format_param.strip().lower())
        if key is None:
            raise UsageError(f"FORMAT: expected fits, ascii or json (or their media types), got {format_param!r}")
        return FORMATS[key]
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept or "").split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranked.append((-q, i, media.lower()))
    for _, _, media in sorted(ranked):
        if media in _ALIASES and "/" in media:
            return FORMATS[_ALIASES[media]]
    return FORMATS["fits"]


def band_key(band: str) -> str:
    """The URL key of a survey band from its ObsCore title ``"species | transition"``:
    ``70um`` for ``Continuum | 70 um``, ``13co-1-0`` for ``13CO | 1-0`` (as in the survey slugs of
    ``vo.ingest.obscore.survey_slug`` without the survey's name)."""
    species, _, transition = (p.strip() for p in band.partition("|"))
    parts = [transition.replace(" ", "")] if species.lower() in ("continuum", "") else [species, transition]
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def scope_digest(scope: str, order: int, regions: Sequence[tuple[str, Sequence[float] | None]]) -> str:
    """A digest of what a MOC is made of: its scope, order and every (DID, polygon) pair."""
    h = hashlib.sha256(f"{scope}\n{order}\n".encode())
    for did, region in regions:
        h.update(did.encode())
        h.update(np.asarray(region if region is not None else [], dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def build(regions: Sequence[Sequence[float] | None], order: int) -> MOC:
    """The union of the MOCs of ICRS polygons given as DALI lists ``[ra1, dec1, ra2, dec2, ...]``
    (degrees); regions that are None or have fewer than three vertices are skipped."""
    polygons = [np.asarray(r, dtype=np.float64) for r in regions if r is not None and len(r) >= 6]
    if not polygons:
        return MOC.new_empty(order)
    flat: list[np.ndarray] = []
    for p in polygons:
        flat += [p[0::2] % 360.0, p[1::2]]
    mocs = MOC.from_polygons(flat, max_depth=order, n_threads=1)
    return mocs[0].union(*mocs[1:]) if len(mocs) > 1 else mocs[0]


def encode(moc: MOC, fmt: MocFormat) -> bytes:
    """``moc`` in the serialisation ``fmt`` (MOC 2.0 FITS with the ``MOCVERS``/``MOCDIM`` keywords,
    the ASCII string, or the JSON object)."""
    if fmt.name == "fits":
        buf = io.BytesIO()
        moc.serialize("fits").writeto(buf)
        return buf.getvalue()
    if fmt.name == "json":
        return (json.dumps(json.loads(moc.to_string("json")), separators=(",", ":")) + "\n").encode()
    return (moc.to_string("ascii") + "\n").encode()


class MocCache:
    """MOCs as FITS files under ``root``, named by scope and digest; writes are atomic renames, so
    processes sharing the directory never read half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _prefix(self, scope: str) -> str:
        return hashlib.sha256(scope.encode()).hexdigest()[:16]

    def get(self, scope: str, digest: str) -> MOC | None:
        """The cached MOC of ``scope`` made from ``digest``; None when absent or unreadable."""
        path = self.root / f"{self._prefix(scope)}-{digest}.fits"
        if not path.is_file():
            return None
        try:
            return MOC.load(str(path), "fits")
        except (OSError, ValueError):  # a damaged file is rebuilt
            return None

    def put(self, scope: str, digest: str, moc: MOC) -> None:
        """Store ``moc``, then remove the earlier MOCs of the same scope."""
        self.root.mkdir(parents=True, exist_ok=True)
        prefix = self._prefix(scope)
        name = f"{prefix}-{digest}.fits"
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".moc-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(encode(moc, FORMATS["fits"]))
            os.replace(tmp, self.root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in self.root.glob(f"{prefix}-*.fits"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def moc(self, scope: str, order: int, regions: Sequence[tuple[str, Sequence[float] | None]]) -> MOC:
        """The MOC of ``regions`` (DID, polygon) for ``scope``: from the cache, else built and stored."""
        digest = scope_digest(scope, order, regions)
        cached = self.get(scope, digest)
        if cached is not None:
            return cached
        moc = build([r for _, r in regions], order)
        self.put(scope, digest, moc)
        return moc


async def _footprints(pool: AsyncConnectionPool, caller: Caller, *, survey: str | None = None,
                      did: str | None = None) -> list[Footprint]:
    async with session(pool, caller, timeout=_TIMEOUT) as conn:
        return await footprints(conn, survey=survey, did=did)


def _regions(rows: Sequence[Footprint]) -> list[tuple[str, Sequence[float] | None]]:
    return [(r.did, r.s_region) for r in rows]


def _scope(survey: str, band: str | None) -> str:
    return f"survey\n{survey}" + (f"\n{band.lower()}" if band is not None else "")


async def survey_moc(pool: AsyncConnectionPool, cache: MocCache, caller: Caller, survey: str,
                     band: str | None, order: int) -> MOC:
    """The MOC of ``survey`` (all its bands, or the band whose :func:`band_key` is ``band``) as
    ``caller`` sees it. A survey or band with no dataset the caller may read is missing
    (NotFoundError), so a restricted survey looks the same as an unknown one."""
    rows = await _footprints(pool, caller, survey=survey)
    if not rows:
        raise NotFoundError(f"no survey named {survey!r}")
    if band is not None:
        rows = [r for r in rows if band_key(r.band) == band.lower()]
        if not rows:
            raise NotFoundError(f"survey {survey!r} has no band {band!r}")
    return await asyncio.to_thread(cache.moc, _scope(survey, band), order, _regions(rows))


async def refresh(pool: AsyncConnectionPool, cache: MocCache, survey: str, caller: Caller, order: int) -> int:
    """Build the MOCs of ``survey`` and of each of its bands as ``caller`` (one of its readers)
    sees them, so the first request after an ingest finds them ready; returns how many there are."""
    rows = await _footprints(pool, caller, survey=survey)
    if not rows:
        return 0
    by_band: dict[str, list[Footprint]] = {}
    for r in rows:
        by_band.setdefault(band_key(r.band), []).append(r)
    await asyncio.to_thread(cache.moc, _scope(survey, None), order, _regions(rows))
    for key, part in by_band.items():
        await asyncio.to_thread(cache.moc, _scope(survey, key), order, _regions(part))
    return 1 + len(by_band)


async def dataset_moc(pool: AsyncConnectionPool, caller: Caller, did: str, order: int) -> MOC:
    """The MOC of one dataset's footprint (not cached: one polygon is quick to rasterise)."""
    rows = await _footprints(pool, caller, did=did)
    if not rows or rows[0].s_region is None:
        raise NotFoundError(f"no dataset {did!r} with a footprint")
    return await asyncio.to_thread(build, [rows[0].s_region], order)


async def survey_bands(pool: AsyncConnectionPool, caller: Caller) -> dict[str, list[str]]:
    """Every survey ``caller`` may read, with the keys of its bands."""
    async with session(pool, caller, timeout=_TIMEOUT) as conn:
        summaries = await survey_summaries(conn)
    out: dict[str, list[str]] = {}
    for r in summaries:
        keys = out.setdefault(r.survey, [])
        if band_key(r.band) not in keys:
            keys.append(band_key(r.band))
    return out
