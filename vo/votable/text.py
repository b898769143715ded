"""PostgreSQL ``COPY`` text and CSV rows rewritten as TABLEDATA, CSV, TSV and JSON rows.

The server formats every value (its float output is the shortest exact form, see
``db/query.py``), and the select list (``vo/votable/columns.py``) already shapes values
that need it: ISO timestamps, DALI lists, JSON strings. What is left is structural and is
done on a whole batch with C-speed ``bytes.replace`` calls: in COPY text format raw tabs
and newlines only ever separate fields and rows (data ones arrive as ``\\t``/``\\n``),
every data backslash is doubled and ``\\N`` is a NULL field.

A doubled backslash is first turned into the byte 0xFF, which never occurs in UTF-8, so the
remaining backslashes unambiguously start escapes; 0xFF goes back to a backslash at the end.

Rows needing column-aware work (a float infinity in TABLEDATA, spelled ``+Inf``/``-Inf``
by VOTable 1.4 section 2.1) are found with ``bytes.find`` and fixed one by one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from db.copybatch import CopyBatch
from vo.votable.columns import ColumnPlan

__all__ = ["CsvEncoder", "JsonEncoder", "TableDataEncoder", "TsvEncoder"]

_ESCAPED_BACKSLASH = b"\\\\"
_MARK = b"\xff"
_NULL = b"\\N"
_REPLACEMENT = "\ufffd".encode()
# XML 1.0 forbids these characters even as character references (XML 1.0 section 2.2, Char):
# C0 controls other than tab, newline and carriage return, and U+FFFE, U+FFFF.
_XML_BAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")
_FLOATS = ("float", "double", "double[]")
_TAB_TO_COMMA = bytes.maketrans(b"\t", b",")


def _fix_rows(data: bytes, lengths: np.ndarray, needle: bytes, fix: Callable[[bytes], bytes]) -> bytes:
    """``data`` with ``fix`` applied to each row (text line, newline excluded) containing ``needle``."""
    hits = []
    at = data.find(needle)
    while at >= 0:
        hits.append(at)
        at = data.find(needle, at + len(needle))
    if not hits:
        return data
    ends = np.cumsum(lengths)
    rows = np.unique(np.searchsorted(ends, np.asarray(hits), side="right"))
    pieces, done = [], 0
    for row in rows.tolist():
        end = int(ends[row])
        start = end - int(lengths[row])
        pieces += [data[done:start], fix(data[start : end - 1]), b"\n"]
        done = end
    pieces.append(data[done:])
    return b"".join(pieces)


class TableDataEncoder:
    """COPY text rows -> ``<TR><TD>..</TD></TR>`` lines (VOTable 1.4 section 5.3)."""

    def __init__(self, plans: Sequence[ColumnPlan]) -> None:
        self._kinds = [p.kind for p in plans]
        self._has_floats = any(k in _FLOATS for k in self._kinds)

    def _needs_cleaning(self, batch: CopyBatch) -> bool:
        """Whether the rows hold characters XML cannot carry: raw bytes below 0x20 other than
        the tab and newline separators (COPY escapes the others), or U+FFFE/U+FFFF."""
        controls = np.count_nonzero(np.frombuffer(batch.data, np.uint8) < 0x20)
        return (controls != batch.nrows * len(self._kinds)
                or b"\xef\xbf\xbe" in batch.data or b"\xef\xbf\xbf" in batch.data)

    def _infinities(self, row: bytes) -> bytes:
        fields = row.split(b"\t")
        for i, kind in enumerate(self._kinds):
            if kind in ("float", "double"):
                fields[i] = {b"Infinity": b"+Inf", b"-Infinity": b"-Inf"}.get(fields[i], fields[i])
            elif kind == "double[]" and b"Infinity" in fields[i]:
                tokens = fields[i].split(b" ")
                fields[i] = b" ".join({b"Infinity": b"+Inf", b"-Infinity": b"-Inf"}.get(t, t) for t in tokens)
        return b"\t".join(fields)

    def encode(self, batch: CopyBatch) -> bytes:
        d = batch.data
        if not d:
            return b""
        cleaning = self._needs_cleaning(batch)
        if self._has_floats and b"Infinity" in d:
            d = _fix_rows(d, batch.lengths, b"Infinity", self._infinities)
        escapes = b"\\" in d
        if escapes:
            d = d.replace(_ESCAPED_BACKSLASH, _MARK)
        for char, entity in ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;")):
            if char in d:
                d = d.replace(char, entity)
        d = b"<TR><TD>" + d[:-1].replace(b"\t", b"</TD><TD>").replace(b"\n", b"</TD></TR>\n<TR><TD>") + b"</TD></TR>\n"
        if escapes:
            if _NULL in d:
                d = d.replace(b"<TD>\\N</TD>", b"<TD/>")
            if b"\\" in d:
                for esc, text in ((b"\\t", b"&#9;"), (b"\\n", b"&#10;"), (b"\\r", b"&#13;"),
                                  (b"\\b", _REPLACEMENT), (b"\\f", _REPLACEMENT), (b"\\v", _REPLACEMENT)):
                    if esc in d:
                        d = d.replace(esc, text)
            if _MARK in d:
                d = d.replace(_MARK, b"\\")
        if cleaning:
            d = _XML_BAD.sub(_REPLACEMENT, d)
        return d


class CsvEncoder:
    """COPY CSV rows (RFC 4180 quoting by PostgreSQL) with CRLF line ends and a header line."""

    def __init__(self, plans: Sequence[ColumnPlan]) -> None:
        self._names = [p.name for p in plans]

    def header(self) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(self._names)
        return out.getvalue().encode()

    def encode(self, batch: CopyBatch) -> bytes:
        d = batch.data
        if b'"' not in d:
            return d.replace(b"\n", b"\r\n")
        # quoted fields may hold newlines: add CR before each row's own terminator only
        ends = np.cumsum(batch.lengths) - 1
        return np.insert(np.frombuffer(d, np.uint8), ends, 13).tobytes()


class TsvEncoder:
    """COPY text rows as tab-separated values: a header line, no quoting, NULL as empty.

    TSV (IANA text/tab-separated-values) cannot hold tabs or line breaks in a value: they
    become spaces. Every other character is written as is.
    """

    def __init__(self, plans: Sequence[ColumnPlan]) -> None:
        self._names = [p.name for p in plans]

    def header(self) -> bytes:
        return "\t".join(n.replace("\t", " ").replace("\n", " ") for n in self._names).encode() + b"\n"

    def encode(self, batch: CopyBatch) -> bytes:
        d = batch.data
        if b"\\" not in d:
            return d
        d = d.replace(_ESCAPED_BACKSLASH, _MARK)
        for esc, text in ((_NULL, b""), (b"\\t", b" "), (b"\\n", b" "), (b"\\r", b" "),
                          (b"\\b", b"\b"), (b"\\f", b"\f"), (b"\\v", b"\v")):
            if esc in d:
                d = d.replace(esc, text)
        return d.replace(_MARK, b"\\")


class JsonEncoder:
    """``{"metadata": [...], "data": [[...], ...], "query_status": ...}``, streamed.

    Values come from the server as JSON text already (strings through ``to_json``); the
    bare NaN and infinities of float columns, which JSON lacks, become ``null``.
    """

    def __init__(self, plans: Sequence[ColumnPlan], infos: Mapping[str, str] | None = None) -> None:
        self._plans = list(plans)
        self._infos = dict(infos or {})
        self._first = True

    def head(self) -> bytes:
        meta = [
            {
                "name": p.name, "datatype": p.datatype, "arraysize": p.arraysize,
                "xtype": "timestamp" if p.kind == "timestamp" else p.column.xtype,
                "unit": p.column.unit, "ucd": p.column.ucd, "utype": p.column.utype,
                "description": p.column.description,
            }
            for p in self._plans
        ]
        head = {"infos": self._infos, "metadata": meta} if self._infos else {"metadata": meta}
        return json.dumps(head, ensure_ascii=False)[:-1].encode() + b',\n"data":[\n'

    def encode(self, batch: CopyBatch) -> bytes:
        d = batch.data
        if not d:
            return b""
        if b"NaN" in d or b"Infinity" in d or _NULL in d:
            # Surrounded by tabs, a field is matched whole: JSON strings are quoted and hold no
            # raw tab or newline, so a bare NaN, Infinity or \N is a number or a NULL.
            body = b"\t" + d[:-1].replace(b"\n", b"\t\n\t") + b"\t"
            for token in (b"NaN", b"Infinity", b"-Infinity", _NULL):
                pattern = b"\t" + token + b"\t"
                if pattern in body:
                    # twice: adjacent matches share a tab, so one pass misses every other one
                    body = body.replace(pattern, b"\tnull\t").replace(pattern, b"\tnull\t")
            d = body[1:-1].replace(b"\t\n\t", b"\n") + b"\n"
        d = d.translate(_TAB_TO_COMMA)
        if _ESCAPED_BACKSLASH in d:
            d = d.replace(_ESCAPED_BACKSLASH, b"\\")
        rows = b"[" + d[:-1].replace(b"\n", b"],\n[") + b"]"
        if self._first:
            self._first = False
            return rows
        return b",\n" + rows

    def tail(self, status: str, message: str | None = None) -> bytes:
        end: dict[str, str] = {"query_status": status}
        if message:
            end["message"] = message
        return b"\n]," + json.dumps(end, ensure_ascii=False)[1:].encode() + b"\n"
