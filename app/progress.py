"""Progress bars for long CLI operations (the ingest of big batches), drawn on stderr with rich.

The bar is drawn only when stderr is a terminal and the batch is big enough to be worth
watching, so logs, pipes and CI output stay clean; the caller prints its summary either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["MIN_FILES", "MIN_ROWS", "file_progress", "row_progress"]

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


#: Loads smaller than this (rows) finish before a bar would help.
MIN_ROWS = 100_000


@contextmanager
def row_progress(what: str, *, console: Console | None = None) -> Iterator[tuple[Callable[[str, int], None],
                                                                                  Callable[[int], None]]]:
    """Callbacks for a row-counting bar: ``on_file(name, rows)`` grows the total, ``on_rows(n)`` advances it.

    Drawn only on a terminal and once the rows to load pass :data:`MIN_ROWS`.
    """
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield (lambda name, n: None), (lambda n: None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(what, total=0, visible=False)
        total = 0

        def on_file(_name: str, rows: int) -> None:
            nonlocal total
            total += rows
            bar.update(task, total=total, visible=total >= MIN_ROWS)

        def on_rows(n: int) -> None:
            bar.update(task, advance=n)

        yield on_file, on_rows
