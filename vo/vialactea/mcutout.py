"""The ViaLactea multi-cutout request and its report: JSON in, SODA cutouts and a JSON report out.

The client (``MCutoutSummary``) posts one multipart part, ``mcutout``, holding a JSON array of
cut requests::

    [{"id": "ivo://...?hi-gal-70um/tile.fits", "possys": "GALACTIC",
      "pos": {"circle": {"lon": 10.1, "lat": 0.2, "radius": 0.05}}},
     {"id": "...", "pos": {"range": {"lon1": 10.0, "lon2": 10.2, "lat1": -0.1, "lat2": 0.1}},
      "velo": {"vl": -20, "vu": 40}}]

:func:`parse_request` checks the document as a whole (JSON, an array of objects, not too many):
a bad document refuses the job. :func:`parse_entry` turns one element into the
:class:`~vo.soda.SodaParams` of a sync cutout; a bad element fails only its own cut, which the
report says. ``possys`` defaults to ``GALACTIC`` (the client's frame); ``velo`` (LSRK radio
velocity, km/s, as ``{"vl","vu"}``, ``[vl, vu]`` or ``"vl vu"``) and ``band`` (metres, the
same forms with ``lo``/``hi``) narrow the cut of a cube as SODA's VELO and BAND do.

The report is a JSON array in request order, one object per element: ``index`` (0-based),
``input`` (the element as sent), ``type`` (``filename`` for a cut in the archive, else the
failure's DALI code, e.g. ``NotFoundFault``) and ``value`` (the file name in the archive, or
the reason). No HTTP and no SQL here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from vo.errors import UsageError, VlkbError
from vo.shapes import Circle, Interval, Range, format_number
from vo.sia import POSSYS
from vo.soda import SodaParams, filename

__all__ = ["FILENAME", "failure", "member_name", "parse_entry", "parse_request", "success"]

#: the report ``type`` of a cut that is in the archive (the client compares case-insensitively)
FILENAME = "filename"


#: deepest nesting of a request document: the client's is 4 (``[{"pos": {"circle": {...}}}]``)
MAX_DEPTH = 16


def _no_constant(name: str) -> float:
    raise UsageError(f"mcutout: {name} is not a number (JSON has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UsageError(f"mcutout: the number {text} is out of range")
    return value


def _check_tree(doc: object) -> None:
    """UsageError when ``doc`` nests deeper than :data:`MAX_DEPTH` or holds a NUL character
    (which no DID has and PostgreSQL text cannot store). Iterative: depth is what is checked."""
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise UsageError("mcutout: a string of the document contains a NUL character")
        elif isinstance(value, (list, dict)):
            if depth > MAX_DEPTH:
                raise UsageError(f"mcutout: the document nests deeper than {MAX_DEPTH} levels")
            items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))


def parse_request(data: bytes | str, *, max_cuts: int) -> list[Any]:
    """The elements of a multi-cutout document; UsageError when it is not a JSON array (of objects),
    nests too deep, or holds NaN, Infinity or a number out of the double range."""
    try:
        doc = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # CPython's decoder is recursive: a deep document fails before _check_tree
        raise UsageError(f"mcutout: the document nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"mcutout: not valid JSON: {exc}") from None
    _check_tree(doc)
    if not isinstance(doc, list):
        raise UsageError(f"mcutout: expected a JSON array of cutout requests, got a {type(doc).__name__}")
    if not doc:
        raise UsageError("mcutout: the array of cutout requests is empty")
    if len(doc) > max_cuts:
        raise UsageError(f"mcutout: {len(doc)} cutouts requested; at most {max_cuts} per job")
    for n, item in enumerate(doc):
        if not isinstance(item, dict):
            raise UsageError(f"mcutout: element {n} is a {type(item).__name__}, not a JSON object")
    return doc


def _number(value: object, name: str) -> str:
    """A JSON number (or numeric string) as text for the shape parsers, which check it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{name}: expected a number, got {json.dumps(value)}")
    if isinstance(value, str):
        return value.strip()
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the double range
        raise UsageError(f"{name}: the number is out of range") from None
    if not math.isfinite(number):
        raise UsageError(f"{name}: expected a finite number")
    return format_number(number)


def _numbers(obj: object, keys: tuple[str, ...], name: str) -> str:
    if not isinstance(obj, Mapping):
        raise UsageError(f"{name}: expected an object with {', '.join(keys)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise UsageError(f"{name}: missing {', '.join(missing)}")
    return " ".join(_number(obj[k], f"{name}.{k}") for k in keys)


def _region(pos: object) -> Circle | Range:
    if not isinstance(pos, Mapping) or len(pos) != 1 or next(iter(pos)) not in ("circle", "range"):
        raise UsageError('pos: expected {"circle": {lon, lat, radius}} or {"range": {lon1, lon2, lat1, lat2}}')
    kind, value = next(iter(pos.items()))
    if kind == "circle":
        return Circle.parse(_numbers(value, ("lon", "lat", "radius"), "pos.circle"), "pos.circle")
    return Range.parse(_numbers(value, ("lon1", "lon2", "lat1", "lat2"), "pos.range"), "pos.range")


def _interval(value: object, keys: tuple[str, str], name: str) -> Interval:
    if isinstance(value, str):
        return Interval.parse(value, name)
    if isinstance(value, list):
        if len(value) != 2:
            raise UsageError(f"{name}: expected two numbers, got {len(value)}")
        return Interval.parse(" ".join(_number(v, name) for v in value), name)
    return Interval.parse(_numbers(value, keys, name), name)


def parse_entry(item: Mapping[str, Any]) -> SodaParams:
    """The sync cutout one element asks for; UsageError naming the field when it is malformed."""
    ident = item.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise UsageError("id: missing; give the publisher DID of the dataset to cut")
    possys = item.get("possys", "GALACTIC")
    if not isinstance(possys, str) or possys.strip().upper() not in POSSYS:
        raise UsageError(f"possys: expected ICRS or GALACTIC, got {json.dumps(possys)}")
    if "pos" not in item:
        raise UsageError("pos: missing; give a circle or a range")
    velo = item.get("velo")
    band = item.get("band")
    return SodaParams(
        id=ident.strip(), region=_region(item["pos"]), possys=possys.strip().upper(),
        velo=None if velo is None else _interval(velo, ("vl", "vu"), "velo"),
        band=None if band is None else _interval(band, ("lo", "hi"), "band"),
    )


def member_name(index: int, did: str) -> str:
    """The archive member of cut ``index`` (0-based): ordered, unique, named after the source file."""
    return f"{index + 1:04d}_{filename(did)}"


def success(index: int, item: object, name: str) -> dict[str, Any]:
    """The report entry of a cut written to the archive as ``name``."""
    return {"index": index, "input": item, "type": FILENAME, "value": name}


def failure(index: int, item: object, exc: VlkbError) -> dict[str, Any]:
    """The report entry of a cut that failed: the DALI code and the reason."""
    return {"index": index, "input": item, "type": exc.code, "value": exc.message}
