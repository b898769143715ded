"""Which surveys a caller asks for, and which of their datasets cover a stamp, read for that caller.

``SURVEY`` names a survey as ``datasets.surveys`` lists it: the survey's name, a slash and its
transition (``Hi-GAL/160 um``); line surveys put the species first (``CHaMP/13CO 1-0``). The
names are resolved against the surveys the caller may read (row-level security, through
:mod:`vo.caller`): a survey they may not read is unknown to them, exactly like a misspelt one.

The covering datasets of a stamp come from ObsCore (``s_region_galactic`` against the stamp's
circle, pgSphere on the GiST index), in the caller's session: the datasets whose footprint holds
the whole circle first (nearest centre first), then those that only overlap it. Nothing here
filters by survey policy: ``db/sql/access.sql`` is the one rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from vo.caller import Caller, Dataset, datasets, datasets_blocking, session, session_blocking
from vo.errors import UsageError

__all__ = ["Covering", "SurveyRef", "covering", "covering_many_blocking", "resolve", "resolve_blocking"]

_SURVEYS_SQL = "SELECT name, species, transition, dataproduct_type FROM datasets.surveys ORDER BY 1, 2, 3"
# the datasets meeting each stamp's circle (pgSphere on the GiST index), those holding all of it first,
# nearest centre first, for a chunk of sources in one statement: the sources as arrays unnested into
# rows, each joined LATERAL against ObsCore (the GiST index per source, the per-source order and LIMIT).
# The outer ORDER BY repeats the per-source keys: a sort on the source alone need not keep that order.
_SRC_CIRCLE = "scircle(spoint(radians(s.l), radians(s.b)), radians(s.r))"
_COVERING_MANY_SQL = f"""
SELECT s.i, c.obs_publisher_did, c.full
FROM unnest(%(i)s::int[], %(l)s::float8[], %(b)s::float8[], %(r)s::float8[], %(ra)s::float8[],
            %(dec)s::float8[]) AS s(i, l, b, r, ra, dec)
CROSS JOIN LATERAL (
    SELECT o.obs_publisher_did, o.s_region_galactic @> {_SRC_CIRCLE} AS full,
           spoint(radians(o.s_ra), radians(o.s_dec)) <-> spoint(radians(s.ra), radians(s.dec)) AS distance
    FROM ivoa.obscore o
    WHERE o.obs_collection = %(name)s AND o.obs_title = %(title)s AND o.s_region_galactic && {_SRC_CIRCLE}
    ORDER BY 2 DESC, 3, 1
    LIMIT 64
) AS c
ORDER BY s.i, c.full DESC, c.distance, c.obs_publisher_did
"""


@dataclass(frozen=True)
class SurveyRef:
    """One survey as the caller may read it: name, species and transition (``datasets.surveys``)."""

    name: str
    species: str
    transition: str
    dataproduct_type: str = "image"

    @property
    def text(self) -> str:
        """The request's spelling: ``Hi-GAL/160 um``, ``CHaMP/13CO 1-0``."""
        if self.species.lower() == "continuum":
            return f"{self.name}/{self.transition}"
        return f"{self.name}/{self.species} {self.transition}"

    @property
    def title(self) -> str:
        """ObsCore's ``obs_title`` of its datasets: ``species | transition``."""
        return f"{self.species} | {self.transition}"

    @property
    def slug(self) -> str:
        """A file-name part: ``hi-gal_160um``."""
        keep = "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "_" for c in self.text.replace(" ", ""))
        return keep.replace("/", "_").lower()

    @property
    def cube(self) -> bool:
        return self.dataproduct_type == "cube"


def _match(wanted: Sequence[str], rows: Sequence[tuple[str, str, str, str]]) -> list[SurveyRef]:
    if not wanted:
        raise UsageError("SURVEY: missing; name at least one survey as 'name/transition' (e.g. 'Hi-GAL/160 um')")
    known = [SurveyRef(*row) for row in rows]
    by_text = {s.text.lower(): s for s in known}
    out: list[SurveyRef] = []
    for text in wanted:
        if "/" not in text:
            raise UsageError(f"SURVEY: {text!r} is not 'name/transition' (e.g. 'Hi-GAL/160 um', 'CHaMP/13CO 1-0')")
        key = " ".join(text.split()).lower()
        found = by_text.get(key) or by_text.get(key.replace("/ ", "/"))
        if found is None:
            name = text.split("/", 1)[0].strip().lower()
            near = [s.text for s in known if s.name.lower() == name]
            hint = f"; this survey has {', '.join(near)}" if near else ""
            raise UsageError(f"SURVEY: unknown survey {text!r}{hint}")
        if found not in out:
            out.append(found)
    return out


