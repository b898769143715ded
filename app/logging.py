"""structlog set-up: console lines for people, JSON lines for log shippers.

Configured once by ``create_app`` or the CLI; events are short fixed phrases with key-value
data, and request handlers bind request_id, path and user.

Logging never blocks serving: a log call only puts the record on a queue, and one listener
thread renders and writes it (a traceback rendered on the event loop, or a stalled stderr
pipe, would stop every request meanwhile). Tracebacks are rendered plainly, once: structlog's
console renderer would otherwise use rich with every frame's locals, which took seconds per
traceback, and a failure our handler already logged is not logged again by the server.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import queue
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

__all__ = ["configure_logging", "mark_logged"]

#: the attribute set on an exception whose traceback is in the log already
_LOGGED = "_vlkb_logged"

_listener: logging.handlers.QueueListener | None = None


def mark_logged(exc: BaseException) -> None:
    """Note that ``exc`` has been logged with its traceback, so the server does not log it again."""
    with contextlib.suppress(AttributeError):  # exceptions with __slots__: logged twice at worst
        setattr(exc, _LOGGED, True)


class _NotTwice(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" record for a failure already logged: Starlette
    re-raises an exception after its handler answered 500, and uvicorn then logs it again."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and getattr(exc, _LOGGED, False))


class _QueueHandler(logging.handlers.QueueHandler):
    """Puts records on the queue as they are: formatting is the listener thread's work.

    The standard ``prepare`` formats the record in the caller's thread (the event loop);
    this one only captures the structlog context variables, which the listener thread
    cannot see, for records from stdlib loggers (uvicorn, libraries).
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not isinstance(record.msg, dict):  # structlog records carry their context already
            record.vlkb_context = structlog.contextvars.get_contextvars()
        return record


def _record_context(logger: Any, name: str, event: EventDict) -> EventDict:
    """Merge the context captured by :class:`_QueueHandler` into a stdlib record's event."""
    record = event.get("_record")
    context = getattr(record, "vlkb_context", None)
    if context:
        return {**context, **event}
    return event


def _stop_listener() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()  # writes what is still queued
        _listener = None


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Route stdlib and structlog records through one renderer at ``level``, rendered and written
    by a listener thread."""
    global _listener
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Processor]
    if json:
        # the traceback as one plain string field, not the exception's repr
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    output = logging.StreamHandler(sys.stderr)
    output.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_record_context, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    _stop_listener()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _QueueHandler(records)
    handler.addFilter(_NotTwice())
    _listener = logging.handlers.QueueListener(records, output)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


atexit.register(_stop_listener)
