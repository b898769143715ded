"""Dataset footprints and survey summaries as a caller sees them, for coverage MOCs and registry records.

Each function takes a connection already in the caller's session (``vo.caller.session``: the
query role with the caller's groups), so the row-level security of ``ivoa.obscore`` is the one
rule of what a caller sees: a restricted survey's rows are simply absent for other callers. No
visibility condition, role or group is set here.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import class_row

__all__ = ["Footprint", "SurveySummary", "footprints", "survey_summaries"]


@dataclass(frozen=True)
class Footprint:
    """One dataset's ICRS footprint (DALI polygon, degrees) and where it belongs."""

    did: str
    survey: str
    #: ``"species | transition"`` (ObsCore obs_title), the survey band
    band: str
    s_region: list[float] | None
    s_ra: float | None
    s_dec: float | None


@dataclass(frozen=True)
class SurveySummary:
    """What a registry record says about one survey band: counts and coverage in time and energy."""

    survey: str
    band: str
    datasets: int
    facility: str | None
    instrument: str | None
    reference: str | None
    description: str | None
    t_min: float | None
    t_max: float | None
    em_min: float | None
    em_max: float | None


async def footprints(conn: AsyncConnection, *, survey: str | None = None, did: str | None = None) -> list[Footprint]:
    """The footprints the session's caller may see, of one survey (``survey``) or one dataset (``did``).

    Ordered by DID, so a digest of the answer is stable.
    """
    where, args = [], {}
    if survey is not None:
        where.append("obs_collection = %(survey)s")
        args["survey"] = survey
    if did is not None:
        where.append("obs_publisher_did = %(did)s")
        args["did"] = did
    query = (
        "SELECT obs_publisher_did AS did, obs_collection AS survey, coalesce(obs_title, '') AS band, "
        "vlkb_dali_polygon(s_region) AS s_region, s_ra, s_dec FROM ivoa.obscore"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY obs_publisher_did"
    )
    async with conn.cursor(row_factory=class_row(Footprint)) as cur:
        await cur.execute(query, args)
        return await cur.fetchall()


async def survey_summaries(conn: AsyncConnection) -> list[SurveySummary]:
    """One row per survey band the session's caller may see, with its ObsCore coverage and the
    survey's metadata from ``datasets.surveys``."""
    query = """
        SELECT o.obs_collection AS survey, coalesce(o.obs_title, '') AS band, count(*)::int AS datasets,
               min(s.facility) AS facility, min(s.instrument) AS instrument, min(s.reference) AS reference,
               min(s.description) AS description,
               min(o.t_min) AS t_min, max(o.t_max) AS t_max, min(o.em_min) AS em_min, max(o.em_max) AS em_max
        FROM ivoa.obscore o
        LEFT JOIN datasets.surveys s
          ON s.name = o.obs_collection AND s.species || ' | ' || s.transition = o.obs_title
        GROUP BY o.obs_collection, o.obs_title
        ORDER BY o.obs_collection, o.obs_title
    """
    async with conn.cursor(row_factory=class_row(SurveySummary)) as cur:
        await cur.execute(query)
        return await cur.fetchall()
