"""The UWS job store: SQL over ``vlkb.jobs`` and ``vlkb.job_results``, frozen records out.

Only SQL lives here; the UWS rules (which transition is allowed when, owner checks, WAIT) are
in ``vo/uws/service.py``. Every phase change is compare-and-set (``UPDATE ... WHERE job_id = %s
AND phase = ANY(%s) RETURNING ...``): a claim happens once, and an abort racing a completion
leaves exactly one winner (STYLE section 6).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

__all__ = ["PHASE_CHANNEL", "JobRow", "JobStore", "ResultRow", "set_progress_blocking"]

#: where a job's change of phase (or deletion) is announced, its id the payload (migration 0009)
PHASE_CHANNEL = "vlkb_job_phase"

_COLUMNS = (
    "job_id, kind, owner, owner_groups, run_id, phase, parameters, creation_time, start_time, end_time, "
    "execution_duration, destruction, quote, error_type, error_message, error_code, worker, heartbeat, runs, progress, "
    "base_url, terms"
)

#: the transaction-level advisory lock that serialises claims, so the per-owner count of
#: EXECUTING jobs a claim reads cannot be raced by another claim (key: "vlkb" in ASCII)
_CLAIM_LOCK = 0x766C6B62


@dataclass(frozen=True)
class JobRow:
    """One row of ``vlkb.jobs``."""

    job_id: str
    kind: str
    owner: str | None
    #: the owner's groups when the job was created: what the job may read (``db/sql/access.sql``)
    owner_groups: list[str]
    run_id: str | None
    phase: str
    parameters: dict[str, list[str]]
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    execution_duration: int
    destruction: datetime | None
    quote: datetime | None
    error_type: str | None
    error_message: str | None
    error_code: int | None
    worker: str | None
    heartbeat: datetime | None
    #: how many times a worker claimed the job: 1 for every job that ran (exactly once)
    runs: int
    #: what the runner last said of its progress (e.g. ``2 of 4 tiles``); None if it says nothing
    progress: str | None = None
    #: the public base URL of the service the job was created through (its results' URLs); None: older jobs
    base_url: str | None = None
    #: what the job was promised when it was accepted, by name (e.g. its ``SAVE_AS`` quota); None: older jobs
    terms: dict[str, Any] | None = None


@dataclass(frozen=True)
class ResultRow:
    """One row of ``vlkb.job_results``: where a result's bytes are, relative to the results store."""

    job_id: str
    result_id: str
    location: str
    mime_type: str | None
    size: int | None


