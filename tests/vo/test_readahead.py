"""vo.readahead: a blocking iterator read in a worker thread, ahead of an async consumer."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from vo.readahead import ReadAhead, read_ahead


class Source:
    """An iterator of numbered pieces that records how far it was read, by which thread, and closing."""

    def __init__(self, n: int | None, fail_at: int | None = None, delay: float = 0.0) -> None:
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.read = 0
        self.closed = threading.Event()
        self.threads: set[int] = set()
        self.gen = self._gen()

    def _gen(self) -> Iterator[int]:
        try:
            i = 0
            while self.n is None or i < self.n:
                if i == self.fail_at:
                    raise ValueError(f"piece {i} is unreadable")
                time.sleep(self.delay)
                self.threads.add(threading.get_ident())
                self.read = i + 1
                yield i
                i += 1
        finally:
            self.closed.set()

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        return next(self.gen)

    def close(self) -> None:
        self.gen.close()
        self.closed.set()  # also when never started (a generator's finally then does not run)


def test_every_piece_in_order_read_off_the_event_loop() -> None:
    src = Source(200)

    async def run() -> list[int]:
        return [piece async for piece in read_ahead(src)]

    assert asyncio.run(run()) == list(range(200))
    assert threading.get_ident() not in src.threads


def test_never_more_than_depth_pieces_ahead_of_the_consumer() -> None:
    src = Source(None)

    async def run() -> list[int]:
        seen = []
        stream = read_ahead(src, depth=3)
        for taken in range(1, 6):
            seen.append(await anext(stream))
            await asyncio.sleep(0.05)  # time enough for an unbounded reader to run far ahead
            assert src.read <= taken + 3
        await stream.aclose()
        return seen

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]
    assert src.read == 8  # it did read ahead, up to the bound


def test_an_error_of_the_iterator_is_raised_after_the_pieces_before_it() -> None:
    src = Source(10, fail_at=4)

    async def run() -> list[int]:
        got = []
        with pytest.raises(ValueError, match="piece 4 is unreadable"):
            async for piece in read_ahead(src):
                got.append(piece)
        return got

    assert asyncio.run(run()) == [0, 1, 2, 3]


@pytest.mark.parametrize("reading", [False, True], ids=["idle reader", "busy reader"])
def test_a_consumer_that_leaves_early_closes_the_iterator(reading: bool) -> None:
    src = Source(None, delay=0.05 if reading else 0.0)

    async def run() -> None:
        stream = read_ahead(src)
        assert await anext(stream) == 0
        if not reading:
            await asyncio.sleep(0.05)  # the reader has stopped at its bound
        await stream.aclose()
        await asyncio.to_thread(src.closed.wait, 5)

    asyncio.run(run())
    assert src.closed.is_set()


def test_slow_consumers_hold_no_worker_thread() -> None:
    """Twenty open downloads whose clients have stopped reading; the default executor has at most
    32 threads (6 on 2 cores), and thread work of other requests must still run at once."""

    async def run() -> float:
        sources = [Source(None) for _ in range(20)]
        streams = [read_ahead(src) for src in sources]
        for stream in streams:
            assert await anext(stream) == 0
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 5) == 42
        waited = time.perf_counter() - t0
        for stream in streams:
            await stream.aclose()
        return waited

    assert asyncio.run(run()) < 1.0


def test_the_reader_sees_the_consumers_context() -> None:
    """Log lines of the iterator carry the request's context (structlog binds it in contextvars)."""
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")

    def pieces() -> Iterator[str]:
        for _ in range(3):
            yield request_id.get()

    async def run() -> list[str]:
        request_id.set("r-17")
        return [piece async for piece in read_ahead(pieces())]

    assert asyncio.run(run()) == ["r-17"] * 3


# -- opened in the worker: a cutout's plan, then its pieces --------------------------------------

def test_the_opening_result_comes_first_and_the_pieces_are_already_being_read() -> None:
    src = Source(5)
    opening_thread: list[int] = []

    def opener() -> tuple[str, Iterator[int]]:
        opening_thread.append(threading.get_ident())
        return "plan", src

    async def run() -> tuple[str, list[int]]:
        stream = ReadAhead(opener, depth=2)
        result = await stream.opened()
        await asyncio.sleep(0.05)
        assert src.read == 2  # read ahead before anyone asked, up to the bound
        return result, [piece async for piece in stream.pieces()]

    assert asyncio.run(run()) == ("plan", [0, 1, 2, 3, 4])
    assert opening_thread and opening_thread[0] != threading.get_ident()


def test_an_opening_that_fails_raises_from_opened_and_from_pieces() -> None:
    def opener() -> tuple[str, Iterator[int]]:
        raise LookupError("no such file")

    async def run() -> None:
        stream = ReadAhead(opener)
        with pytest.raises(LookupError, match="no such file"):
            await stream.opened()
        with pytest.raises(LookupError, match="no such file"):
            await anext(stream.pieces())

    asyncio.run(run())


def test_nothing_to_read_ends_at_once() -> None:
    async def run() -> list[int]:
        stream: ReadAhead[str, int] = ReadAhead(lambda: ("whole", None))
        assert await stream.opened() == "whole"
        return [piece async for piece in stream.pieces()]

    assert asyncio.run(run()) == []


@pytest.mark.parametrize("when", ["while opening", "after opening"])
def test_an_abandoned_reader_closes_its_iterator(when: str) -> None:
    """A caller the lookup turns away: what was opened for it is closed, nothing is read for long."""
    src = Source(None)
    go = threading.Event()

    def opener() -> tuple[str, Iterator[int]]:
        go.wait(5)
        return "plan", src

    async def run() -> None:
        stream = ReadAhead(opener)
        if when == "after opening":
            go.set()
            await stream.opened()
        stream.close()
        go.set()
        await asyncio.to_thread(src.closed.wait, 5)

    asyncio.run(run())
    assert src.closed.is_set() and src.read <= 2
