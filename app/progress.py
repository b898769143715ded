"""Progress bars for long CLI operations (the ingest of big batches), drawn on stderr with rich.

The bar is drawn only when stderr is a terminal and the batch is big enough to be worth
watching, so logs, pipes and CI output stay clean; the caller prints its summary either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["MIN_FILES", "file_progress"]

#: Batches smaller than this finish before a bar would help.
MIN_FILES = 50


@contextmanager
def file_progress(total: int, what: str, *, console: Console | None = None) -> Iterator[Callable[..., None]]:
    """A callback that advances a bar of ``total`` files (and counts skipped ones); a no-op when off."""
    console = console or Console(stderr=True)
    if total < MIN_FILES or not console.is_terminal:
        yield lambda *args: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[skipped]} skipped"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(what, total=total, skipped=0)
        skipped = 0

        def advance(_location: str, outcome: object, reason: str | None = None) -> None:
            nonlocal skipped
            skipped += reason is not None
            bar.update(task, advance=1, skipped=skipped)

        yield advance
