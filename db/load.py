"""Bulk loading of published tables from column arrays, with PostgreSQL binary COPY.

:func:`copy_columns` takes a declared table (``schemas.Table``) and a mapping of column name
to array (numpy array or list) and streams the rows with ``COPY ... FROM STDIN (FORMAT
BINARY)``. The binary rows are assembled with numpy, column by column, without a Python loop
over rows, so millions of rows load at about the speed of the server.

pgSphere types (and ``timestamp``) have no binary input function, and COPY BINARY needs one
for every column of its target, generated columns included. So a table with such a column is
loaded through a temporary staging table (those columns as ``text``) and moved with one
``INSERT ... SELECT`` that casts them. Generated columns are never loaded. NaN, None and masked
values become NULL. No protocol rules here: this module only moves data.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from schemas import Column, Table

__all__ = ["copy_columns"]

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
#: big-endian numpy dtypes of the declared types with a fixed-width binary form
_BINARY: dict[str, str] = {
    "short": ">i2", "int": ">i4", "long": ">i8", "float": ">f4", "double": ">f8", "boolean": "?",
}
#: declared types loaded as text and cast by the server
_CAST = {"timestamp", "point", "circle", "polygon", "path"}
_ROWS_PER_BLOCK = 100_000


def _null_mask(values: Any, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if isinstance(values, np.ma.MaskedArray):
        mask |= np.ma.getmaskarray(values)
    return mask


def _fixed_field(col: Column, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(null mask, (n, width) uint8 big-endian payload) of a fixed-width column."""
    dtype = np.dtype(_BINARY[col.type])
    raw = values
    mask = _null_mask(raw, len(raw))
    if isinstance(raw, np.ma.MaskedArray):
        raw = raw.filled(0)
    arr = np.asarray(raw)
    if arr.dtype == object:
        none = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr], dtype=bool)
        mask |= none
        arr = np.where(none, 0, arr)
        arr = arr.astype(np.float64) if dtype.kind == "f" else arr.astype(np.int64)
    if arr.dtype.kind == "f":
        nan = np.isnan(arr)
        mask |= nan
        if dtype.kind in "iub":
            arr = np.where(nan, 0, arr)
            if not np.all(arr == np.round(arr)):
                raise ValueError(f"column {col.name}: non-integer values for type {col.type}")
    if dtype.kind in "iu" and arr.size and not mask.all():
        info = np.iinfo(dtype)
        live = arr[~mask]
        if live.min() < info.min or live.max() > info.max:
            raise ValueError(f"column {col.name}: values out of range for type {col.type}")
    data = np.ascontiguousarray(arr.astype(dtype))
    return mask, data.view(np.uint8).reshape(len(data), dtype.itemsize)


