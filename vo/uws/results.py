"""The results store: one directory per job, ``<root>/<job_id>/<result_id>``.

A small class so object storage (fsspec) can replace it later; runners write through
:meth:`ResultStore.writer`, which renames a complete file into place, so a reader never sees
half a result.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["ResultStore"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _check(name: str) -> str:
    if not _SAFE.match(name) or name in (".", ".."):
        raise ValueError(f"unsafe result path component {name!r}")
    return name


class ResultStore:
    """Job results as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, job_id: str, result_id: str) -> str:
        """The store-relative location recorded in ``vlkb.job_results``."""
        return f"{_check(job_id)}/{_check(result_id)}"

    def path(self, location: str) -> Path:
        job_id, result_id = location.split("/", 1)
        return self.root / _check(job_id) / _check(result_id)

    @contextmanager
    def writer(self, job_id: str, result_id: str) -> Iterator[BinaryIO]:
        """A binary file to write the result into; it appears under its name once complete."""
        final = self.path(self.location(job_id, result_id))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".part")
        try:
            with open(tmp, "wb") as out:
                yield out
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def size(self, location: str) -> int:
        return self.path(location).stat().st_size

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.root / _check(job_id), ignore_errors=True)