def resolve_blocking(conn: psycopg.Connection, wanted: Sequence[str], caller: Caller) -> list[SurveyRef]:
    """The surveys named by ``wanted`` among those ``caller`` may read; UsageError naming an unknown one."""
    with session_blocking(conn, caller) as c:
        rows = c.execute(_SURVEYS_SQL).fetchall()
    return _match(wanted, rows)


async def resolve(pool: AsyncConnectionPool, wanted: Sequence[str], caller: Caller) -> list[SurveyRef]:
    """:func:`resolve_blocking` over the service's pool."""
    async with session(pool, caller) as conn:
        rows = await (await conn.execute(_SURVEYS_SQL)).fetchall()
    return _match(wanted, rows)


@dataclass(frozen=True)
class Covering:
    """The datasets of one survey meeting one stamp: ``full`` those holding all of it, nearest first."""

    full: list[Dataset]
    partial: list[Dataset]


def _args(survey: SurveyRef, centres: Sequence[tuple[float, float, float, float, float]]) -> dict[str, object]:
    """The parameters of the coverage statement for ``centres`` (``(l, b, radius, ra, dec)``, degrees)."""
    args: dict[str, object] = {"name": survey.name, "title": survey.title, "i": list(range(len(centres)))}
    for k, key in enumerate(("l", "b", "r", "ra", "dec")):
        # a radius below a micro-degree would underflow radians() in PostgreSQL; the lookup needs no finer
        args[key] = [min(max(c[k], 1e-6), 90.0) if key == "r" else c[k] for c in centres]
    return args


def _split(rows: Sequence[tuple[str, bool]], found: dict[str, Dataset]) -> Covering:
    full = [found[d] for d, f in rows if f and d in found]
    partial = [found[d] for d, f in rows if not f and d in found]
    return Covering(full, partial)


def covering_many_blocking(conn: psycopg.Connection, survey: SurveyRef,
                           centres: Sequence[tuple[float, float, float, float, float]], caller: Caller,
                           known: dict[str, Dataset] | None = None) -> list[Covering]:
    """The datasets of ``survey`` meeting each stamp of a chunk, in one statement for the chunk.

    ``centres`` holds ``(l, b, radius, ra, dec)`` in degrees per stamp; one :class:`Covering` per
    centre comes back, in order. ``known`` (DID -> dataset, filled here) keeps the datasets already
    read for this caller, so a job reads each tile's row once, not once per source.
    """
    if not centres:
        return []
    for _, _, r, _, _ in centres:
        if not math.isfinite(r) or r <= 0:
            raise UsageError("SIZE: the stamp radius must be positive")
    known = {} if known is None else known
    with session_blocking(conn, caller) as c:
        rows = c.execute(_COVERING_MANY_SQL, _args(survey, centres)).fetchall()
    missing = {d for _, d, _ in rows} - known.keys()
    if missing:
        known.update(datasets_blocking(conn, sorted(missing), caller))
    per: list[list[tuple[str, bool]]] = [[] for _ in centres]
    for i, did, full in rows:
        per[i].append((did, full))
    return [_split(found, known) for found in per]


async def covering(pool: AsyncConnectionPool, survey: SurveyRef, lonlat: tuple[float, float],
                   radius: float, radec: tuple[float, float], caller: Caller) -> Covering:
    """The datasets of ``survey`` meeting the circle (Galactic ``lonlat``, ``radius`` degrees), for ``caller``:
    :func:`covering_many_blocking`'s statement for one stamp."""
    async with session(pool, caller) as conn:
        rows = await (await conn.execute(_COVERING_MANY_SQL, _args(survey, [(*lonlat, radius, *radec)]))).fetchall()
    return _split([(d, f) for _, d, f in rows], await datasets(pool, [d for _, d, _ in rows], caller))