def _text_field(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(null mask, byte lengths, (n, width) zero-padded UTF-8 bytes) of a text column."""
    seq = values.tolist() if isinstance(values, np.ndarray) else list(values)
    mask = np.array(
        [v is None or (isinstance(v, float) and np.isnan(v)) or v is np.ma.masked for v in seq], dtype=bool
    )
    if isinstance(values, np.ma.MaskedArray):
        mask |= np.ma.getmaskarray(values)
    encoded = [b"" if m else str(v).encode("utf-8") for v, m in zip(seq, mask, strict=True)]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    width = max(1, int(lengths.max(initial=0)))
    padded = np.array(encoded, dtype=f"S{width}").view(np.uint8).reshape(len(encoded), width)
    return mask, lengths, padded


def _encode(cols: Sequence[Column], data: Mapping[str, Any], start: int, stop: int,
            text_types: set[str]) -> bytes:
    """Binary COPY rows ``start:stop`` (no signature, no trailer).

    Every field becomes a block of its rows: a 4-byte length (-1 for NULL) and its data
    zero-padded to the column's widest value. The blocks side by side are the rows with
    padding; a boolean mask of the real bytes compresses them, in row order, into the stream.
    """
    n = stop - start
    fields = []
    for col in cols:
        values = data[col.name][start:stop]
        if col.type in text_types:
            mask, lengths, payload = _text_field(values)
            ragged = True
        else:
            mask, payload = _fixed_field(col, values)
            lengths = np.full(n, payload.shape[1])
            ragged = False
        fields.append((mask, np.where(mask, 0, lengths), payload, ragged or bool(mask.any())))
    width = 2 + sum(4 + f[2].shape[1] for f in fields)
    rows = np.empty((n, width), dtype=np.uint8)
    keep = None
    rows[:, :2] = np.frombuffer(struct.pack(">h", len(cols)), dtype=np.uint8)
    at = 2
    for mask, lengths, payload, ragged in fields:
        w = payload.shape[1]
        rows[:, at:at + 4] = np.where(mask, -1, lengths).astype(">i4").view(np.uint8).reshape(n, 4)
        rows[:, at + 4:at + 4 + w] = payload
        if ragged:
            if keep is None:
                keep = np.ones((n, width), dtype=bool)
            keep[:, at + 4:at + 4 + w] = np.arange(w)[None, :] < lengths[:, None]
        at += 4 + w
    return (rows if keep is None else rows[keep]).tobytes()


def _rows_per_block(cols: Sequence[Column], data: Mapping[str, Any], text_types: set[str]) -> int:
    """Rows per encoded block so that one padded block stays near 64 MB."""
    width = 2
    for col in cols:
        if col.type in text_types:
            width += 4 + 4 * max((len(str(v)) for v in data[col.name] if v is not None), default=1)
        else:
            width += 4 + np.dtype(_BINARY[col.type]).itemsize
    return int(min(_ROWS_PER_BLOCK, max(100, 64_000_000 // width)))


def _length(data: Mapping[str, Any]) -> int:
    lengths = {name: len(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different lengths: {lengths}")
    return next(iter(lengths.values()), 0)


def copy_columns(conn: psycopg.Connection, table: Table, data: Mapping[str, Any]) -> int:
    """Append the rows given as columns in ``data`` to ``table``; returns the number of rows.

    ``data`` maps column names (case-insensitive) to equal-length arrays or lists. Columns of
    the table not in ``data`` get their default (NULL); generated columns in ``data`` are
    ignored; a name that is not a column of the table raises ``ValueError``. Runs in one
    transaction (a savepoint if one is open), so a failure loads nothing.
    """
    by_name = {c.name.lower(): c for c in table.columns}
    unknown = [k for k in data if k.lower() not in by_name]
    if unknown:
        raise ValueError(f"{table.qualified_name} has no columns {unknown}")
    given = {k.lower(): v for k, v in data.items()}
    cols = [c for c in table.columns if c.name.lower() in given and not c.generated]
    values = {c.name: given[c.name.lower()] for c in cols}
    n = _length(values)
    if n == 0 or not cols:
        return 0
    target = sql.Identifier(table.schema_name.lower(), table.name)
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
    # COPY BINARY needs binary input for every column of its target, generated ones included
    staged = any(c.type in _CAST for c in table.columns)
    # char is ASCII text stored as ``text`` (schemas.TYPES): its binary form is the same bytes
    text_types = {"text", "char"} | _CAST
    with conn.transaction():
        if staged:
            stage = sql.Identifier(f"_stage_{table.name}")
            defs = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL("text" if c.type in _CAST else c.info.pg))
                for c in cols
            )
            conn.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(stage, defs))
            dest: sql.Composable = stage
        else:
            dest = target
        with conn.cursor() as cur, cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(dest, names)
        ) as copy:
            copy.write(_SIGNATURE)
            step = _rows_per_block(cols, values, text_types)
            for start in range(0, n, step):
                copy.write(_encode(cols, values, start, min(n, start + step), text_types))
            copy.write(_TRAILER)
        if staged:
            select = sql.SQL(", ").join(
                sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.info.pg)) if c.type in _CAST
                else sql.Identifier(c.name)
                for c in cols
            )
            conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(target, names, select, stage))
            conn.execute(sql.SQL("DROP TABLE {}").format(stage))
    return n
