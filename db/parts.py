"""SQL over ``vlkb.job_parts``: the parts one job fans out to every process that runs jobs.

Only SQL lives here; the rules (who claims, when a part is queued again, where outputs go) are in
``vo/uws/parts.py``. Like jobs, every state change is compare-and-set: a claim takes a ``queued``
part of an EXECUTING job once (``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait on
each other), and a finish or a re-queue names the claim it ends (worker and run number), so a
late finisher whose part was queued again and claimed by another process changes nothing.
The job's runner thread uses the blocking functions on a connection of its own in autocommit mode
(each statement its own transaction, so nothing is held between them); the executors' event loops
claim with :func:`claim` over their pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["CHANNEL", "PartRow", "add_blocking", "claim", "claim_blocking", "executing_blocking", "finish_blocking",
           "notify_blocking", "outputs", "parts_blocking",
           "requeue", "requeue_blocking", "running", "running_blocking"]

_COLUMNS = "job_id, part, name, state, worker, heartbeat, runs, error_code, error, output"


@dataclass(frozen=True)
class PartRow:
    """One row of ``vlkb.job_parts`` (``payload`` only when claimed)."""

    job_id: str
    part: int
    name: str
    state: str
    worker: str | None
    heartbeat: datetime | None
    #: how many times a process claimed the part (more than 1: queued again after its process died)
    runs: int
    error_code: str | None
    error: str | None
    #: the part's output in the job's results store (a hidden name), once done
    output: str | None
    payload: bytes | None = None


# the oldest job's lowest queued part, of EXECUTING jobs only; %(job)s: only that job's
_CLAIM = f"""
    UPDATE vlkb.job_parts p SET state = 'running', worker = %(worker)s, heartbeat = now(), runs = p.runs + 1
    WHERE (p.job_id, p.part) = (
        SELECT q.job_id, q.part FROM vlkb.job_parts q JOIN vlkb.jobs j ON j.job_id = q.job_id
        WHERE q.state = 'queued' AND j.phase = 'EXECUTING' AND q.name = ANY(%(names)s)
          AND (%(job)s::text IS NULL OR q.job_id = %(job)s)
        ORDER BY j.start_time, q.job_id, q.part LIMIT 1
        FOR UPDATE OF q SKIP LOCKED)
      AND p.state = 'queued'
    RETURNING {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))}, p.payload"""

# running parts of EXECUTING jobs (%(job)s: of that job only), to find those whose process died
_RUNNING = f"""
    SELECT {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))} FROM vlkb.job_parts p
    JOIN vlkb.jobs j ON j.job_id = p.job_id
    WHERE p.state = 'running' AND j.phase = 'EXECUTING' AND (%(job)s::text IS NULL OR p.job_id = %(job)s)"""

_REQUEUE = """
    UPDATE vlkb.job_parts SET state = 'queued', worker = NULL
    WHERE job_id = %s AND part = %s AND runs = %s AND state = 'running'"""


async def claim(pool: AsyncConnectionPool, worker: str, names: Sequence[str]) -> PartRow | None:
    """Move the next queued part (of ``names``, of an EXECUTING job) to running for ``worker``."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(PartRow)) as cur:
        await cur.execute(_CLAIM, {"worker": worker, "names": list(names), "job": None})
        return await cur.fetchone()


def claim_blocking(conn: psycopg.Connection, worker: str, names: Sequence[str],
                   job_id: str | None = None) -> PartRow | None:
    """:func:`claim` on a blocking connection; ``job_id``: a part of that job only."""
    with conn.cursor(row_factory=class_row(PartRow)) as cur:
        return cur.execute(_CLAIM, {"worker": worker, "names": list(names), "job": job_id}).fetchone()


def add_blocking(conn: psycopg.Connection, job_id: str, part: int, name: str, payload: bytes) -> None:
    """Queue part ``part`` of ``job_id``."""
    conn.execute("INSERT INTO vlkb.job_parts (job_id, part, name, payload) VALUES (%s, %s, %s, %s)",
                 (job_id, part, name, payload))


#: the PostgreSQL notification channel a runner signals when it queued parts (the local executors listen)
CHANNEL = "vlkb_parts"


def notify_blocking(conn: psycopg.Connection) -> None:
    """Tell every process listening on :data:`CHANNEL` that parts are queued."""
    conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


def finish_blocking(conn: psycopg.Connection, row: PartRow, state: str, *, output: str | None = None,
                    error_code: str | None = None, error: str | None = None) -> bool:
    """End the claim ``row`` (``done`` or ``error``) while its job is EXECUTING; False if the claim
    is no longer ours (queued again) or the job ended meanwhile: then nothing changed."""
    cur = conn.execute(
        "UPDATE vlkb.job_parts p SET state = %s, output = %s, error_code = %s, error = %s, heartbeat = now()"
        " FROM vlkb.jobs j WHERE j.job_id = p.job_id AND j.phase = 'EXECUTING'"
        " AND p.job_id = %s AND p.part = %s AND p.runs = %s AND p.worker = %s AND p.state = 'running'",
        (state, output, error_code, error, row.job_id, row.part, row.runs, row.worker))
    return cur.rowcount == 1


def requeue_blocking(conn: psycopg.Connection, row: PartRow) -> bool:
    """Give the claim ``row`` up: the part is queued again (if the claim is still that one)."""
    return conn.execute(_REQUEUE, (row.job_id, row.part, row.runs)).rowcount == 1


async def requeue(pool: AsyncConnectionPool, row: PartRow) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(_REQUEUE, (row.job_id, row.part, row.runs))
        return cur.rowcount == 1


def parts_blocking(conn: psycopg.Connection, job_id: str, parts: Sequence[int]) -> dict[int, PartRow]:
    """The rows of ``parts`` of ``job_id``, by part number."""
    with conn.cursor(row_factory=class_row(PartRow)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM vlkb.job_parts WHERE job_id = %s AND part = ANY(%s)",
                    (job_id, list(parts)))
        return {r.part: r for r in cur.fetchall()}


def running_blocking(conn: psycopg.Connection, job_id: str) -> list[PartRow]:
    """The running parts of ``job_id`` (while it is EXECUTING)."""
    with conn.cursor(row_factory=class_row(PartRow)) as cur:
        return cur.execute(_RUNNING, {"job": job_id}).fetchall()


def executing_blocking(conn: psycopg.Connection, job_id: str) -> bool:
    """Whether ``job_id`` is still EXECUTING."""
    row = conn.execute("SELECT phase = 'EXECUTING' FROM vlkb.jobs WHERE job_id = %s", (job_id,)).fetchone()
    return bool(row and row[0])


async def outputs(pool: AsyncConnectionPool, job_id: str) -> list[str]:
    """Where the done parts of ``job_id`` wrote their outputs (read back and removed by the job's
    runner, unless it failed first)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT output FROM vlkb.job_parts WHERE job_id = %s AND state = 'done'"
                                 " AND output IS NOT NULL", (job_id,))
        return [r[0] for r in await cur.fetchall()]


async def running(pool: AsyncConnectionPool) -> list[PartRow]:
    """The running parts of every EXECUTING job (for the reaper)."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(PartRow)) as cur:
        await cur.execute(_RUNNING, {"job": None})
        return await cur.fetchall()
