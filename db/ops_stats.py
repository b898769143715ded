"""Operational figures read from ``vlkb.jobs``: jobs by kind and phase, run times, one owner's active jobs.

The job table is the queue of record whatever process runs the jobs (``docs/operations.md``), so
these counts are right for every executor and every number of workers; each is one cheap
aggregate (GROUP BY over the job rows, which the destruction sweep keeps few).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

__all__ = ["ACTIVE_PHASES", "DurationHistogram", "active_jobs", "job_durations", "job_phases"]

#: the phases of a job that holds or waits for a worker (UWS 1.1 section 2.1.3)
ACTIVE_PHASES = ("QUEUED", "EXECUTING")


@dataclass(frozen=True)
class DurationHistogram:
    """Run times of the finished jobs of one kind and final phase: cumulative counts per upper bound."""

    kind: str
    phase: str
    buckets: list[tuple[float, int]]
    count: int
    total: float


async def job_phases(pool: AsyncConnectionPool) -> list[tuple[str, str, int]]:
    """``(kind, phase, number of jobs)`` for every kind and phase present."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT kind, phase, count(*) FROM vlkb.jobs GROUP BY kind, phase ORDER BY 1, 2")
        return [(k, p, int(n)) for k, p, n in await cur.fetchall()]


async def job_durations(pool: AsyncConnectionPool, bounds: Sequence[float]) -> list[DurationHistogram]:
    """Cumulative histograms of the run time (start to end) of finished jobs, by kind and final phase."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """SELECT kind, phase, array_agg(extract(epoch FROM end_time - start_time)::float8)
                 FROM vlkb.jobs
                WHERE phase IN ('COMPLETED', 'ERROR', 'ABORTED') AND start_time IS NOT NULL
                  AND end_time IS NOT NULL
                GROUP BY kind, phase ORDER BY 1, 2""")
        rows = await cur.fetchall()
    out = []
    for kind, phase, seconds in rows:
        out.append(DurationHistogram(kind, phase, [(b, sum(1 for s in seconds if s <= b)) for b in bounds],
                                     len(seconds), float(sum(seconds))))
    return out


async def active_jobs(pool: AsyncConnectionPool, owner: str | None) -> int:
    """How many jobs of ``owner`` (None: the anonymous ones, together) are QUEUED or EXECUTING."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM vlkb.jobs WHERE owner IS NOT DISTINCT FROM %s AND phase = ANY(%s)",
            (owner, list(ACTIVE_PHASES)))
        row = await cur.fetchone()
    return int(row[0]) if row else 0
