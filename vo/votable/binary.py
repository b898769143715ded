"""PostgreSQL ``COPY ... (FORMAT BINARY)`` rows transcoded to VOTable BINARY2 / BINARY rows.

PostgreSQL sends each row as an int16 field count, then per field an int32 length (-1 for
NULL) and the value, big-endian like VOTable. A BINARY2 row (VOTable 1.4 section 5.5) is a
null-flag bitmap followed by the values; BINARY (section 5.4) has no bitmap and encodes
NULLs in-band. So for fixed-width numbers transcoding is mostly deleting the length words:
this module does it for a whole batch of rows at once with numpy, never with a Python loop
over rows, except for the rare rows that need one (non-ASCII text, arrays with NULL
elements or several dimensions).

How a batch is processed:

1. The select list puts fixed-width columns first (:attr:`BinaryEncoder.stream_order`), so
   in rows without NULLs those values sit at fixed offsets from the row start. One gather
   of the row prefixes (a sliding-window view indexed by row starts) and one structured-dtype
   copy extract all of them; a structured view checks every length word.
2. Rows where a length word differs (a NULL) are walked column by column, vectorised over
   just those rows, with NULLs reading a sentinel value appended to the buffer.
3. Variable-width columns (text, arrays) are walked after the prefix, vectorised over rows.
4. The output rows are assembled in FIELD order: each variable content padded to its longest
   value in one 2-D array, whose padding one boolean compress then squeezes out; when the
   padding would be too big (long, uneven text), rows are scattered to their offsets instead.

Text becomes UTF-16 (``unicodeChar``): for ASCII that is a zero byte before each byte; text
known to be ASCII (``char``, uploaded char columns) is written as its bytes.
Timestamps become ISO 8601 ``char`` text (DALI ``xtype="timestamp"``); ``±infinity`` is NULL.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from db.copybatch import CopyBatch
from vo.votable.columns import ColumnPlan
from vo.votable.gather import (
    Doubles,
    Rows,
    Text,
    Var,
    be32,
    i16,
    i32,
    non_ascii_rows,
    parse_float8_array,
    ranges,
    windows,
)

__all__ = ["BinaryEncoder"]


def _char_bytes(plan: ColumnPlan) -> int:
    """Bytes per character of a text column: 1 for ``char`` (ASCII), 2 for ``unicodeChar``."""
    return 1 if plan.datatype == "char" else 2

_EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL timestamps count microseconds from 2000-01-01
_TS_INFINITY = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)
_FLOAT8_OID = 701
_NAN8 = np.frombuffer(struct.pack(">d", float("nan")), np.uint8)

#: raw sentinel value read for a NULL fixed-width field (BINARY's in-band NULLs; BINARY2 ignores it)
_SENTINEL = {
    "short": struct.pack(">h", -(2**15)),
    "int": struct.pack(">i", -(2**31)),
    "long": struct.pack(">q", -(2**63)),
    "float": struct.pack(">f", float("nan")),
    "double": struct.pack(">d", float("nan")),
    "boolean": b"\x02",  # mapped to "?" below
    "timestamp": b"\x00" * 8,
}
#: PostgreSQL boolean byte (0, 1, or the NULL sentinel 2) -> VOTable boolean byte
_BOOL = np.full(256, ord("?"), np.uint8)
_BOOL[0], _BOOL[1] = ord("F"), ord("T")


class BinaryEncoder:
    """Encodes :class:`~db.query.CopyBatch` es of COPY BINARY rows as BINARY2 or BINARY rows.

    The COPY must list the columns in :attr:`stream_order` (fixed-width first), each cast to
    its plan's type (``select_list(..., "binary")``); the output is in FIELD order.
    """

    #: rows are assembled padded to the longest content of each column when that costs at most
    #: ``pad_factor`` times the output size plus ``pad_slack`` bytes, else scattered one by one
    pad_factor = 3
    pad_slack = 1 << 16

    def __init__(self, plans: Sequence[ColumnPlan], *, binary2: bool = True) -> None:
        self.plans = list(plans)
        self.binary2 = binary2
        n = len(self.plans)
        self.fixed = [j for j, p in enumerate(self.plans) if p.width is not None]
        self.var = [j for j, p in enumerate(self.plans) if p.width is None]
        self.stream_order = self.fixed + self.var
        widths = [self.plans[j].width or 0 for j in self.fixed]

        # Input: offsets of each fixed field's length word in a row without NULLs.
        self._lpos: list[int] = []
        pos = 2
        for w in widths:
            self._lpos.append(pos)
            pos += 4 + w
        self._prefix = pos
        names = [f"v{k}" for k in range(len(widths))]
        self._check_dtype = np.dtype({
            "names": ["nf", *(f"l{k}" for k in range(len(widths)))],
            "formats": [">i2", *([">i4"] * len(widths))],
            "offsets": [0, *self._lpos],
            "itemsize": self._prefix,
        })
        self._lengths = np.array(widths, dtype=np.int32)
        # the fixed values inside a prefix, and the same values packed together
        self._src_dtype = np.dtype({
            "names": names, "formats": [f"V{w}" for w in widths], "offsets": [p + 4 for p in self._lpos],
            "itemsize": self._prefix,
        }) if widths else None
        self._raw_dtype = np.dtype({"names": names, "formats": [f"V{w}" for w in widths]}) if widths else None
        self._raw_off = dict(zip(self.fixed, np.cumsum([0, *widths])[:-1].tolist(), strict=True))
        self._raw_width = int(sum(widths))
        self._sentinels = b"".join(_SENTINEL[self.plans[j].kind] for j in self.fixed)
        self._ncols = n

        # Output: the fixed-size part of each row (bitmap, fixed values, length prefixes) in F.
        self._nb = (n + 7) // 8 if binary2 else 0
        self._fpos: dict[int, int] = {}
        f = self._nb
        for j, p in enumerate(self.plans):
            self._fpos[j] = f
            f += self._out_width(p)
        self._fwidth = f
        #: columns whose output is an element count in F followed by variable content
        self._var_out = {
            j for j, p in enumerate(self.plans)
            if p.kind == "timestamp" or (p.kind in ("text", "double[]") and not p.count)
        }
        # runs of numeric columns contiguous both in the raw values and in F: one copy each
        self._runs: list[list[int]] = []
        for j in self.fixed:
            if self.plans[j].kind in ("boolean", "timestamp"):
                continue
            run = self._runs[-1] if self._runs else None
            prev = run and run[-1] == j - 1 and self.plans[j - 1].kind not in ("boolean", "timestamp")
            if run and prev:
                run.append(j)
            else:
                self._runs.append([j])

    @staticmethod
    def _out_width(p: ColumnPlan) -> int:
        """Bytes of the column in F: the value, or the int32 element count of variable content."""
        if p.kind == "text":
            return _char_bytes(p) * p.count if p.count else 4
        if p.kind == "double[]":
            return 8 * p.count if p.count else 4
        if p.kind == "timestamp":
            return 4
        return p.width or 0

    # -- decoding ---------------------------------------------------------------------------

    def encode(self, batch: CopyBatch) -> memoryview:
        """The output rows of ``batch``, concatenated (not yet base64)."""
        n_rows = batch.nrows
        if n_rows == 0:
            return memoryview(b"")
        pad = max(self._prefix, 16) + 16
        sentinel_at = len(batch.data) + pad
        buf = np.frombuffer(b"".join((batch.data, bytes(pad), self._sentinels, bytes(16))), np.uint8)
        lengths = batch.lengths
        starts = np.cumsum(lengths) - lengths

        nulls = np.zeros((n_rows, self._ncols), bool)
        raw, after_prefix = self._fixed_values(buf, starts, lengths, sentinel_at, nulls)

        # variable-width columns, after the fixed prefix
        pos = after_prefix
        var_fields: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in self.var:
            length = i32(buf, pos)
            null = length < 0
            nulls[:, j] = null
            length = np.where(null, 0, length)
            var_fields[j] = (pos + 4, length)
            pos = pos + 4 + length
        if not np.array_equal(pos, starts + lengths):
            raise ValueError("malformed binary COPY row: field lengths do not add up")

        # each column's bytes at its place among the fixed-size parts, and variable contents
        parts: dict[int, np.ndarray] = {}
        contents: dict[int, Var] = {}
        for j in self.fixed:
            p, r = self.plans[j], self._raw_off[j]
            if p.kind == "boolean":
                parts[j] = _BOOL[raw[:, r]][:, None]
            elif p.kind == "timestamp":
                contents[j] = self._timestamps(raw[:, r : r + 8], nulls[:, j], parts, j)
        for j in self.var:
            off, length = var_fields[j]
            if self.plans[j].kind == "text":
                var = self._text(buf, off, length, self.plans[j], parts, j)
            elif self.plans[j].twin and self.plans[j].count:
                self._stored_fixed(buf, off, length, nulls[:, j], parts, j)
                var = None
            elif self.plans[j].twin:
                var = self._stored(buf, off, length, nulls[:, j], parts, j)
            else:
                var = self._doubles(buf, off, length, nulls[:, j], self.plans[j], parts, j)
            if var is not None:
                contents[j] = var
        bitmap = np.packbits(nulls, axis=1) if self.binary2 and nulls.any() else None
        return self._assemble(raw, parts, bitmap, contents).data  # the array's buffer, not a copy

    def _fixed_values(self, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, sentinel_at: int,
                      nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw fixed values (N, width) in stream order, position after the fixed prefix per row)."""
        prefixes = windows(buf, self._prefix)[starts]
        check = prefixes.view(self._check_dtype)[:, 0]
        regular = check["nf"] == self._ncols
        for k in range(len(self.fixed)):
            regular &= check[f"l{k}"] == self._lengths[k]
        if self.fixed:
            raw = prefixes.view(self._src_dtype)[:, 0].astype(self._raw_dtype).view(np.uint8)
            raw = raw.reshape(len(starts), self._raw_width)
        else:
            raw = np.zeros((len(starts), 0), np.uint8)
        after = starts + self._prefix
        if regular.all():
            return raw, after
        # Rows with a NULL in a fixed-width column (or malformed): walk them field by field.
        rows = np.flatnonzero(~regular)
        if not (i16(buf, starts[rows]) == self._ncols).all():
            raise ValueError("malformed binary COPY row: unexpected field count")
        pos = starts[rows] + 2
        sentinel = sentinel_at
        for j in self.fixed:
            w = self.plans[j].width or 0
            length = i32(buf, pos)
            null = length == -1
            if not ((length == w) | null).all():
                raise ValueError(f"malformed binary COPY row: bad length in column {self.plans[j].name}")
            src = np.where(null, sentinel, pos + 4)
            r = self._raw_off[j]
            raw[rows, r : r + w] = windows(buf, w)[src]
            nulls[rows, j] = null
            pos = pos + 4 + np.where(null, 0, w)
            sentinel += w
        after[rows] = pos
        return raw, after

    # -- per-kind conversions ----------------------------------------------------------------

    def _timestamps(self, raw8: np.ndarray, null: np.ndarray, parts: dict[int, np.ndarray], j: int) -> Var:
        micros = np.ascontiguousarray(raw8).view(">i8")[:, 0].astype(np.int64)
        null |= np.isin(micros, _TS_INFINITY)
        micros = np.where(null, 0, micros)
        text = np.datetime_as_string((micros + _EPOCH_2000_US).astype("datetime64[us]"), unit="us").astype("S")
        size = np.char.str_len(text).astype(np.int64)
        # drop trailing zeros of the fraction, and the fraction itself when it is zero
        frac = micros % 1_000_000
        zeros = np.zeros(len(micros), np.int64)
        for k in range(1, 7):
            zeros += (frac % 10**k == 0).astype(np.int64)
        size = size - zeros - (zeros == 6)
        size[null] = 0
        parts[j] = be32(size)
        return Rows(text.view(np.uint8).reshape(len(micros), text.dtype.itemsize), size)

    def _text(self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, plan: ColumnPlan,
              parts: dict[int, np.ndarray], j: int) -> Var | None:
        step = _char_bytes(plan)
        units = length.copy()
        extra: dict[int, bytes] = {}
        rows, block = non_ascii_rows(buf, off, length)
        # rows too close to the end of the buffer for a padded read are encoded in Python too
        longest = int(length.max()) if len(length) else 0
        rows = np.union1d(rows, np.flatnonzero(off + longest > len(buf)))
        for row in rows.tolist():
            start = int(off[row])
            text = bytes(buf[start : start + int(length[row])]).decode("utf-8")
            # char is ASCII (VOTable 1.4 section 2.1); only ASCII-checked columns are char, so a
            # replacement here is a defence, not a path data takes
            enc = text.encode("utf-16-be") if step == 2 else text.encode("ascii", errors="replace")
            if plan.count:
                enc = enc[: step * plan.count]
            extra[row] = enc
            units[row] = len(enc) // step
        if plan.count is None:
            parts[j] = be32(units)
            return Text(buf, off, length, extra, block, step)
        # fixed-length text: the characters, then zero padding, inside F
        n = plan.count
        fixed = Text(buf, off, np.minimum(length, n), extra, block, step)
        chars = np.zeros((len(off), max(fixed.width, step * n)), np.uint8)
        fixed.fill(chars)
        keep = np.arange(chars.shape[1]) < fixed.sizes[:, None]
        parts[j] = np.where(keep, chars, 0)[:, : step * n]
        return None

    def _stored(self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, null: np.ndarray,
                parts: dict[int, np.ndarray], j: int) -> Var:
        """A stored VOTable binary double array (``vlkb_dali_bytes``: big-endian count, then the
        values) copied as it is: the count goes among the fixed-size parts, the values after it."""
        size = np.maximum(length - 4, 0)
        count = np.where(null, 0, i32(buf, off))
        if not (null | (size == 8 * count)).all():
            raise ValueError(f"malformed stored DALI array in column {self.plans[j].name}")
        parts[j] = be32(count)
        return Text(buf, off + 4, size, {}, None, 1)

    def _stored_fixed(self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, null: np.ndarray,
                      parts: dict[int, np.ndarray], j: int) -> None:
        """The binary form of a fixed-size DALI array (a POINT's two big-endian doubles) copied into
        its place among the fixed-size parts; NaNs for NULL (BINARY has no null flag)."""
        n = self.plans[j].count or 0
        if not (null | (length == 8 * n)).all():
            raise ValueError(f"malformed DALI array in column {self.plans[j].name}")
        block = np.tile(_NAN8, (len(off), n))
        rows = np.flatnonzero(~null)
        block[rows] = windows(buf, 8 * n)[off[rows]]
        parts[j] = block

    def _doubles(self, buf: np.ndarray, off: np.ndarray, length: np.ndarray, null: np.ndarray,
                 plan: ColumnPlan, parts: dict[int, np.ndarray], j: int) -> Var | None:
        """float8[] in PostgreSQL's array format -> VOTable double array."""
        rows = len(off)
        has = length >= 12
        ndim = np.where(has, i32(buf, off), 0)
        flags = np.where(has, i32(buf, off + 4), 0)
        oid = np.where(has, i32(buf, off + 8), _FLOAT8_OID)
        count = np.where(ndim == 1, i32(buf, off + 12), 0).astype(np.int64)
        expected = np.where(ndim == 1, 20 + 12 * count, np.where(has, 12, 0))
        simple = (ndim <= 1) & (flags == 0) & (oid == _FLOAT8_OID) & (length == expected)
        simple |= null
        count[null] = 0
        extra: dict[int, bytes] = {}
        for row in np.flatnonzero(~simple):
            start = int(off[row])
            values = parse_float8_array(bytes(buf[start : start + int(length[row])]))
            extra[int(row)] = np.asarray(values, ">f8").tobytes()
            count[row] = len(values)
        first = off + 24  # value of element 0: after the 20-byte header and its length word
        if plan.count is None:
            parts[j] = be32(count)
            return Doubles(buf, first, count, extra)
        n = plan.count
        block = np.tile(_NAN8, (rows, n))
        exact = (count == n) & ~null
        exact[list(extra)] = False
        exact_rows = np.flatnonzero(exact)
        if len(exact_rows):
            vals = windows(buf, 8)[ranges(first[exact_rows], np.full(len(exact_rows), n), 12)]
            block[exact_rows] = vals.reshape(len(exact_rows), 8 * n)
        for row in np.flatnonzero(~exact & ~null):
            enc = extra.get(int(row))
            if enc is None:
                picks = first[row] + 12 * np.arange(min(int(count[row]), n))
                enc = windows(buf, 8)[picks].tobytes()
            enc = enc[: 8 * n]
            block[row, : len(enc)] = np.frombuffer(enc, np.uint8)
        parts[j] = block
        return None

    # -- assembly -------------------------------------------------------------------------------

    def _assemble(self, raw: np.ndarray, parts: dict[int, np.ndarray], bitmap: np.ndarray | None,
                  contents: dict[int, Var]) -> np.ndarray:
        """The output rows: fixed-size parts in FIELD order, each variable content after its count."""
        n_rows = raw.shape[0]
        var = sorted(contents.items())
        sizes = sum((c.sizes for _, c in var), np.zeros(n_rows, np.int64))
        total = n_rows * self._fwidth + int(sizes.sum())
        padded = n_rows * (self._fwidth + sum(c.width for _, c in var))
        if padded <= self.pad_factor * total + self.pad_slack:
            # Rows padded to the longest content of each column, then the padding squeezed out:
            # columns of a 2-D array and one boolean compress, no per-byte index arrays.
            block, starts = self._block(raw, parts, bitmap, {j: c.width for j, c in var})
            for j, c in var:
                c.fill(block[:, starts[j] : starts[j] + c.width])
            if all((c.sizes == c.width).all() for _, c in var):
                return block.reshape(-1)
            keep = np.ones(block.shape, bool)
            for j, c in var:
                keep[:, starts[j] : starts[j] + c.width] = np.arange(c.width) < c.sizes[:, None]
            return block[keep]
        # Content too uneven to pad (long text): rows written straight to their offsets.
        fixed, starts = self._block(raw, parts, bitmap, {})
        rowlen = self._fwidth + sizes
        ends = np.cumsum(rowlen)
        out = np.zeros(int(ends[-1]), np.uint8)  # UTF-16 high bytes of ASCII text stay zero
        row = ends - rowlen
        shift = np.zeros(n_rows, np.int64)  # content bytes written so far in each row
        a = 0
        for j, c in var:
            b = starts[j]
            if b > a:
                windows(out, b - a, writeable=True)[row + a + shift] = fixed[:, a:b]
            c.write(out, row + b + shift)
            shift = shift + c.sizes
            a = b
        if self._fwidth > a:
            windows(out, self._fwidth - a, writeable=True)[row + a + shift] = fixed[:, a:]
        return out

    def _block(self, raw: np.ndarray, parts: dict[int, np.ndarray], bitmap: np.ndarray | None,
               widths: dict[int, int]) -> tuple[np.ndarray, dict[int, int]]:
        """(rows, fixed size + ``widths``) array with every fixed-size part in place, and where
        the content of each variable column starts (right after its count)."""
        shift, starts = 0, {}
        shifts = []
        for j in range(self._ncols):
            shifts.append(shift)
            if j in self._var_out:
                starts[j] = self._fpos[j] + 4 + shift
                shift += widths.get(j, 0)
        block = np.empty((raw.shape[0], self._fwidth + shift), np.uint8)
        if self._nb:
            block[:, : self._nb] = 0 if bitmap is None else bitmap
        for run in self._runs:
            a, w = self._raw_off[run[0]], sum(self.plans[j].width or 0 for j in run)
            f = self._fpos[run[0]] + shifts[run[0]]
            block[:, f : f + w] = raw[:, a : a + w]
        for j, part in parts.items():
            f = self._fpos[j] + shifts[j]
            block[:, f : f + part.shape[1]] = part
        return block, starts
