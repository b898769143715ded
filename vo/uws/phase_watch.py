"""Waking UWS ``WAIT`` requests when their job changes phase, from PostgreSQL's notifications.

A trigger announces every change of a job's phase, and its deletion, on
:data:`db.jobs.PHASE_CHANNEL` (migration 0009), whichever process made it. One connection per
process listens; each waiting request registers its job id and wakes when that id is announced,
then reads the row again. While the listener is down (the database restarting), :attr:`listening`
is false and waiters poll the row instead, so a lost notification costs time, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from db.jobs import PHASE_CHANNEL
from db.listen import listen, stop

__all__ = ["PhaseWatch"]


class PhaseWatch:
    """One listener per process, started by the first waiter, and the waiters' events by job id."""

    def __init__(self, conninfo: str, *, retry: float = 1.0) -> None:
        self._conninfo = conninfo
        self._retry = retry
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        #: whether notifications are being received now (else waiters poll)
        self.listening = False

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``job_id`` changes phase or is deleted, while the block runs."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="vlkb-job-phase-listen")
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[job_id]

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def _listen(self) -> None:
        await listen(self._conninfo, PHASE_CHANNEL, name="vlkb-job-phase-listen", heard=self._heard,
                     up=self._up, down=self._down, retry=self._retry)

    def _heard(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def _up(self) -> None:
        self.listening = True
        self._wake_all()  # a change made while nobody listened is seen by re-reading

    def _down(self) -> None:
        self.listening = False
        self._wake_all()  # back to polling at once

    async def close(self) -> None:
        """Stop listening (shutdown)."""
        await stop(self._task)
        self._task = None
