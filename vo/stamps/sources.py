"""The sources of an async stamps job: a table the user sent, or the rows of an ADQL query.

A table (VOTable or CSV, read with astropy) or a query result names its columns by role,
case-insensitively: the name (``name``, ``designation``, ``source``, ``id``), the position as
``glon``/``glat`` or ``l``/``b`` (Galactic), ``ra``/``dec`` (ICRS), or ``lon``/``lat`` (in the
request's ``POSSYS``), and optionally the stamp radius in degrees (``radius``); ``SIZE``
overrides it and is needed when there is none. ``STACKSIZE`` names a column of each source's
own size (:class:`vo.stamps.stack.StackScale`). Sources are yielded one at a time, and more
than ``max_sources`` is a UsageError raised when the limit is passed.

The query runs through the one results path (:func:`vo.results.stream_select_blocking`) in the
caller's session, with their rights, written as CSV into a temporary file and read back row by
row, so a long answer never sits in memory.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from array import array
from collections.abc import Iterator, Sequence

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import ascii as astropy_ascii
from astropy.io.votable import parse_single_table

from vo.caller import Caller
from vo.errors import UsageError
from vo.results import Connect, stream_select_blocking
from vo.stamps.stack import StackScale
from vo.stamps.stamp import Source
from vo.tap import TapQuery, plan_query

__all__ = ["query_sources", "table_sources"]

_NAMES = ("name", "designation", "source", "source_name", "id", "source_id")
_FRAMES = (("glon", "glat", "GALACTIC"), ("l", "b", "GALACTIC"), ("ra", "dec", "ICRS"))


def _roles(columns: Sequence[str], possys: str, what: str) -> tuple[str | None, str, str, str, str | None]:
    """``(name, lon, lat, frame, radius)`` column names among ``columns``."""
    lower = {c.lower(): c for c in columns}
    name = next((lower[n] for n in _NAMES if n in lower), None)
    for lon, lat, frame in (*_FRAMES, ("lon", "lat", possys)):
        if lon in lower and lat in lower:
            return name, lower[lon], lower[lat], frame, lower.get("radius")
    raise UsageError(f"{what}: no position columns; name them glon/glat, ra/dec or lon/lat "
                     f"(got {', '.join(columns) or 'no columns'})")


def _number(value: object, column: str, row: int, what: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{what}: row {row}: {column} is not a number: {value!r}") from None
    if not math.isfinite(out):
        raise UsageError(f"{what}: row {row}: {column} is blank or not finite")
    return out


def _source(row: int, name: object, lon: float, lat: float, frame: str, radius: float | None,
            max_radius: float, what: str, size: float | None = None) -> Source:
    if not -90 <= lat <= 90:
        raise UsageError(f"{what}: row {row}: latitude {lat:g} is outside [-90, 90]")
    if radius is None:
        raise UsageError(f"{what}: row {row}: no radius; give SIZE (degrees) or a radius column")
    if radius <= 0 or radius > max_radius:
        raise UsageError(f"{what}: row {row}: the stamp radius {radius:g} deg is not in (0, {max_radius:g}]")
    if frame == "GALACTIC":
        l, b = lon % 360.0, lat  # noqa: E741 - Galactic longitude
    else:
        g = SkyCoord(lon * u.deg, lat * u.deg, frame="icrs").galactic
        l, b = float(g.l.deg), float(g.b.deg)  # noqa: E741
    text = str(name).strip() if name is not None and str(name).strip() not in ("", "--") else f"source{row}"
    return Source(text[:64], l, b, radius, size)


def _size_column(columns: Sequence[str], scale: StackScale | None) -> str | None:
    if scale is None:
        return None
    lower = {c.lower(): c for c in columns}
    if scale.column.lower() not in lower:
        raise UsageError(f"STACKSIZE: no column {scale.column!r} among {', '.join(columns) or 'no columns'}")
    return lower[scale.column.lower()]


def _rows(rows: Iterator[dict[str, object]], columns: Sequence[str], possys: str, size: float | None,
          max_radius: float, max_sources: int, what: str, scale: StackScale | None = None) -> Iterator[Source]:
    name, lon, lat, frame, radius = _roles(columns, possys, what)
    sized = _size_column(columns, scale)
    for n, row in enumerate(rows, start=1):
        if n > max_sources:
            raise UsageError(f"{what}: more than {max_sources} sources; split the request (VLKB_STAMPS_MAX_SOURCES)")
        r = size if size is not None else (_number(row[radius], radius, n, what) if radius else None)
        own = None
        if sized is not None and scale is not None:
            own = _number(row[sized], sized, n, what) * scale.to_deg
            if own <= 0:
                raise UsageError(f"{what}: row {n}: {sized} (STACKSIZE) must be positive")
        yield _source(n, row.get(name) if name else None, _number(row[lon], lon, n, what),
                      _number(row[lat], lat, n, what), frame, r, max_radius, what, own)


def table_sources(data: bytes, *, possys: str, size: float | None, max_radius: float,
                  max_sources: int, scale: StackScale | None = None) -> Iterator[Source]:
    """The sources of an uploaded table (VOTable when it starts with ``<``, CSV otherwise)."""
    what = "SOURCES"
    text = data.lstrip()
    if not text:
        raise UsageError(f"{what}: the table is empty")
    try:
        if text.startswith(b"<"):
            table = parse_single_table(io.BytesIO(data)).to_table()
        else:
            table = astropy_ascii.read(data.decode("utf-8"), format="csv", fast_reader=False)
    except UnicodeDecodeError:
        raise UsageError(f"{what}: the CSV table is not UTF-8 text") from None
    except Exception as exc:  # astropy raises many kinds for a malformed table; all are the user's
        raise UsageError(f"{what}: cannot read the table as VOTable or CSV: {str(exc).splitlines()[0][:200]}") from None
    columns = list(table.colnames)

    def rows() -> Iterator[dict[str, object]]:
        for row in table:
            yield {c: (None if np.ma.is_masked(row[c]) else row[c]) for c in columns}

    return _rows(rows(), columns, possys, size, max_radius, max_sources, what, scale)


def query_sources(connect: Connect, query: str, caller: Caller, *, possys: str, size: float | None,
                  max_radius: float, max_sources: int, timeout: float | None,
                  max_query_length: int | None = None,
                  scale: StackScale | None = None) -> tuple[Iterator[Source], int, float | None]:
    """The sources in the rows of the ADQL ``query``, run for ``caller`` (through :mod:`vo.results`),
    their number (the spooled rows are counted first, so progress and result listing know N) and,
    with a ``STACKSIZE`` and no common size, the median of their sizes (degrees)."""
    q = TapQuery.from_params({"QUERY": [query], "LANG": ["ADQL"], "RESPONSEFORMAT": ["csv"],
                              "MAXREC": [str(max_sources + 1)]}, maxrec_default=max_sources + 1,
                             maxrec_limit=max_sources + 1, max_query_length=max_query_length)
    plan, _ = plan_query(q)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the generator below
    try:
        for chunk in stream_select_blocking(connect, plan, caller, timeout=timeout):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")  # owns the spool from here
    count = max(0, sum(1 for _ in csv.reader(text)) - 1)
    text.seek(0)
    reader = csv.DictReader(text)
    columns = list(reader.fieldnames or [])
    median = None
    if scale is not None and scale.common is None:
        sizes = array("d", (s.size or 0.0 for s in _rows(iter(reader), columns, possys, size, max_radius,
                                                           max_sources, "QUERY", scale)))
        median = float(np.median(sizes)) if len(sizes) else None
        text.seek(0)
        reader = csv.DictReader(text)

    def rows() -> Iterator[dict[str, object]]:
        with text:
            yield from reader

    return _rows(rows(), columns, possys, size, max_radius, max_sources, "QUERY", scale), count, median
