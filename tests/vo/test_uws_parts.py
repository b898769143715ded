"""Job parts (``vo.uws.parts.fan_out``) from a runner's side, against the session's database."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from vo.uws.context import RunContext
from vo.uws.liveness import new_worker_id
from vo.uws.results import ResultStore

PART = "test.where"


def _where(payload: int, ctx: RunContext) -> tuple[int, int]:
    """The payload squared, and the thread it was computed in."""
    return payload * payload, threading.get_ident()


def _context(database, tmp_path: Path) -> RunContext:
    job, worker = f"parts-{tmp_path.name}", new_worker_id()
    with psycopg.connect(database.url) as conn:
        # EXECUTING under this process; nothing beats for it, so its heartbeat is set ahead (no reaper ends it)
        conn.execute("INSERT INTO vlkb.jobs (job_id, kind, phase, start_time, worker, heartbeat)"
                     " VALUES (%s, 'stamps', 'EXECUTING', now(), %s, now() + interval '1 day')", (job, worker))
    return RunContext(job, database.url, ResultStore(tmp_path / "results"), timeout=None,
                      parts={PART: _where}, worker_id=worker)


def _queued(database, job_id: str) -> int:
    with psycopg.connect(database.url) as conn:
        return conn.execute("SELECT count(*) FROM vlkb.job_parts WHERE job_id = %s", (job_id,)).fetchone()[0]


def test_a_lone_part_is_computed_by_the_runner(database, tmp_path: Path) -> None:
    """With one payload there is nothing to spread: the runner's own thread computes it, and no part
    is queued (no row, no pickled output)."""
    ctx = _context(database, tmp_path)
    assert list(ctx.fan_out(PART, iter([7]))) == [(49, threading.get_ident())]
    assert _queued(database, ctx.job_id) == 0
    assert not any((tmp_path / "results").rglob(".part-*"))
    assert list(ctx.fan_out(PART, [])) == []


def test_several_parts_are_queued_and_come_back_in_order(database, tmp_path: Path) -> None:
    """Two or more payloads become parts any process may claim (no other process knows this part
    function, so the runner claims them itself); results come back in order, outputs removed."""
    ctx = _context(database, tmp_path)
    assert [v for v, _ in ctx.fan_out(PART, iter([3, 1, 2]))] == [9, 1, 4]
    assert _queued(database, ctx.job_id) == 3
    assert not any((tmp_path / "results").rglob(".part-*"))
