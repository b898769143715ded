"""Hooks through which the core reports the work it did: rows encoded, bytes fetched from object storage.

The core must not know about Prometheus or HTTP, and the service wants counters of that work
(app/metrics.py). So ``vo`` calls :func:`report` with a fixed event name and an amount, and
whoever cares subscribes with :func:`subscribe` once per process. With no subscriber a report
costs one empty loop. Events:

- ``rows``: rows encoded into a result (TAP sync and async, SIA, ViaLactea answers), by
  ``vo.votable.writers.ResultWriter``;
- ``storage_fetched`` / ``storage_wanted``: bytes fetched from a remote store by
  :func:`vo.storage.read_ranges` and the bytes its caller asked for (a cutout's slab).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Subscriber", "report", "subscribe"]

#: called with (event, amount)
Subscriber = Callable[[str, int], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Call ``subscriber(event, amount)`` on every report of this process (once, however often subscribed)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def report(event: str, amount: int) -> None:
    """Tell the subscribers that ``amount`` of ``event`` happened."""
    for subscriber in _subscribers:
        subscriber(event, amount)
