"""The ingest progress bar: drawn for big batches on a terminal, silent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from app.progress import MIN_FILES, file_progress
from vo.ingest.datasets import Outcome


def _run(total: int, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=100, color_system=None)
    with file_progress(total, "ingest Test", console=console) as advance:
        for i in range(total):
            skipped = i % 10 == 0
            advance(f"f{i}.fits", Outcome.SKIPPED if skipped else Outcome.INGESTED, "bad" if skipped else None)
    return out.getvalue()


def test_bar_on_a_terminal_for_big_batches() -> None:
    text = _run(MIN_FILES * 2, terminal=True)
    assert "ingest Test" in text and f"{MIN_FILES * 2}/{MIN_FILES * 2}" in text
    assert f"{MIN_FILES * 2 // 10} skipped" in text


def test_silent_when_small_or_not_a_terminal() -> None:
    assert _run(MIN_FILES - 1, terminal=True) == ""
    assert _run(MIN_FILES * 2, terminal=False) == ""
