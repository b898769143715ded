"""What becomes of a request's work when its client no longer wants the answer.

One pure ASGI middleware, outside every other one of ours:

- **Client gone.** A client that disconnects before its answer is complete has its work
  cancelled at once, whatever phase it is in: waiting for a database connection, running a
  query before the first rows (``vo.tap.run_sync`` primes the stream before the response
  starts, and Starlette only listens for a disconnect once streaming has begun), or
  streaming. Cancelling the task makes ``db/query.py`` cancel the backend's query, so an
  abandoned query does not run on to its ``statement_timeout``. The disconnect is logged as
  what it is (info), not as a failure. Requests that change a job (POST and the like on the
  UWS routes) run to their end: half a job change helps nobody.
- **HEAD.** RFC 9110 section 9.3.2: HEAD answers as GET would, with no content. The app sees
  a GET, its status and headers go out, its body does not, and work still streaming a body
  is cancelled.

Watching for the disconnect needs ``receive``: it is called only once the app has read the
whole request body (or at once when there is none), so the body still reaches the app.
After that point the server answers every ``receive`` with ``http.disconnect`` when the
client leaves, so the app and the watcher may both wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestLifecycle"]

log = structlog.get_logger("vlkb.requests")

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _bodyless(scope: Scope) -> bool:
    """Whether the request has no body (RFC 9112 section 6.3: no Transfer-Encoding, no or zero Content-Length)."""
    length = None
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return False
        if name == b"content-length":
            length = value.strip()
    return length in (None, b"0")


def _changes_a_job(scope: Scope) -> bool:
    """Whether the routed request changes a UWS job (its router is tagged ``UWS (...)``, app/routers/uws.py)."""
    if scope["method"] in _SAFE:
        return False
    route = scope.get("route")
    return any(str(tag).startswith("UWS") for tag in getattr(route, "tags", None) or ())


class RequestLifecycle:
    """Cancels the work of a client that went away, and answers HEAD as GET without a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _Request(scope, receive, send).run(self.app)


class _Request:
    """One request's watch: its messages in, its messages out, and the task doing its work."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.head = scope["method"] == "HEAD"
        self.scope = {**scope, "method": "GET"} if self.head else scope
        self._receive = receive
        self._send = send
        self.body_read = asyncio.Event()
        self.first: Message | None = None
        self.started = False
        #: the last part of the answer has been sent
        self.complete = False
        #: the client left before the answer was complete
        self.gone = False
        #: why the work was cancelled by us ("disconnect" or "head"), if it was
        self.stopped: str | None = None
        self.work: asyncio.Task[None] | None = None

    async def run(self, app: ASGIApp) -> None:
        if _bodyless(self.scope):
            # complete with the headers: the server has it ready, and the watch can start now
            self.first = await self._receive()
            self._note(self.first)
        work = self.work = asyncio.ensure_future(app(self.scope, self.receive, self.send))
        watcher = asyncio.ensure_future(self._watch())
        try:
            await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.stopped is None or (current is not None and current.cancelling()):
                raise  # the server cancelled us (shutdown): not ours to swallow
            self._log_gone()
        except (ClientDisconnect, OSError):
            if not self.gone:
                raise
            self._log_gone()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _log_gone(self) -> None:
        if self.stopped == "head":
            return
        log.info("client disconnected", method=self.scope["method"], path=self.scope["path"],
                 phase="streaming" if self.started else "before the response")

    def _note(self, message: Message) -> None:
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.body_read.set()
        elif message["type"] == "http.disconnect" and not self.complete:
            self.gone = True

    async def receive(self) -> Message:
        """The app's ``receive``."""
        if self.first is not None:
            message, self.first = self.first, None
            return message
        message = await self._receive()
        self._note(message)
        return message

    async def send(self, message: Message) -> None:
        """The app's ``send``: for HEAD, the status and headers only."""
        if self.complete:
            return  # HEAD: the answer is out; the rest of the body is dropped
        more = False
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body":
            more = bool(message.get("more_body", False))
            if self.head:
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            self.complete = not more or self.head
        await self._send(message)
        if self.head and more:
            self._stop("head")

    def _stop(self, why: str) -> None:
        if self.work is not None and not self.work.done() and self.stopped is None:
            self.stopped = why
            self.work.cancel()

    async def _watch(self) -> None:
        """Wait for the client to leave once the body is read; cancel the work if the answer is not complete."""
        await self.body_read.wait()
        while not self.complete:
            message = await self._receive()
            if message["type"] != "http.disconnect":
                continue
            if not self.complete:
                self.gone = True
                if not _changes_a_job(self.scope):
                    self._stop("disconnect")
            return