class JobStore:
    """Jobs and their results in PostgreSQL, over an async connection pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def _one(self, query: str, args: Sequence[Any]) -> JobRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(JobRow)) as cur:
            await cur.execute(query, args)
            return await cur.fetchone()

    async def _many(self, query: str, args: Sequence[Any]) -> list[JobRow]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(JobRow)) as cur:
            await cur.execute(query, args)
            return await cur.fetchall()

    async def create(self, job_id: str, kind: str, *, owner: str | None, run_id: str | None,
                     parameters: dict[str, list[str]], execution_duration: int,
                     destruction: datetime | None, owner_groups: Sequence[str] = (),
                     base_url: str | None = None, terms: Mapping[str, Any] | None = None) -> JobRow:
        """Insert a PENDING job."""
        row = await self._one(
            f"INSERT INTO vlkb.jobs (job_id, kind, owner, owner_groups, run_id, parameters, execution_duration,"
            f" destruction, base_url, terms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (job_id, kind, owner, list(owner_groups), run_id, Jsonb(parameters), execution_duration, destruction,
             base_url, None if terms is None else Jsonb(dict(terms))),
        )
        assert row is not None
        return row

    async def get(self, job_id: str) -> JobRow | None:
        return await self._one(f"SELECT {_COLUMNS} FROM vlkb.jobs WHERE job_id = %s", (job_id,))

    # this method hides the type ``list`` in the class body: later annotations say ``builtins.list``
    async def list(self, kind: str, owner: str, *, phases: Sequence[str] = (), after: datetime | None = None,
                   last: int | None = None) -> list[JobRow]:
        """``owner``'s jobs of ``kind``, oldest first; ``last``: only the newest ``last`` of them."""
        where = ["kind = %s", "owner = %s"]
        args: list[Any] = [kind, owner]
        if phases:
            where.append("phase = ANY(%s)")
            args.append(list(phases))
        if after is not None:
            where.append("creation_time > %s")
            args.append(after)
        query = f"SELECT {_COLUMNS} FROM vlkb.jobs WHERE {' AND '.join(where)} ORDER BY creation_time DESC"
        if last is not None:
            query += " LIMIT %s"
            args.append(last)
        return list(reversed(await self._many(query, args)))

    async def transition(self, job_id: str, from_phases: Sequence[str], to: str, *, start: bool = False,
                         end: bool = False, worker: str | None = None, error_type: str | None = None,
                         error_message: str | None = None, error_code: int | None = None) -> JobRow | None:
        """Compare-and-set the phase: the new row if the job was in one of ``from_phases``, else None."""
        sets = ["phase = %s"]
        args: list[Any] = [to]
        if start:
            sets += ["start_time = now()", "heartbeat = now()", "worker = %s"]
            args.append(worker)
        if end:
            sets.append("end_time = now()")
        if error_type is not None:
            sets += ["error_type = %s", "error_message = %s", "error_code = %s"]
            args += [error_type, error_message, error_code]
        args += [job_id, list(from_phases)]
        return await self._one(
            f"UPDATE vlkb.jobs SET {', '.join(sets)} WHERE job_id = %s AND phase = ANY(%s) RETURNING {_COLUMNS}",
            args,
        )

    async def claim_next(self, kinds: Sequence[str], worker: str, *, per_owner: int = 0) -> JobRow | None:
        """Move the oldest QUEUED job of ``kinds`` to EXECUTING for ``worker``; None if there is none.

        With ``per_owner`` > 0, a job whose owner already has that many jobs EXECUTING is passed
        over and stays QUEUED (anonymous jobs count as one owner). Claims are serialised by an
        advisory lock taken in its own statement, so the count is read after any claim that ran
        before (READ COMMITTED takes a new snapshot per statement) and the limit is exact.
        """
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK,))
            async with conn.cursor(row_factory=class_row(JobRow)) as cur:
                await cur.execute(
                    f"""UPDATE vlkb.jobs SET phase = 'EXECUTING', start_time = now(), heartbeat = now(),
                               worker = %s, runs = runs + 1
                        WHERE job_id = (
                            SELECT j.job_id FROM vlkb.jobs j
                            WHERE j.phase = 'QUEUED' AND j.kind = ANY(%s)
                              AND (%s <= 0 OR (SELECT count(*) FROM vlkb.jobs e WHERE e.phase = 'EXECUTING'
                                               AND e.owner IS NOT DISTINCT FROM j.owner) < %s)
                            ORDER BY j.creation_time LIMIT 1)
                          AND phase = 'QUEUED'
                        RETURNING {_COLUMNS}""",
                    (worker, list(kinds), per_owner, per_owner),
                )
                return await cur.fetchone()

    async def complete(self, job_id: str, results: Sequence[ResultRow]) -> JobRow | None:
        """EXECUTING → COMPLETED with ``results``, in one transaction; None if the job was no longer
        EXECUTING (aborted or deleted meanwhile), and then no result is recorded."""
        async with self.pool.connection() as conn, conn.transaction():
            async with conn.cursor(row_factory=class_row(JobRow)) as cur:
                await cur.execute(
                    f"UPDATE vlkb.jobs SET phase = 'COMPLETED', end_time = now() WHERE job_id = %s"
                    f" AND phase = 'EXECUTING' RETURNING {_COLUMNS}",
                    (job_id,),
                )
                row = await cur.fetchone()
            if row is not None and results:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO vlkb.job_results (job_id, result_id, location, mime_type, size)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        [(r.job_id, r.result_id, r.location, r.mime_type, r.size) for r in results],
                    )
            return row

    async def update(self, job_id: str, *, destruction: datetime | None = None,
                     execution_duration: int | None = None) -> JobRow | None:
        """Change the destruction time (any phase) or execution duration (while PENDING only)."""
        if destruction is not None:
            return await self._one(
                f"UPDATE vlkb.jobs SET destruction = %s WHERE job_id = %s RETURNING {_COLUMNS}",
                (destruction, job_id),
            )
        return await self._one(
            f"UPDATE vlkb.jobs SET execution_duration = %s WHERE job_id = %s AND phase = 'PENDING'"
            f" RETURNING {_COLUMNS}",
            (execution_duration, job_id),
        )

    async def update_parameters(self, job_id: str, parameters: dict[str, builtins.list[str]]) -> JobRow | None:
        """Replace the parameters of a PENDING job."""
        return await self._one(
            f"UPDATE vlkb.jobs SET parameters = %s WHERE job_id = %s AND phase = 'PENDING' RETURNING {_COLUMNS}",
            (Jsonb(parameters), job_id),
        )

    async def delete(self, job_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("DELETE FROM vlkb.jobs WHERE job_id = %s", (job_id,))
            return cur.rowcount > 0

    async def expired(self) -> builtins.list[str]:
        """Delete the jobs past their destruction time; their ids."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM vlkb.jobs WHERE destruction < now() RETURNING job_id"
            )
            return [r[0] for r in await cur.fetchall()]

    async def results(self, job_id: str) -> builtins.list[ResultRow]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(ResultRow)) as cur:
            await cur.execute(
                "SELECT job_id, result_id, location, mime_type, size FROM vlkb.job_results"
                " WHERE job_id = %s ORDER BY result_id",
                (job_id,),
            )
            return await cur.fetchall()

    async def executing(self) -> builtins.list[JobRow]:
        """Every EXECUTING job, whoever runs it (for the reaper)."""
        return await self._many(f"SELECT {_COLUMNS} FROM vlkb.jobs WHERE phase = 'EXECUTING'", ())

    async def phases(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The phase of each of ``job_ids`` that still exists (a deleted job is left out)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT job_id, phase FROM vlkb.jobs WHERE job_id = ANY(%s)", (list(job_ids),))
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def waiting(self, kinds: Sequence[str], older_than: float) -> int:
        """How many jobs of ``kinds`` were created more than ``older_than`` seconds ago and are
        still QUEUED (nobody claimed them: busy workers, or a lost wake-up)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM vlkb.jobs WHERE phase = 'QUEUED' AND kind = ANY(%s)"
                " AND creation_time < now() - make_interval(secs => %s)",
                (list(kinds), older_than),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def cancel_queries(self, job_id: str) -> int:
        """Cancel the statements running for ``job_id`` on any machine: runners connect with
        ``application_name = vlkb-job-<id>`` (``RunContext.connect``). How many were signalled."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (f"vlkb-job-{job_id}",),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def beat(self, worker: str) -> None:
        """Mark ``worker``'s EXECUTING jobs and running parts (``db/parts.py``) as alive."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE vlkb.jobs SET heartbeat = now() WHERE worker = %s AND phase = 'EXECUTING'", (worker,)
            )
            await conn.execute(
                "UPDATE vlkb.job_parts SET heartbeat = now() WHERE worker = %s AND state = 'running'", (worker,)
            )


def set_progress_blocking(conn: psycopg.Connection, job_id: str, progress: str) -> None:
    """Record a running job's progress line (from the runner's thread, on its own connection)."""
    conn.execute("UPDATE vlkb.jobs SET progress = %s WHERE job_id = %s AND phase = 'EXECUTING'", (progress, job_id))
    conn.commit()
