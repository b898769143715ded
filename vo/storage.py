"""Where dataset files live: a local path or any fsspec URL (``s3://``, ``https://``, ``memory://`` ...).

A *location* is the string stored in ``vlkb.datasets.path``: an absolute local path, or a URL
whose protocol fsspec knows. :func:`location` normalises what an operator typed (relative
paths become absolute, ``file://`` URLs become paths), so the server finds the file whatever
directory the ingest ran in. Local files are opened with plain ``open`` (no fsspec layer: the
ingest opens thousands); remote ones through fsspec with a small read-ahead block, so a header
read costs one or two ranged requests and never the whole file. Credentials of remote stores
come from fsspec's own configuration (``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables,
``~/.config/fsspec/``) and each backend's usual sources (e.g. ``AWS_*`` for s3fs).

No HTTP framework and no SQL here.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "BLOCK_SIZE",
    "FileInfo",
    "exists",
    "expand",
    "file_info",
    "is_remote",
    "iter_chunks",
    "location",
    "name_of",
    "open_binary",
    "open_fits",
]

#: Read-ahead of remote files: eight FITS blocks, so a typical header is one ranged request.
BLOCK_SIZE = 8 * 2880
_CHUNK = 1 << 20


def is_remote(loc: str | os.PathLike[str]) -> bool:
    """Whether ``loc`` is a URL other than ``file://`` (then fsspec opens it)."""
    text = os.fspath(loc)
    return "://" in text and not text.startswith("file://")


def location(text: str | os.PathLike[str]) -> str:
    """The stored form of what an operator gave: an absolute path, or the URL unchanged."""
    text = os.fspath(text)
    if text.startswith("file://"):
        text = unquote(urlsplit(text).path)
    if is_remote(text):
        return text
    return str(Path(text).expanduser().resolve())


def name_of(loc: str) -> str:
    """The file name of a location (the last path segment), e.g. for the DID."""
    return Path(urlsplit(loc).path if is_remote(loc) else loc).name


def _fs(loc: str) -> tuple[Any, str]:
    import fsspec  # imported on first remote use: local ingest never pays for it

    return fsspec.core.url_to_fs(loc)


@dataclass(frozen=True)
class FileInfo:
    """Size in bytes and a version tag (mtime, ETag ...) that changes when the file does."""

    size: int
    version: str


def file_info(loc: str) -> FileInfo:
    """Size and version of the file at ``loc``; ``FileNotFoundError``/``OSError`` when absent."""
    if not is_remote(loc):
        st = os.stat(loc)
        return FileInfo(st.st_size, str(st.st_mtime_ns))
    fs, path = _fs(loc)
    info = fs.info(path)
    if info.get("type") == "directory":
        raise IsADirectoryError(loc)
    version = next((str(info[k]) for k in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created")
                    if info.get(k) is not None), "")
    return FileInfo(int(info["size"]), version)


def exists(loc: str | os.PathLike[str]) -> bool:
    """Whether a data file is at ``loc`` (a local file, or an object fsspec can see)."""
    loc = location(loc)
    if not is_remote(loc):
        return Path(loc).is_file()
    try:
        fs, path = _fs(loc)
        return bool(fs.isfile(path))
    except (OSError, ValueError, ImportError):
        return False


def open_binary(loc: str, size: int | None = None) -> IO[bytes]:
    """A seekable binary file; remote ones read ahead :data:`BLOCK_SIZE` bytes per request."""
    if not is_remote(loc):
        return open(loc, "rb")  # noqa: SIM115 - the caller closes it
    fs, path = _fs(loc)
    kwargs: dict[str, Any] = {"block_size": BLOCK_SIZE, "cache_type": "readahead"}
    if size is not None:
        kwargs["size"] = size  # saves a HEAD request where the backend accepts it
    try:
        return fs.open(path, "rb", **kwargs)
    except TypeError:  # a backend without the size argument
        kwargs.pop("size")
        return fs.open(path, "rb", **kwargs)


def open_fits(loc: str) -> Any:
    """``astropy.io.fits.open`` of ``loc``: memory-mapped when local, ranged fsspec reads when remote."""
    from astropy.io import fits

    if not is_remote(loc):
        return fits.open(loc, lazy_load_hdus=True)
    return fits.open(loc, lazy_load_hdus=True, use_fsspec=True,
                     fsspec_kwargs={"block_size": BLOCK_SIZE * 8, "cache_type": "readahead"})


def iter_chunks(loc: str, chunk: int = _CHUNK) -> Iterator[bytes]:
    """The file's bytes in chunks, for streaming a remote file to a client."""
    if is_remote(loc):
        fs, path = _fs(loc)
        f = fs.open(path, "rb", block_size=chunk)
    else:
        f = open(loc, "rb")  # noqa: SIM115 - closed below
    with f:
        while data := f.read(chunk):
            yield data


def expand(pattern: str) -> list[str]:
    """The locations a path, URL or glob pattern names, sorted; a plain name is returned as is."""
    if not glob.has_magic(pattern):
        return [location(pattern)]
    if not is_remote(pattern):
        local = pattern[len("file://"):] if pattern.startswith("file://") else pattern
        return [location(p) for p in sorted(glob.glob(os.path.expanduser(local)))]
    fs, path = _fs(pattern)
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(path))
