"""Reading on behalf of a caller: the one entry every protocol goes through to reach data.

A :class:`Caller` is who is asking (a user name, None when anonymous, and their groups). Every
read made for a caller (TAP and SIA results through :mod:`vo.results`, dataset lookups for
DataLink, SODA, merges and jobs, the survey list, the legacy search, footprints) opens the
caller's session of :mod:`db.session`: read-only, as the query role, with the caller's groups,
where the row-level-security policies of ``db/sql/access.sql`` are the only definition of who
sees what. Nothing here, or in any module that uses it, filters rows on its own.

A dataset the caller may not read and a dataset that does not exist are the same thing to
everyone above this module: absent, and a :class:`~vo.errors.NotFoundError` where one is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from db import catalog
from db import datasets as dataset_store
from db.datasets import Dataset
from db.session import LOOKUP_TIMEOUT, caller_session, caller_session_blocking

__all__ = [
    "ANONYMOUS", "Caller", "Dataset", "dataset_by_key", "datasets", "datasets_blocking", "session",
    "session_blocking", "surveys",
]


@dataclass(frozen=True)
class Caller:
    """Who is asking: a user name (None: anonymous) and the groups whose surveys they may read."""

    user: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Caller()


def session(pool: AsyncConnectionPool, caller: Caller, *,
            timeout: float | None = None) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
    """A connection in ``caller``'s read-only session (rolled back at the end), for reads that
    need their own SQL (the legacy search, footprints); ``timeout`` in seconds (default: a lookup's)."""
    return caller_session(pool, caller.groups, user=caller.user, timeout=LOOKUP_TIMEOUT if timeout is None else timeout)


def session_blocking(conn: psycopg.Connection, caller: Caller) -> AbstractContextManager[psycopg.Connection]:
    """:func:`session` over a blocking connection the caller of this function owns (job runners)."""
    return caller_session_blocking(conn, caller.groups, user=caller.user)


async def datasets(pool: AsyncConnectionPool, ids: Iterable[str], caller: Caller) -> dict[str, Dataset]:
    """The datasets among ``ids`` (publisher DIDs) that exist and ``caller`` may read, by DID."""
    return await dataset_store.fetch_datasets(pool, ids, caller.groups, caller.user)  # one round trip


def datasets_blocking(conn: psycopg.Connection, ids: Iterable[str], caller: Caller) -> dict[str, Dataset]:
    """:func:`datasets` over a blocking connection (job runners, in threads)."""
    with session_blocking(conn, caller) as c:
        return dataset_store.find_datasets_blocking(c, ids)


async def dataset_by_key(pool: AsyncConnectionPool, key: str, caller: Caller) -> Dataset | None:
    """The dataset ``caller`` may read whose DID key (the part after ``?``) is ``key``; None if none."""
    async with session(pool, caller) as conn:
        return await dataset_store.dataset_by_key(conn, key)


async def surveys(pool: AsyncConnectionPool, caller: Caller, *, timeout: float = 5.0) -> list[dict]:
    """The surveys ``caller`` may read, with their dataset counts (the landing page)."""
    async with session(pool, caller, timeout=timeout) as conn:
        return await catalog.list_surveys(conn)
