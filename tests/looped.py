"""An ``AsyncConnection`` driven from synchronous tests on an event loop of its own.

It is what a job runner does (``vo.results.stream_select_blocking``): the one COPY driver,
``db.query.astream_copy``, run step by step from a thread with no event loop; here the connection
is kept, so a test can look at it after the stream (idle, usable, its backend's state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from db.query import CopyBatch, astream_copy

__all__ = ["Looped"]


class Looped:
    """One connection to ``url`` and the loop it runs on; close it when done (or use ``with``)."""

    def __init__(self, url: str, *, autocommit: bool = True) -> None:
        self.loop = asyncio.Runner()
        self.ac = self.loop.run(psycopg.AsyncConnection.connect(url, autocommit=autocommit))

    def __enter__(self) -> Looped:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def info(self) -> psycopg.ConnectionInfo:
        return self.ac.info

    @property
    def pgconn(self) -> psycopg.pq.abc.PGconn:
        return self.ac.pgconn

    def fetchone(self, query: str) -> Any:  # noqa: ANN401 - a row of any shape
        """The first row of ``query``."""

        async def run() -> Any:  # noqa: ANN401
            return await (await self.ac.execute(query)).fetchone()

        return self.loop.run(run())

    def stream(self, query: str, select_list: Sequence[str], **options: Any) -> Iterator[CopyBatch]:  # noqa: ANN401
        """``astream_copy`` on this connection, batch by batch; closing (or dropping) it closes the stream."""
        batches = astream_copy(self.ac, query, select_list, **options)
        try:
            while (batch := self.loop.run(anext(batches, None))) is not None:
                yield batch
        finally:
            self.loop.run(batches.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        self.loop.run(self.ac.close())
        self.loop.close()
