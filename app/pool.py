"""The database pool of a running service, which tells "busy" from "unavailable".

Requests wait for a connection in a bounded queue (``VLKB_DB_POOL_QUEUE`` waiting at most,
each for at most ``VLKB_DB_POOL_WAIT`` seconds). Only past that bound does a request fail,
and then as :class:`BusyError`: a 503 with ``Retry-After`` that says the service is busy. A
wait that runs out while connections are missing (the database does not accept new ones)
is an outage and says "unavailable". psycopg_pool raises ``PoolTimeout`` in both cases, so
the pool counts the connections it has handed out to tell them apart.

Both are :class:`vo.errors.TransientError` s, not psycopg errors, so code that turns database
errors into its own messages lets them through unchanged to ``app/errors.py``.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from app.metrics import POOL_IN_USE, POOL_WAITING
from vo.errors import TransientError

__all__ = ["BusyError", "ServicePool", "UNAVAILABLE"]

#: the message of a request that could not reach the database
UNAVAILABLE = "the database is unavailable, try again later"


class BusyError(TransientError):
    """Every database connection is in use and the wait queue is full, or the wait ran out."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        #: seconds a client should wait before trying again (RFC 9110 section 10.2.3)
        self.retry_after = retry_after


class ServicePool(AsyncConnectionPool):
    """An ``AsyncConnectionPool`` whose waits end in :class:`BusyError` or an "unavailable"
    :class:`TransientError` instead of ``PoolTimeout`` / ``TooManyRequests``.

    ``retry_after`` is what a busy answer advises.
    """

    def __init__(self, conninfo: str, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(conninfo, **kwargs)
        self.retry_after = retry_after
        #: connections handed out and not yet returned
        self.in_use = 0

    @property
    def saturated(self) -> bool:
        """Whether every connection the pool may open is serving a request."""
        return self.in_use >= self.max_size

    def _busy(self, why: str) -> BusyError:
        return BusyError(f"the service is busy ({why}); retry in {self.retry_after} s", self.retry_after)

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[Any]:
        POOL_WAITING.inc()
        try:
            conn = await super().getconn(timeout)
        except TooManyRequests:
            raise self._busy(f"all {self.max_size} database connections are in use and "
                             f"{self.max_waiting} requests are waiting already") from None
        except PoolTimeout as exc:
            if self.saturated:
                raise self._busy(f"all {self.max_size} database connections stayed in use for "
                                 f"{self.timeout if timeout is None else timeout:g} s") from None
            raise TransientError(UNAVAILABLE) from exc
        finally:
            POOL_WAITING.dec()
        self.in_use += 1
        POOL_IN_USE.inc()
        return conn

    async def putconn(self, conn: AsyncConnection[Any]) -> None:
        self.in_use -= 1
        POOL_IN_USE.dec()
        await super().putconn(conn)
