"""TAP 1.1 table uploads (section 2.5): the UPLOAD parameter, safe reading of the uploaded
VOTables, the typing of their columns, and the catalog that makes them readable as
``TAP_UPLOAD.name``.

Two kinds of upload are accepted (TAPRegExt upload-inline, upload-http and upload-https):
``UPLOAD=name,param:part`` with the VOTable sent as part ``part`` of the same multipart
request (DALI 1.1 section 3.4.5), and ``UPLOAD=name,https://...`` (or ``http://``), which the
service fetches itself through the guarded fetch of ``vo/upload_fetch.py``. Limits on bytes,
rows and columns hold for all the tables of one request together; the bytes and the columns
are checked before anything is parsed.

Reading is defensive, since the bytes come from anyone: no DTD or entity (no entity
expansion, no markup hidden in entities), no data by reference (``STREAM href``), no
compressed streams and no FITS serialisation; astropy then parses what is left, in memory,
bounded by the byte limit. Each FIELD becomes a column of the ``schemas`` vocabulary
(:func:`column_of`), so the result FIELDs keep unit, UCD, utype and description.

The rows are turned into PostgreSQL ``COPY`` text here and loaded into a temporary table by
``db/upload.py``, inside the query's own transaction. No HTTP and no SQL in this module.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from astropy.io import votable

from db.upload import TempTable
from schemas import Column, Table
from schemas.reserved import is_reserved
from vo.adql.catalog import ICRS, Catalog
from vo.errors import TooLargeError, UsageError

__all__ = [
    "UPLOAD_SCHEMA",
    "UploadLimits",
    "UploadRef",
    "UploadedTable",
    "check_bytes",
    "column_of",
    "inline_bytes",
    "parse_upload",
    "read_upload",
    "read_uploads",
    "stored_name",
    "upload_catalog",
    "url_items",
]

#: the ADQL schema of uploaded tables (TAP 1.1 section 2.5.1)
UPLOAD_SCHEMA = "TAP_UPLOAD"

_REGULAR = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: PostgreSQL truncates longer identifiers, which could make two names one
_MAX_NAME_BYTES = 63
_NULL = "\\N"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadLimits:
    """What one request may upload, all its tables together."""

    max_rows: int
    max_bytes: int
    #: FIELDs of one table (counted before the VOTable is parsed); PostgreSQL allows 1600
    max_columns: int | None = None


@dataclass(frozen=True)
class UploadRef:
    """One entry of UPLOAD: the ADQL table name (delimiting quotes removed) and where the
    VOTable is: ``part`` of the request (``name,param:part``) or ``url`` (``name,https://...``)."""

    name: str
    part: str = ""
    url: str | None = None

    @property
    def label(self) -> str:
        """How messages name the table: ``TAP_UPLOAD.name``."""
        return f"{UPLOAD_SCHEMA}.{self.name if _REGULAR.match(self.name) else chr(34) + self.name + chr(34)}"


def _printable(name: str) -> bool:
    return bool(name) and not any(ord(c) < 32 or c in '"\x7f' for c in name) and (
        len(name.encode("utf-8")) <= _MAX_NAME_BYTES
    )


def _table_name(text: str) -> str:
    """An upload table name: a regular ADQL identifier that is no reserved word, or a
    delimited one (``"my table"``)."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        if _printable(inner):
            return inner
    elif _REGULAR.match(text) and len(text) <= _MAX_NAME_BYTES:
        if is_reserved(text):
            raise UsageError(f"UPLOAD: table name {text} is an ADQL reserved word; delimit it (\"{text}\") "
                             "or choose another")
        return text
    raise UsageError(f"UPLOAD: {text!r} is not a valid table name: use letters, digits and _ starting with a "
                     f"letter, or a delimited name in double quotes (at most {_MAX_NAME_BYTES} bytes)")


def parse_upload(values: Sequence[str]) -> tuple[UploadRef, ...]:
    """The tables named by UPLOAD values (``a,param:p1;b,https://host/t.xml``; the parameter may repeat).

    Raises UsageError for malformed entries, repeated table names and any URI other than
    ``param:``, ``http:`` and ``https:`` (TAP 1.1 section 2.5.1; TAPRegExt upload methods).
    A URL is only checked for its form here: the fetch decides what it may reach.
    """
    refs: list[UploadRef] = []
    for value in values:
        for item in value.split(";"):
            item = item.strip()
            if not item:
                continue
            name_text, sep, uri = item.partition(",")
            if not sep:
                raise UsageError(f"UPLOAD: expected name,param:part or name,https://... (e.g. mine,param:table1), "
                                 f"got {item!r}")
            name = _table_name(name_text.strip())
            uri = uri.strip()
            scheme, colon, rest = uri.partition(":")
            scheme = scheme.lower()
            if colon and scheme in ("http", "https"):
                if not rest.startswith("//") or len(rest) <= 2:
                    raise UsageError(f"UPLOAD {name}: {uri!r} is not a valid {scheme} URL")
                refs.append(UploadRef(name, url=uri))
                continue
            if not colon or scheme != "param":
                raise UsageError(
                    f"UPLOAD {name}: {uri!r} is neither param:PART (the VOTable sent as part PART of the same "
                    "multipart POST) nor an http or https URL; other URI schemes are not fetched"
                )
            if not rest:
                raise UsageError(f"UPLOAD {name}: param: must name the request part that holds the table")
            refs.append(UploadRef(name, rest))
    seen: set[str] = set()
    for ref in refs:
        key = ref.name if not _REGULAR.match(ref.name) else ref.name.lower()
        if key in seen:
            raise UsageError(f"UPLOAD: table {ref.name} is uploaded twice")
        seen.add(key)
    return tuple(refs)


def stored_name(part: str) -> str:
    """The file name a job keeps the upload of request part ``part`` under (results store)."""
    return "upload-" + hashlib.sha256(part.encode("utf-8")).hexdigest()[:16]


# -- reading a VOTable safely ----------------------------------------------------------------------

_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_STREAM = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?STREAM\b([^>]*)>")
_FITS = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?FITS\b")
_HREF = re.compile(rb"\bhref\s*=")
_ENCODING = re.compile(rb"""\bencoding\s*=\s*["']\s*([^"'\s]*)\s*["']""")
_BOM = b"\xef\xbb\xbf"
#: a FIELD start tag (FIELDref does not match: no word boundary inside it)
_FIELD = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?FIELD\b")


def _check_columns(label: str, data: bytes, max_columns: int | None) -> None:
    """Refuse a table wider than ``max_columns`` before astropy builds a column per FIELD.

    Counts FIELD tags in the whole document: a bound on the first table's, cheap and linear.
    """
    if max_columns is None:
        return
    for count, _ in enumerate(_FIELD.finditer(data), start=1):
        if count > max_columns:
            raise TooLargeError(f"UPLOAD {label}: more than {max_columns} columns (FIELDs); this service "
                                f"accepts at most {max_columns} columns per uploaded table")


def _check_safe(label: str, data: bytes) -> None:
    """Refuse what astropy would expand, fetch or decompress before the limits could apply."""
    head = data[len(_BOM):] if data.startswith(_BOM) else data
    if not head.lstrip()[:1] == b"<":
        # astropy would also read gzip, bzip2 or xz here: a small upload could inflate to anything
        raise UsageError(f"UPLOAD {label}: not a VOTable (XML encoded as UTF-8 expected, uncompressed)")
    if b"\x00" in head[:1024]:
        raise UsageError(f"UPLOAD {label}: the VOTable must be encoded as UTF-8")
    if _DOCTYPE.search(data):
        raise UsageError(f"UPLOAD {label}: DOCTYPE and ENTITY declarations are not accepted in uploads")
    if _FITS.search(data):
        raise UsageError(f"UPLOAD {label}: FITS serialisation is not accepted; send TABLEDATA, BINARY or BINARY2")
    for m in _STREAM.finditer(data):
        attrs = m.group(1)
        if _HREF.search(attrs):
            raise UsageError(f"UPLOAD {label}: data by reference (STREAM href) is not accepted: "
                             "this service does not fetch URLs; send the rows in the VOTable")
        enc = _ENCODING.search(attrs)
        if enc is not None and enc.group(1).lower() not in (b"base64", b""):
            raise UsageError(f"UPLOAD {label}: STREAM encoding {enc.group(1).decode(errors='replace')!r} "
                             "is not accepted; use base64")


def _parse(label: str, data: bytes, max_columns: int | None = None) -> votable.tree.TableElement:
    _check_safe(label, data)
    _check_columns(label, data, max_columns)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = votable.parse(io.BytesIO(data), verify="ignore")
            table = doc.get_first_table()
    except IndexError:
        raise UsageError(f"UPLOAD {label}: the VOTable holds no TABLE") from None
    except Exception as exc:  # astropy and expat raise many types; all mean a bad document
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(f"UPLOAD {label}: not a readable VOTable ({reason})") from None
    if not table.fields:
        raise UsageError(f"UPLOAD {label}: the table has no FIELD")
    return table


# -- typing the columns ----------------------------------------------------------------------------

_SCALARS = {
    "boolean": "boolean", "bit": "boolean", "unsignedByte": "short", "short": "short", "int": "int",
    "long": "long", "float": "float", "double": "double",
}
_GEOMETRY_SIZE = {"point": "2", "circle": "3"}
_ARRAYSIZE = re.compile(r"(?:[1-9][0-9]*x)*(?:[1-9][0-9]*\*?|\*)\Z")


def _unit_text(field: votable.tree.Field) -> str | None:
    unit = field.unit
    if unit is None:
        return None
    try:
        return unit.to_string("vounit")
    except Exception:  # units astropy does not know keep their own spelling
        return str(unit)


def column_of(label: str, field: votable.tree.Field) -> Column:
    """The column a FIELD becomes (UsageError for what the service cannot store).

    Scalars keep their type (unsignedByte widens to short, bit to boolean); char becomes
    ``char`` (text published as VOTable char, while its values are ASCII) and unicodeChar
    ``text``, fixed sizes kept; xtype timestamp becomes timestamp; DALI point, circle and
    polygon on double/float arrays become pgSphere values, usable in geometry functions.
    Other arrays and complex numbers are refused.
    """
    name = field.name or field.ID or ""
    if not _printable(name):
        raise UsageError(f"UPLOAD {label}: column name {name!r} is not accepted (1 to {_MAX_NAME_BYTES} bytes, "
                         "no double quote or control character)")
    datatype = field.datatype
    arraysize = field.arraysize or None
    xtype = (field.xtype or "").lower()
    where = f"UPLOAD {label}: column {name}"
    if arraysize is not None and not _ARRAYSIZE.match(arraysize):
        # VOTable 1.4 section 2.2: each dimension is a positive integer, the last may be n* or *
        raise UsageError(f"{where}: arraysize {arraysize!r} is not valid (expected n, n*, * or AxB..., "
                         "with positive integers n)")
    fixed_text: str | None = None
    if xtype in ("point", "circle", "polygon") and datatype in ("double", "float"):
        want = _GEOMETRY_SIZE.get(xtype)
        if want is not None and arraysize != want:
            raise UsageError(f"{where}: xtype {xtype} needs arraysize {want}, got {arraysize}")
        if xtype == "polygon" and (arraysize is None or "x" in arraysize):
            raise UsageError(f"{where}: xtype polygon needs a one-dimensional array")
        kind = xtype
    elif datatype in ("char", "unicodeChar"):
        if arraysize is not None and "x" in arraysize:
            raise UsageError(f"{where}: arrays of strings (arraysize {arraysize}) are not supported")
        if xtype in ("timestamp", "adql:timestamp"):
            kind = "timestamp"
        else:
            # char stays char (ASCII, checked with the values in _copy_text), as taplint's W-UPL-TMDA asks
            kind = "char" if datatype == "char" else "text"
            fixed_text = "1" if arraysize is None else (None if arraysize == "*" else arraysize)
    elif datatype in _SCALARS:
        if arraysize not in (None, "1"):
            raise UsageError(f"{where}: arrays ({datatype}, arraysize {arraysize}) are not supported, except "
                             "DALI point, circle and polygon")
        kind = _SCALARS[datatype]
    else:
        raise UsageError(f"{where}: datatype {datatype} is not supported")
    return Column(
        name=name, type=kind, description=field.description or "", unit=_unit_text(field), ucd=field.ucd,
        utype=field.utype, arraysize=fixed_text,
    )


# -- rows as COPY text -----------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).translate(_ESCAPES)


def _row_mask(col: np.ma.MaskedArray) -> np.ndarray:
    mask = np.ma.getmaskarray(col)
    if mask.ndim > 1:
        # numpy's stubs type any(axis=...) as "a bool or an array"; over axis 1 of a 2-d array it is an array
        return cast(np.ndarray, mask.reshape(len(mask), -1).any(axis=1))
    return mask


def _numbers(col: np.ma.MaskedArray, kind: str) -> np.ndarray:
    mask = _row_mask(col)
    data = np.ma.getdata(col)
    if data.ndim > 1:  # arraysize="1" on a number: astropy reads one-element arrays
        data = data.reshape(len(data))
    if kind == "boolean":
        out = np.where(data.astype(bool), "t", "f").astype(object)
    elif kind in ("float", "double"):
        out = data.astype(str).astype(object)
        out[np.isposinf(data)] = "Infinity"
        out[np.isneginf(data)] = "-Infinity"
        mask = mask | np.isnan(data)  # NaN is the VOTable null of floating-point values
    else:
        out = data.astype(np.int64).astype(str).astype(object)
    out[mask] = _NULL
    return out


def _strings(col: np.ma.MaskedArray, kind: str) -> list[str]:
    data = np.ma.getdata(col)
    mask = _row_mask(col)
    out = []
    for value, masked in zip(data.tolist(), mask.tolist(), strict=True):
        if masked or value is None:
            out.append(_NULL)
            continue
        text = _text(value)
        out.append(_NULL if kind == "timestamp" and not text.strip() else text)
    return out


def _deg(values: Iterable[float]) -> list[str] | None:
    floats = [float(v) for v in values]
    if any(not math.isfinite(v) for v in floats):
        return None
    return [f"{v!r}d" for v in floats]


def _geometry(label: str, name: str, col: np.ma.MaskedArray, kind: str) -> list[str]:
    """pgSphere input text in degrees: ``(l d, b d)``, ``<(l d, b d), r d>``, ``{(..), (..), ...}``."""
    data = np.ma.getdata(col)
    mask = _row_mask(col)
    out = []
    for value, masked in zip(data, mask.tolist(), strict=True):
        if masked or value is None:
            out.append(_NULL)
            continue
        flat: np.ndarray = np.ma.filled(np.ma.asarray(value, dtype=float), np.nan).ravel()
        d = _deg(flat)
        if d is None or flat.size == 0:
            out.append(_NULL)
            continue
        lats = flat[1:2] if kind == "circle" else flat[1::2]
        if np.any(np.abs(lats) > 90) or (kind == "circle" and not 0 <= flat[2] <= 180):
            # pgSphere would quietly fold such values into another position
            raise UsageError(f"UPLOAD {label}: column {name}: latitudes must be within [-90, 90] and radii "
                             f"within [0, 180] degrees, got {[float(v) for v in flat]}")
        if kind == "point":
            out.append(f"({d[0]},{d[1]})")
        elif kind == "circle":
            out.append(f"<({d[0]},{d[1]}),{d[2]}>")
        else:
            if flat.size < 6 or flat.size % 2:
                raise UsageError(f"UPLOAD {label}: column {name}: a polygon needs at least three lon/lat pairs")
            out.append("{" + ",".join(f"({d[i]},{d[i + 1]})" for i in range(0, len(d), 2)) + "}")
    return out


def _encoder(kind: str) -> Callable[[str, str, np.ma.MaskedArray], Collection[str]]:
    if kind in ("point", "circle", "polygon"):
        return lambda label, name, col: _geometry(label, name, col, kind)
    if kind in ("text", "char", "timestamp"):
        return lambda label, name, col: _strings(col, kind)
    return lambda label, name, col: _numbers(col, kind)


def _copy_text(label: str, columns: list[Column], array: np.ma.MaskedArray) -> bytes:
    """The rows as COPY text; a ``char`` column holding other than ASCII becomes ``text`` in
    ``columns`` (VOTable 1.4 section 2.1: char is ASCII; astropy reads what it is given)."""
    if len(array) == 0:
        return b""
    names = array.dtype.names
    assert names is not None  # a VOTable's rows are a structured array, one named field per FIELD
    cells = [
        _encoder(c.type)(label, c.name, np.ma.asarray(array[key]))
        for c, key in zip(columns, names, strict=True)
    ]
    for k, col in enumerate(columns):
        if col.type == "char" and not all(text.isascii() for text in cells[k]):
            columns[k] = col.model_copy(update={"type": "text"})
    return ("\n".join(map("\t".join, zip(*cells, strict=True))) + "\n").encode("utf-8")


@dataclass(frozen=True)
class UploadedTable:
    """An uploaded table, checked and typed, with its rows ready for ``COPY``."""

    ref: UploadRef
    #: its declaration, as ``TAP_UPLOAD.<name>``
    table: Table
    #: its name in ``pg_temp``
    sql_name: str
    nrows: int
    copy_text: bytes

    def chunks(self) -> Iterator[bytes]:
        """The COPY text in pieces of about a megabyte."""
        view = memoryview(self.copy_text)
        for start in range(0, len(view), _CHUNK):
            yield bytes(view[start:start + _CHUNK])

    def temp_table(self) -> TempTable:
        """What ``db/upload.py`` creates and fills."""
        return TempTable(
            name=self.sql_name, columns=[(c.name, c.info.pg) for c in self.table.columns], rows=self.chunks,
            label=self.ref.label,
        )


def read_upload(ref: UploadRef, data: bytes, index: int, *, max_rows: int | None = None,
                row_limit: int | None = None, max_columns: int | None = None) -> UploadedTable:
    """Parse and type one uploaded VOTable (its first TABLE).

    ``max_rows`` is what the table may hold, ``row_limit`` the limit of the whole request
    (for the message; default ``max_rows``); ``max_columns`` bounds its FIELDs.
    """
    label = ref.label
    vo_table = _parse(label, data, max_columns)
    nrows = len(vo_table.array)
    if max_rows is not None and nrows > max_rows:
        limit = max_rows if row_limit is None else row_limit
        raise TooLargeError(f"UPLOAD {label}: too many rows ({nrows}); this service accepts {limit} uploaded "
                            "rows per request")
    columns = [column_of(label, f) for f in vo_table.fields]
    lowered: dict[str, str] = {}
    for col in columns:
        other = lowered.get(col.name.lower())
        if other is not None:
            raise UsageError(f"UPLOAD {label}: columns {other} and {col.name} have the same name in ADQL, "
                             "which ignores case")
        lowered[col.name.lower()] = col.name
    copy_text = _copy_text(label, columns, vo_table.array)  # may retype char columns as text
    table = Table(name=ref.name, description=f"table uploaded as {label}", columns=columns,
                  schema_name=UPLOAD_SCHEMA)
    return UploadedTable(ref=ref, table=table, sql_name=f"tap_upload_{index}", nrows=nrows,
                         copy_text=copy_text)


def _content(ref: UploadRef, parts: Mapping[str, bytes], fetched: Mapping[str, bytes]) -> bytes:
    if ref.url is not None:
        data = fetched.get(ref.url)
        if data is None:  # a caller bug: URLs are fetched before the tables are read
            raise RuntimeError(f"UPLOAD {ref.label}: {ref.url} was not fetched")
        return data
    data = parts.get(ref.part)
    if data is None:
        raise UsageError(f"UPLOAD {ref.label}: the request has no part named {ref.part!r} "
                         "(send the VOTable in a multipart POST, as that part)")
    return data


def inline_bytes(refs: Sequence[UploadRef], parts: Mapping[str, bytes]) -> int:
    """Bytes of the inline tables of ``refs`` (what is left of the limit goes to URL uploads)."""
    return sum(len(parts.get(ref.part, b"")) for ref in refs if ref.url is None)


def url_items(refs: Sequence[UploadRef]) -> list[tuple[str, str]]:
    """(label, url) of the tables uploaded by URL, in ``refs`` order: what to fetch."""
    return [(ref.label, ref.url) for ref in refs if ref.url is not None]


def check_bytes(refs: Sequence[UploadRef], parts: Mapping[str, bytes], max_bytes: int | None,
                fetched: Mapping[str, bytes] | None = None) -> None:
    """Every referenced part is there, and together they are within ``max_bytes``."""
    total = sum(len(_content(ref, parts, fetched or {})) for ref in refs)
    if max_bytes is not None and total > max_bytes:
        raise TooLargeError(f"UPLOAD: {total} bytes uploaded, more than the {max_bytes} this service accepts")


def read_uploads(refs: Sequence[UploadRef], parts: Mapping[str, bytes], limits: UploadLimits | None,
                 fetched: Mapping[str, bytes] | None = None) -> list[UploadedTable]:
    """Check the limits, then read every uploaded table (in ``refs`` order).

    ``parts`` holds the inline tables by part name, ``fetched`` those uploaded by URL, by URL.
    """
    fetched = fetched or {}
    check_bytes(refs, parts, None if limits is None else limits.max_bytes, fetched)
    tables = []
    rows_left = None if limits is None else limits.max_rows
    for i, ref in enumerate(refs):
        table = read_upload(ref, _content(ref, parts, fetched), i, max_rows=rows_left,
                            row_limit=None if limits is None else limits.max_rows,
                            max_columns=None if limits is None else limits.max_columns)
        if rows_left is not None:
            rows_left -= table.nrows
        tables.append(table)
    return tables


def upload_catalog(catalog: Catalog, uploads: Sequence[UploadedTable]) -> Catalog:
    """``catalog`` plus the uploaded tables, as ``TAP_UPLOAD.<name>`` stored in ``pg_temp``."""
    for up in uploads:
        catalog = catalog.with_table(up.table, sql_schema="pg_temp", sql_name=up.sql_name, default_frame=ICRS)
    return catalog
