"""numpy building blocks of the binary transcoder: unaligned reads, index ranges, and the
variable-length content of a column (text as UTF-16, timestamps as text, double arrays).

Content is written either left-aligned into a padded (rows, width) region (``fill``) or
straight into the output at per-row offsets (``write``); see ``vo/votable/binary.py``.
"""

from __future__ import annotations

import struct

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

__all__ = ["Doubles", "Rows", "Text", "Var", "be32", "i16", "i32", "non_ascii_rows", "parse_float8_array",
           "ranges", "windows"]


def i32(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Big-endian int32 at each of ``pos`` (unaligned)."""
    b = buf
    return (
        (b[pos].astype(np.int32) << 24) | (b[pos + 1].astype(np.int32) << 16)
        | (b[pos + 2].astype(np.int32) << 8) | b[pos + 3].astype(np.int32)
    )


def i16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return ((buf[pos].astype(np.int16) << 8) | buf[pos + 1].astype(np.int16)).astype(np.int16)


def ranges(starts: np.ndarray, lengths: np.ndarray, step: int = 1) -> np.ndarray:
    """Concatenated ``starts[i] + step * arange(lengths[i])``."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - step * before, lengths) + step * np.arange(total, dtype=np.int64)


def windows(arr: np.ndarray, width: int, writeable: bool = False) -> np.ndarray:
    """``w[i] == arr[i:i+width]`` for every i, without copying."""
    if writeable:
        return as_strided(arr, shape=(len(arr) - width + 1, width), strides=(1, 1), writeable=True)
    return sliding_window_view(arr, width)


def be32(values: np.ndarray) -> np.ndarray:
    """(N, 4) bytes of ``values`` as big-endian int32."""
    return values.astype(">i4").view(np.uint8).reshape(-1, 4)


class Var:
    """Variable-length content of one column in the output rows.

    ``sizes[i]`` is the number of bytes of row ``i`` and ``width`` their maximum. Content is
    written either left-aligned into a padded (rows, width) region (:meth:`fill`, bytes past
    ``sizes[i]`` may be garbage) or straight into the output at per-row offsets (:meth:`write`).
    Rows in ``extra`` (row -> encoded bytes) are written from Python.
    """

    def __init__(self, sizes: np.ndarray, extra: dict[int, bytes]) -> None:
        self.sizes = sizes
        self.extra = extra
        for row, enc in extra.items():
            sizes[row] = len(enc)
        self.width = int(sizes.max()) if len(sizes) else 0

    def fill(self, region: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, out: np.ndarray, dst: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra_rows(self, region: np.ndarray | None, out: np.ndarray | None = None,
                    dst: np.ndarray | None = None) -> None:
        for row, enc in self.extra.items():
            data = np.frombuffer(enc, np.uint8)
            if region is not None:
                region[row, : len(enc)] = data
            else:
                assert out is not None and dst is not None
                out[dst[row] : dst[row] + len(enc)] = data

    def _plain(self, count: np.ndarray) -> np.ndarray:
        if not self.extra:
            return count
        count = count.copy()
        count[list(self.extra)] = 0
        return count


class Text(Var):
    """ASCII text at ``buf[off[i] : off[i] + count[i]]`` as UTF-16 (a zero byte before each byte),
    or as the bytes themselves when ``step`` is 1 (VOTable ``char``)."""

    def __init__(self, buf: np.ndarray, off: np.ndarray, count: np.ndarray, extra: dict[int, bytes],
                 block: np.ndarray | None = None, step: int = 2) -> None:
        super().__init__(count * step, extra)
        self.buf, self.off, self.count, self.block, self.step = buf, off, count, block, step

    def fill(self, region: np.ndarray) -> None:
        step = self.step
        n = self.width // step
        if n:
            if step == 2:
                region[:, 0::2] = 0
            # reading n bytes from each start runs into the next fields: garbage past the size
            if self.block is not None and self.block.shape[1] >= n:
                region[:, step - 1 :: step] = self.block[:, :n]
            else:
                region[:, step - 1 :: step] = windows(self.buf, n)[np.minimum(self.off, len(self.buf) - n)]
        self._extra_rows(region)

    def write(self, out: np.ndarray, dst: np.ndarray) -> None:
        count = self._plain(self.count)
        # UTF-16: each ASCII byte lands after a zero byte already in ``out``
        idx = ranges(dst + self.step - 1, count, self.step)
        if len(idx):
            out[idx] = self.buf[ranges(self.off, count)]
        self._extra_rows(None, out, dst)


class Rows(Var):
    """Row ``i`` gets the first ``sizes[i]`` bytes of ``block[i]`` (a (rows, width) array)."""

    def __init__(self, block: np.ndarray, sizes: np.ndarray) -> None:
        super().__init__(sizes, {})
        self.block = block

    def fill(self, region: np.ndarray) -> None:
        region[:] = self.block[:, : region.shape[1]]

    def write(self, out: np.ndarray, dst: np.ndarray) -> None:
        width = self.block.shape[1]
        idx = ranges(dst, self.sizes)
        if len(idx):
            out[idx] = self.block.reshape(-1)[ranges(np.arange(len(dst), dtype=np.int64) * width, self.sizes)]


class Doubles(Var):
    """Row ``i`` gets ``count[i]`` 8-byte values read at ``first[i] + 12 * k`` (array elements)."""

    def __init__(self, buf: np.ndarray, first: np.ndarray, count: np.ndarray, extra: dict[int, bytes]) -> None:
        super().__init__(count * 8, extra)
        self.buf, self.first, self.count = buf, first, count

    def fill(self, region: np.ndarray) -> None:
        n = self.width // 8
        if n:
            picks = np.minimum(self.first[:, None] + 12 * np.arange(n), len(self.buf) - 8)
            region[:, : 8 * n] = windows(self.buf, 8)[picks].reshape(len(self.first), 8 * n)
        self._extra_rows(region)

    def write(self, out: np.ndarray, dst: np.ndarray) -> None:
        count = self._plain(self.count)
        if count.any():
            vals = windows(self.buf, 8)[ranges(self.first, count, 12)]
            windows(out, 8, writeable=True)[ranges(dst, count, 8)] = vals
        self._extra_rows(None, out, dst)


def non_ascii_rows(buf: np.ndarray, off: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows whose text has a byte >= 0x80, the (rows, longest) block of text read to find them,
    or None when the text is too long to read padded)."""
    longest = int(length.max()) if len(length) else 0
    if longest == 0:
        return np.empty(0, np.int64), None
    if longest <= 64 and int(off.max()) + longest <= len(buf):
        block = windows(buf, longest)[off]
        high = block >= 0x80
        rows = np.flatnonzero(high.any(axis=1))
        if len(rows):  # bytes past each text belong to the next fields: look again at these rows
            rows = rows[(high[rows] & (np.arange(longest) < length[rows, None])).any(axis=1)]
        return rows, block
    content = buf[ranges(off, length)]
    if not len(content) or content.max() < 0x80:
        return np.empty(0, np.int64), None
    rows = np.unique(np.searchsorted(np.cumsum(length), np.flatnonzero(content >= 0x80), side="right"))
    return rows, None


def parse_float8_array(data: bytes) -> list[float]:
    """Elements of a float8[] in PostgreSQL's binary array format, row-major, NULL -> NaN."""
    ndim, _flags, _oid = struct.unpack_from(">iii", data, 0)
    pos = 12 + 8 * ndim
    total = 1
    for d in range(ndim):
        total *= struct.unpack_from(">i", data, 12 + 8 * d)[0]
    if ndim == 0:
        return []
    values = []
    for _ in range(total):
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size < 0:
            values.append(float("nan"))
        else:
            values.append(struct.unpack_from(">d", data, pos)[0])
            pos += size
    return values
