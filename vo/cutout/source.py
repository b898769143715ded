"""Where a dataset's pixels come from: a local file (memory-mapped) or a URL (fsspec ranged reads).

A dataset path is either a local path or a URL that fsspec understands (``s3://``, ``gs://``,
``https://``, ``file://``, ``memory://``; the backend package, e.g. ``s3fs`` or ``aiohttp``,
must be installed). Three ways to read a slab, chosen per file, none of which loads the whole
array:

- a local uncompressed image: ``numpy`` memory map, only the slab's pages are touched;
- a URL: the header through ``astropy.io.fits`` over fsspec; then the byte ranges of the
  slab's rows through ``vo.storage.read_ranges``, which merges close ranges only while at most
  1.2 times the slab's bytes are fetched, and sends them together (the HTTP and object-store
  backends fetch them concurrently); a full-band cut of a cube reads its slab, not the file;
- a compressed file: tile-compressed HDUs (``.fits.fz``, ``CompImageHDU``) through
  ``.section``, which decompresses only the tiles the slab meets; whole-file gzip/bzip2
  (``.fits.gz``) through ``.section`` too, which streams through the compressed bytes up to
  the slab (gzip cannot seek) with flat memory.

Values come back raw (``do_not_scale_image_data``): ``BSCALE``/``BZERO``/``BLANK`` travel in the
cut's header, as in the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits

from vo import storage
from vo.storage import exists, is_remote, location, read_ranges

__all__ = ["DTYPES", "exists", "mapping", "open_fits", "read_raw"]

#: fsspec read-ahead per request (headers, compressed HDUs): small, since a slab is many short rows
_BLOCK = 64 << 10
DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@contextmanager
def open_fits(path: str | Path) -> Iterator[fits.HDUList]:
    """The file's HDUs, lazily, raw values; memory-mapped when local, over fsspec for a URL."""
    path = location(path)  # what vo.storage calls local (file:// URLs too) is memory-mapped
    with storage.open_fits(path, block_size=_BLOCK, cache_type="bytes", memmap=True,
                           do_not_scale_image_data=True) as hdul:
        yield hdul


def _memory_mapped(hdul: fits.HDUList, index: int) -> bool:
    hdu = hdul[index]
    info = hdul.fileinfo(index)
    file = info["file"] if info else None
    return (not isinstance(hdu, fits.CompImageHDU) and file is not None and file.memmap
            and not file.compression)


def _compressed(hdul: fits.HDUList, index: int) -> bool:
    info = hdul.fileinfo(index)
    return isinstance(hdul[index], fits.CompImageHDU) or bool(info and info["file"].compression)


def _ranged(path: str, hdul: fits.HDUList, index: int, slices: tuple[slice, ...]) -> np.ndarray:
    """The slab of an uncompressed HDU at a URL, from the byte ranges of its rows."""
    header = hdul[index].header
    dtype = np.dtype(DTYPES[int(header["BITPIX"])])
    full = tuple(int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1))
    strides = np.cumprod((1, *full[:0:-1]))[::-1]  # elements per step of each axis (numpy order)
    *outer, xs = slices
    out_shape = tuple(s.stop - s.start for s in slices)
    grids = np.meshgrid(*[np.arange(s.start, s.stop) for s in outer], indexing="ij")
    first = sum(g.ravel() * int(st) for g, st in zip(grids, strides[:-1], strict=True)) if outer else np.zeros(1, int)
    starts = hdul.fileinfo(index)["datLoc"] + (np.asarray(first, dtype=np.int64) + xs.start) * dtype.itemsize
    length = (xs.stop - xs.start) * dtype.itemsize
    # the rows' byte ranges, merged within vo.storage's over-read budget (and counted there)
    buf = np.frombuffer(read_ranges(path, starts, starts + length), dtype=np.uint8)
    rows = buf.reshape(len(starts), length)
    return rows.view(dtype).reshape(out_shape)


@lru_cache(maxsize=64)
def mapping(path: str, version: tuple[int, int], offset: int, dtype: str, shape: tuple[int, ...]) -> np.memmap:
    """A read-only memory map of a local HDU's data, kept across requests.

    Hand-written rather than ``hdul[i].data`` for speed: a new mapping per cut costs a page
    fault for every row of the slab (a 0.1 degree cut of a cube touches tens of thousands of
    pages) plus astropy's set-up of the data attribute, which together took longer than
    copying the slab. A kept mapping faults each page once per process. The pages are the
    kernel's page cache (shared, reclaimable), not the service's own memory. ``version``
    (size, mtime) makes a replaced file a new entry.
    """
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


def _local_slab(path: str, hdul: fits.HDUList, index: int, slices: tuple[slice, ...]) -> np.ndarray:
    header = hdul[index].header
    shape = tuple(int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1))
    st = Path(path).stat()
    mapped = mapping(path, (st.st_size, st.st_mtime_ns), int(hdul.fileinfo(index)["datLoc"]),
                      DTYPES[int(header["BITPIX"])], shape)
    return mapped[slices]


def read_raw(hdul: fits.HDUList, index: int, slices: tuple[slice, ...], path: str | Path = "") -> np.ndarray:
    """The raw values of ``slices`` (numpy order) of HDU ``index`` of the file at ``path``; only
    the slab is read."""
    if _memory_mapped(hdul, index):
        if path and int(hdul[index].header["BITPIX"]) in DTYPES:
            return _local_slab(str(location(path)), hdul, index, slices)
        return hdul[index].data[slices]
    if path and is_remote(location(path)) and not _compressed(hdul, index):
        return _ranged(str(path), hdul, index, slices)
    return hdul[index].section[slices]
