"""A source opened and read ahead in a worker thread, as an async iterator: what a response
streams from a file (a cutout's slab, a job's stored result).

Starlette's ``iterate_in_threadpool`` hops to a thread and back for every piece, and the event loop
waits while the next piece is read. On the 2-core machine of issue 16 each hop (a thread woken on
an idle core, then the loop woken) cost 0.05-0.8 ms, and the 7.6 MB cut of the 2 GiB cube (ten
pieces) spent more time between its pieces than reading and sending them. Here one worker thread
opens the source (a cutout: its plan), hands what the opening gave to the loop and goes on reading
the first pieces, so they are ready by the time the response starts; then it reads the next
pieces while the loop sends the last ones.

The thread reads at most ``depth`` pieces nobody has taken yet and then returns to the pool; the
next piece taken starts it again. So memory stays at ``depth`` pieces and a slow client holds no
thread while it reads (the default executor has a handful: holding one per download would stall
every other request's thread work).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

__all__ = ["ReadAhead", "read_ahead"]

R = TypeVar("R")
T = TypeVar("T")


class _End:
    """Marks the end of the pieces."""


@dataclass
class _Failure:
    """An exception the worker met, handed to the loop to raise there."""

    error: BaseException


class ReadAhead(Generic[R, T]):
    """``opener()`` run in a worker thread, then the pieces of the iterator it gave read ahead.

    ``await opened()`` gives the opener's result (or raises its error); :meth:`pieces` then gives
    the pieces. Whoever starts one either takes its pieces to the end, closes that iterator, or
    calls :meth:`close` (say, the caller turned out not to be allowed): the iterator is then
    closed in a thread, once no worker is reading it.
    """

    def __init__(self, opener: Callable[[], tuple[R, Iterator[T] | None]], depth: int = 2) -> None:
        self._loop = asyncio.get_running_loop()
        self._depth = depth
        self._opened: asyncio.Future[R] = self._loop.create_future()
        # an abandoned opening's error is not "never retrieved": the caller chose not to look
        self._opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._ready: asyncio.Queue[T | _End | _Failure] = asyncio.Queue()
        self._items: Iterator[T] | None = None
        # shared with the worker, read and changed under the lock:
        self._lock = threading.Lock()
        self._ahead = 0  # pieces read (or being read) that the loop has not taken yet
        self._running = True  # a worker is busy (never two: the iterator is not for concurrent use)
        self._finished = False  # the iterator has ended or failed, or there is none
        self._closed = False  # nobody will take more pieces: stop and close the iterator
        self._context = contextvars.copy_context()  # the request's log context, as asyncio.to_thread gives
        self._submit(lambda: self._open(opener))

    async def opened(self) -> R:
        """What the opener returned, once it has (its exception if it raised)."""
        return await asyncio.shield(self._opened)

    def close(self) -> None:
        """No piece will be taken: stop reading and close the iterator (in a thread)."""
        with self._lock:
            self._closed = True
            idle = not self._running and not self._finished
            self._finished = self._finished or idle  # the close below ends the iterator
        if idle and self._items is not None:
            self._submit(lambda: _close(self._items))

    async def pieces(self) -> AsyncGenerator[T, None]:
        """The pieces in order; closing this iterator early closes the source's."""
        try:
            while True:
                piece = await self._ready.get()
                if isinstance(piece, _End):
                    return
                if isinstance(piece, _Failure):
                    raise piece.error
                with self._lock:
                    self._ahead -= 1
                    again = not self._running and not self._finished
                    self._running = self._running or again
                if again:
                    self._submit(self._fill)
                yield piece
        finally:
            self.close()

    # -- in the worker thread ------------------------------------------------------------------

    def _submit(self, work: Callable[[], None]) -> None:
        self._loop.run_in_executor(None, self._context.run, work)

    def _hand_over(self, deliver: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed under a server shutting down
            self._loop.call_soon_threadsafe(deliver)

    def _succeed_opening(self, result: R) -> None:  # on the loop
        if not self._opened.done():
            self._opened.set_result(result)

    def _fail_opening(self, failure: _Failure) -> None:  # on the loop
        if not self._opened.done():
            self._opened.set_exception(failure.error)
        self._ready.put_nowait(failure)

    def _open(self, opener: Callable[[], tuple[R, Iterator[T] | None]]) -> None:
        try:
            result, items = opener()
        except BaseException as exc:  # raised again on the loop, by opened() (and by pieces())
            with self._lock:
                self._running, self._finished = False, True
            self._hand_over(partial(self._fail_opening, _Failure(exc)))
            return
        self._items = items
        self._hand_over(partial(self._succeed_opening, result))
        if items is None:
            with self._lock:
                self._running, self._finished = False, True
            self._hand_over(partial(self._ready.put_nowait, _End()))
            return
        self._fill()

    def _fill(self) -> None:
        assert self._items is not None
        while True:
            with self._lock:
                if self._closed or self._ahead >= self._depth:
                    self._running = False
                    closing = self._closed and not self._finished
                    self._finished = self._finished or closing
                    break
                self._ahead += 1
            try:
                piece: T | _End | _Failure = next(self._items)
            except StopIteration:
                piece = _End()
            except BaseException as exc:  # raised again on the loop, in the consumer
                piece = _Failure(exc)
            if isinstance(piece, _End | _Failure):
                with self._lock:
                    self._running, self._finished = False, True
                self._hand_over(partial(self._ready.put_nowait, piece))
                return
            self._hand_over(partial(self._ready.put_nowait, piece))
        if closing:
            _close(self._items)


async def read_ahead(items: Iterator[T], depth: int = 2) -> AsyncIterator[T]:
    """The pieces of an open iterator, read in a worker thread up to ``depth`` ahead of the consumer
    (from the first piece asked for: the response may be built outside the event loop).

    Closing the returned iterator early (a client that leaves) closes ``items`` in a thread, once
    no worker is reading it.
    """
    async with contextlib.aclosing(ReadAhead(lambda: (None, items), depth).pieces()) as pieces:
        async for piece in pieces:
            yield piece


def _close(items: Iterator[object] | None) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()
