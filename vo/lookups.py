"""Recent dataset lookups, kept per caller until the database announces a change: a repeated cut
of one dataset costs no database round trip.

A synchronous SODA cut looks its DID up for the caller (:func:`vo.caller.datasets`: the
row-level-security policies decide). That round trip is a millisecond or two of a cut that
otherwise takes a few (issue 16), and clients cut one dataset many times in a row: a script
taking stamps from one mosaic, the ViaLactea client scanning a cube. :class:`RecentLookups`
keeps the database's answer per (DID, user, groups). Who may read what is still decided only by
the database; this reuses its recent answer, and forgets every answer when it changes:

- a trigger announces each change of the tables a lookup reads (datasets published, changed or
  withdrawn, a survey's policy set) on :data:`db.datasets.ACCESS_CHANNEL`
  (``db/sql/access_notify.sql``), whichever process or tool made it; one connection per process
  listens, and a notification empties the cache;
- answers are kept only while that listener is connected (a change made while it was down
  would be missed) and the triggers exist (a database not migrated since they were added keeps
  nothing, and says so in the log), and a lookup that was under way when a change arrived is not
  kept (it may have read the rows from before);
- each answer is used for at most ``ttl`` seconds, the bound should a notification ever be lost.

Only found datasets are kept: a new dataset is seen at once, and unknown DIDs cannot fill the
cache. Each process keeps its own, bounded by ``max_entries`` (the least recently used go first).
A file that is gone is a 404 at once whatever is kept: the cut checks the file.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import psycopg
import structlog

from db.datasets import ACCESS_CHANNEL, access_announced
from db.listen import listen, stop
from vo.caller import Caller, Dataset

__all__ = ["RecentLookups"]

log = structlog.get_logger("vlkb.lookups")

_Key = tuple[str, str | None, tuple[str, ...]]


class RecentLookups:
    """The datasets found for callers lately: kept while nothing changed, at most ``ttl`` seconds.

    ``conninfo``: the database whose announcements are listened to (:meth:`start`); nothing is
    kept until the listener is connected. None: no listener, answers kept ``ttl`` seconds (tests
    of this class).
    """

    def __init__(self, ttl: float, *, conninfo: str | None = None, max_entries: int = 4096,
                 retry: float = 1.0) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._conninfo = conninfo
        self._retry = retry
        self._found: OrderedDict[_Key, tuple[float, Dataset]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        #: whether changes are being heard now (answers are kept only then)
        self.listening = conninfo is None
        #: counts the times everything kept was forgotten: a lookup started under another is not kept
        self.generation = 0

    @staticmethod
    def _key(did: str, caller: Caller) -> _Key:
        return did, caller.user, tuple(sorted(set(caller.groups)))

    def get(self, did: str, caller: Caller) -> Dataset | None:
        """The dataset found for ``caller`` under ``did``, if kept and fresh; else None."""
        if not self.listening:
            return None
        key = self._key(did, caller)
        hit = self._found.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            del self._found[key]
            return None
        self._found.move_to_end(key)
        return hit[1]

    def put(self, ds: Dataset, caller: Caller, generation: int) -> None:
        """Keep ``ds``, found for ``caller`` by a lookup that started at ``generation`` (the value
        of :attr:`generation` then): dropped if a change was heard since."""
        if self.ttl <= 0 or not self.listening or generation != self.generation:
            return
        key = self._key(ds.publisher_did, caller)
        self._found[key] = (time.monotonic() + self.ttl, ds)
        self._found.move_to_end(key)
        while len(self._found) > self.max_entries:
            self._found.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer, and the answers of lookups under way."""
        self._found.clear()
        self.generation += 1

    async def start(self) -> None:
        """Start listening for changes (no-op without ``conninfo`` or with ``ttl`` 0)."""
        if self._conninfo is not None and self.ttl > 0 and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="vlkb-access-listen")

    async def _listen(self) -> None:
        assert self._conninfo is not None
        await listen(self._conninfo, ACCESS_CHANNEL, name="vlkb-access-listen", heard=lambda _: self.clear(),
                     up=self._up, down=self._down, ready=self._announced, retry=self._retry)

    async def _announced(self, conn: psycopg.AsyncConnection) -> bool:
        if await access_announced(conn):
            return True
        log.warning("the database does not announce changes of access (run `vlkb db migrate`): SODA cuts look "
                    "their dataset up every time")
        return False

    def _up(self) -> None:
        self.clear()  # what changed while nobody listened
        self.listening = True

    def _down(self) -> None:
        self.listening = False
        self.clear()

    async def close(self) -> None:
        """Stop listening (shutdown)."""
        await stop(self._task)
        self._task = None
