"""The results store: one folder per job, ``<root>/<job_id>/<result_id>``, on any fsspec filesystem.

The root is a local directory (the default, under ``VLKB_HOME``) or an fsspec URL
(``s3://bucket/vlkb``, ``file:///srv/results``, ``memory://...`` in one process), so every
process that runs jobs (the service, ``vlkb worker`` anywhere) and the one that serves them
must reach the same root. Runners write through :meth:`ResultStore.writer`: bytes are streamed
to a temporary name while the query runs (constant memory; object stores upload in parts) and
moved to the final name only once complete, so nobody reads half a result under its name. The
job row (``vlkb.job_results``) is what publishes a result: it is written after the move, in
the same transaction that marks the job COMPLETED.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

__all__ = ["ResultStore"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
#: suffix of results still being written
PART = ".part"
_CHUNK = 1 << 20


def _check(name: str) -> str:
    if not _SAFE.match(name) or name in (".", "..") or name.endswith(PART):
        raise ValueError(f"unsafe result path component {name!r}")
    return name


class ResultStore:
    """Job results as files under ``root``: a local path or an fsspec URL."""

    def __init__(self, root: Path | str, **storage_options: object) -> None:
        text = str(root)
        self.url = text
        self.fs, path = fsspec.core.url_to_fs(text, **storage_options)
        self.root = path.rstrip("/")

    @property
    def local(self) -> bool:
        """True when results are plain files of this machine (served with sendfile and ranges)."""
        return isinstance(self.fs, LocalFileSystem)

    def location(self, job_id: str, result_id: str) -> str:
        """The store-relative location recorded in ``vlkb.job_results``."""
        return f"{_check(job_id)}/{_check(result_id)}"

    def _path(self, location: str) -> str:
        job_id, result_id = location.split("/", 1)
        return f"{self.root}/{_check(job_id)}/{_check(result_id)}"

    def path(self, location: str) -> Path:
        """The local file of ``location`` (local stores only)."""
        if not self.local:
            raise ValueError(f"results store {self.url} is not a local directory")
        return Path(self._path(location))

    @contextmanager
    def writer(self, job_id: str, result_id: str) -> Iterator[BinaryIO]:
        """A binary file to stream the result into; it appears under its name once complete.

        On an exception (including an abort) the partial file is removed and nothing appears.
        """
        final = self._path(self.location(job_id, result_id))
        tmp = f"{final}.{secrets.token_hex(4)}{PART}"
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as out:
                yield out
            # a rename on a local disk (atomic); a server-side copy on object stores
            self.fs.mv(tmp, final)
        finally:
            with suppress(FileNotFoundError):
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)

    def size(self, location: str) -> int:
        return int(self.fs.size(self._path(location)))

    def exists(self, location: str) -> bool:
        return bool(self.fs.exists(self._path(location)))

    def read(self, location: str, chunk: int = _CHUNK) -> Iterator[bytes]:
        """The bytes of a result, in chunks (for stores that are not local files)."""
        with self.fs.open(self._path(location), "rb") as f:
            while block := f.read(chunk):
                yield block

    def remove(self, location: str) -> None:
        """Remove one file (a part's output once read, ``vo/uws/parts.py``); gone already is fine."""
        with suppress(FileNotFoundError):
            self.fs.rm(self._path(location))

    def delete(self, job_id: str) -> None:
        """Remove every result of ``job_id`` (finished or still being written)."""
        folder = f"{self.root}/{_check(job_id)}"
        with suppress(FileNotFoundError):
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)
