"""Apache Parquet output: COPY CSV batches parsed by Arrow, one row group per batch.

Parquet is what analysis tools (pandas, polars, DuckDB, TOPCAT) read fastest. The file is
written as it goes: each batch of rows becomes one row group, and the bytes written so far
leave at once; the footer (schema, row-group index, the QUERY_STATUS key) closes the file.
Arrow's CSV reader parses PostgreSQL's ``COPY ... CSV`` rows in C++, so nothing walks the
rows in Python. Geometry arrays are kept as DALI text lists (``"10.0 20.0"``), timestamps
become Arrow timestamps (UTC, microseconds).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from db.copybatch import CopyBatch
from vo.votable.columns import ColumnPlan

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer  # typeshed's name for "bytes-like", as io.RawIOBase.write takes

__all__ = ["ParquetEncoder"]

_ARROW = {
    "short": pa.int16(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
    "double": pa.float64(), "boolean": pa.bool_(), "text": pa.string(),
    "timestamp": pa.timestamp("us"), "double[]": pa.string(),
}


class _Sink(io.RawIOBase):
    """A write-only file that hands over what was written since the last :meth:`take`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)  # bytes written, whatever the item size of ``data``

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


class ParquetEncoder:
    """Encodes COPY CSV batches of ``plans`` as one Parquet file, row group by row group."""

    def __init__(self, plans: Sequence[ColumnPlan]) -> None:
        self._names = [p.name for p in plans]
        fields = []
        for p in plans:
            meta = {k: v for k, v in (("unit", p.column.unit), ("ucd", p.column.ucd),
                                      ("description", p.column.description)) if v}
            fields.append(pa.field(p.name, _ARROW[p.kind], metadata=meta or None))
        self._schema = pa.schema(fields)
        self._sink = _Sink()
        self._writer: pq.ParquetWriter | None = None
        self._convert = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in fields},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # COPY CSV: NULL is empty, '' is ""
            true_values=["true", "t"], false_values=["false", "f"],
        )
        self._read = pacsv.ReadOptions(column_names=self._names, use_threads=False)

    def head(self) -> bytes:
        self._writer = pq.ParquetWriter(self._sink, self._schema, compression="zstd")
        return self._sink.take()

    def encode(self, batch: CopyBatch) -> bytes:
        assert self._writer is not None
        table = pacsv.read_csv(pa.BufferReader(batch.data), read_options=self._read, convert_options=self._convert)
        self._writer.write_table(table)
        return self._sink.take()

    def tail(self, status: str) -> bytes:
        assert self._writer is not None
        self._writer.add_key_value_metadata({"QUERY_STATUS": status})
        self._writer.close()
        return self._sink.take()
