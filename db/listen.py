"""Listening on a PostgreSQL notification channel from one connection, reconnecting when it is lost.

Three things in a service process hear the database this way: UWS ``WAIT`` (a job's phase
changed, ``vo/uws/phase_watch.py``), the local executor (a runner queued parts,
``vo/uws/executor.py``) and the recent dataset lookups (access changed, ``vo/lookups.py``).
Each is told when the connection is up (changes made while it was down were not heard: look
again), of each notification's payload, and when the connection is lost (fall back to what
works without it) before the next attempt, ``retry`` seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import psycopg
import structlog

__all__ = ["listen", "stop"]

log = structlog.get_logger("vlkb.listen")


def _nothing() -> None:
    return None


async def listen(conninfo: str, channel: str, *, name: str, heard: Callable[[str], None],
                 up: Callable[[], None] = _nothing, down: Callable[[], None] = _nothing,
                 ready: Callable[[psycopg.AsyncConnection], Awaitable[bool]] | None = None,
                 retry: float = 1.0) -> None:
    """LISTEN on ``channel`` until cancelled (``name``: the connection's application_name).

    ``ready``: asked on each new connection whether the announcements can be trusted (e.g. the
    triggers that send them exist); when it says no, notifications are still passed on but ``up``
    is not called.
    """
    while True:
        connected = False
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True,
                                                             application_name=name) as conn:
                await conn.execute(f"LISTEN {channel}")
                if ready is None or await ready(conn):
                    connected = True
                    up()
                async for note in conn.notifies():
                    heard(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("listener lost", channel=channel, error=str(exc))
        finally:
            if connected:
                down()
        await asyncio.sleep(retry)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel a :func:`listen` task and wait for it to end (shutdown); None: nothing to stop."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
