"""DALI 1.1 values as SIA and SODA parameters carry them: numbers, intervals and sky shapes.

Parsing is strict and each problem is a :class:`~vo.errors.UsageError` naming the parameter:
numbers follow DALI 1.1 section 3.2 (no NaN, no ``1_000``), intervals (section 3.5) have two
numbers with ``lo <= hi`` and may be open with ``-Inf``/``+Inf``, shapes are the SIA 2.0
``POS`` forms (section 2.2: ``CIRCLE lon lat r``, ``RANGE lon1 lon2 lat1 lat2``,
``POLYGON lon1 lat1 ...``) in degrees; a RANGE whose first longitude exceeds the second crosses
0 (DALI 1.2 section 3.9: ``359 1 -1 1`` is 2 degrees wide; DALI 1.1 has no range type and SIA
2.0 is silent). ``to_text()`` is the exact inverse of ``parse`` (up to that unwrapping), so a
UWS job's parameters round-trip. No SQL and no frame handling here: a shape is just numbers.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from vo.errors import UsageError

__all__ = [
    "Circle",
    "Interval",
    "Polygon",
    "Range",
    "Shape",
    "format_number",
    "parse_number",
    "parse_shape",
]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_POS_INF = {"inf", "+inf", "infinity", "+infinity"}
_NEG_INF = {"-inf", "-infinity"}


def parse_number(token: str, name: str, *, infinite: bool = False, lo: float | None = None,
                 hi: float | None = None) -> float:
    """One DALI number; ``infinite`` admits ``-Inf``/``+Inf`` (open interval ends); ``lo``/``hi``
    bound a finite value (the one helper for "finite and in range": every number a user sends that
    feeds arithmetic is read here, so nothing downstream meets NaN or overflows)."""
    low = token.lower()
    if low in _POS_INF or low in _NEG_INF:
        if not infinite:
            raise UsageError(f"{name}: {token!r} must be a finite number")
        return math.inf if low in _POS_INF else -math.inf
    if not _NUMBER.fullmatch(token):
        raise UsageError(f"{name}: {token!r} is not a number")
    value = float(token)
    if not math.isfinite(value):
        raise UsageError(f"{name}: {token!r} is out of range")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low, high = ("-Inf" if lo is None else f"{lo:g}"), ("+Inf" if hi is None else f"{hi:g}")
        raise UsageError(f"{name}: {token!r} is outside [{low}, {high}]")
    return value


def format_number(value: float) -> str:
    """The shortest text that parses back to ``value`` (``+Inf``/``-Inf`` for infinities)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _numbers(text: str, name: str, *, infinite: bool = False) -> list[float]:
    return [parse_number(t, name, infinite=infinite) for t in text.split()]


def _check_lat(value: float, name: str) -> None:
    if not -90.0 <= value <= 90.0:
        raise UsageError(f"{name}: latitude {format_number(value)} is outside [-90, 90]")


def _check_lon(value: float, name: str) -> None:
    # Longitudes are taken modulo 360; -360..720 leaves room for ranges written across 0
    # (e.g. -0.5 0.5, as the ViaLactea client sends) and rejects obvious nonsense.
    if not -360.0 <= value <= 720.0:
        raise UsageError(f"{name}: longitude {format_number(value)} is outside [-360, 720]")


class Interval(BaseModel):
    """A numeric interval ``[lo, hi]``; either end may be infinite (open)."""

    model_config = ConfigDict(frozen=True)
    lo: float
    hi: float

    @classmethod
    def parse(cls, text: str, name: str) -> Interval:
        """``"lo hi"`` (DALI 1.1 section 3.5), or one number for the interval ``[v, v]``."""
        values = _numbers(text, name, infinite=True)
        if len(values) == 1:
            if math.isinf(values[0]):
                raise UsageError(f"{name}: a single value must be finite, got {text.strip()!r}")
            values = values * 2
        if len(values) != 2:
            raise UsageError(f"{name}: expected an interval 'min max', got {len(values)} values")
        lo, hi = values
        if lo > hi:
            raise UsageError(f"{name}: min {format_number(lo)} is greater than max {format_number(hi)}")
        return cls(lo=lo, hi=hi)

    def to_text(self) -> str:
        return f"{format_number(self.lo)} {format_number(self.hi)}"


class Circle(BaseModel):
    """A cone: centre (lon, lat) and radius, degrees."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["CIRCLE"] = "CIRCLE"
    lon: float
    lat: float
    radius: float

    @classmethod
    def parse(cls, text: str, name: str) -> Circle:
        """``"lon lat radius"`` (the DALI circle value, without the CIRCLE keyword)."""
        values = _numbers(text, name)
        if len(values) != 3:
            raise UsageError(f"{name}: a circle needs 3 numbers (lon lat radius), got {len(values)}")
        lon, lat, radius = values
        _check_lon(lon, name)
        _check_lat(lat, name)
        if radius <= 0:
            raise UsageError(f"{name}: the radius must be positive, got {format_number(radius)}")
        if radius > 180:
            raise UsageError(f"{name}: the radius must be at most 180 degrees, got {format_number(radius)}")
        return cls(lon=lon, lat=lat, radius=radius)

    def to_text(self) -> str:
        return f"CIRCLE {' '.join(map(format_number, (self.lon, self.lat, self.radius)))}"


class Range(BaseModel):
    """A longitude/latitude box, degrees: ``lon1 <= lon <= lon2``, ``lat1 <= lat <= lat2``.

    Longitudes may run past 0 or 360 (``-0.5 0.5`` crosses 0); infinite ends mean unbounded. A range
    written with ``lon1 > lon2`` (``359.5 0.5``) wraps through 0 and is kept as ``359.5 360.5``.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["RANGE"] = "RANGE"
    lon1: float
    lon2: float
    lat1: float
    lat2: float

    @classmethod
    def parse(cls, text: str, name: str) -> Range:
        """``"lon1 lon2 lat1 lat2"`` (SIA 2.0 section 2.2)."""
        values = _numbers(text, name, infinite=True)
        if len(values) != 4:
            raise UsageError(f"{name}: a range needs 4 numbers (lon1 lon2 lat1 lat2), got {len(values)}")
        lon1, lon2, lat1, lat2 = values
        for lon in (lon1, lon2):
            if math.isfinite(lon):
                _check_lon(lon, name)
        for lat in (lat1, lat2):
            if math.isfinite(lat):
                _check_lat(lat, name)
        if lon1 > lon2 and math.isfinite(lon1) and math.isfinite(lon2):
            # DALI 1.2 (PR-20251024, section 3.9 Range): "359 1 -1 1" is the small range from 359 across the
            # meridian to 1. Stored unwrapped (lon2 + 360) so every consumer sees lon1 <= lon2.
            width = (lon2 - lon1) % 360.0
            if width == 0.0:
                raise UsageError(
                    f"{name}: longitude range {format_number(lon1)} {format_number(lon2)} is ambiguous; "
                    "write 0 360 for every longitude"
                )
            lon2 = lon1 + width
        elif lon1 > lon2:
            raise UsageError(f"{name}: longitude min {format_number(lon1)} is greater than max {format_number(lon2)}")
        if lat1 > lat2:
            raise UsageError(f"{name}: latitude min {format_number(lat1)} is greater than max {format_number(lat2)}")
        return cls(lon1=lon1, lon2=lon2, lat1=lat1, lat2=lat2)

    @property
    def full_longitude(self) -> bool:
        """Whether the range covers every longitude."""
        return self.lon2 - self.lon1 >= 360.0

    def to_text(self) -> str:
        return f"RANGE {' '.join(map(format_number, (self.lon1, self.lon2, self.lat1, self.lat2)))}"


class Polygon(BaseModel):
    """A spherical polygon (great-circle edges), vertices in degrees."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["POLYGON"] = "POLYGON"
    vertices: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, text: str, name: str) -> Polygon:
        """``"lon1 lat1 lon2 lat2 ..."``: at least three vertices (the DALI polygon value)."""
        values = _numbers(text, name)
        if len(values) % 2:
            raise UsageError(f"{name}: a polygon needs pairs of numbers (lon lat ...), got {len(values)} numbers")
        if len(values) < 6:
            raise UsageError(f"{name}: a polygon needs at least 3 vertices, got {len(values) // 2}")
        pairs = tuple(zip(values[0::2], values[1::2], strict=True))
        for lon, lat in pairs:
            _check_lon(lon, name)
            _check_lat(lat, name)
        return cls(vertices=pairs)

    def to_text(self) -> str:
        return "POLYGON " + " ".join(f"{format_number(a)} {format_number(b)}" for a, b in self.vertices)


Shape = Annotated[Circle | Range | Polygon, Field(discriminator="kind")]

_SHAPES: dict[str, type[Circle] | type[Range] | type[Polygon]] = {
    "CIRCLE": Circle, "RANGE": Range, "POLYGON": Polygon,
}


def parse_shape(text: str, name: str) -> Circle | Range | Polygon:
    """A ``POS`` value: ``CIRCLE ...``, ``RANGE ...`` or ``POLYGON ...`` (keyword in any case)."""
    words = text.split(None, 1)
    if not words:
        raise UsageError(f"{name}: empty shape")
    kind = _SHAPES.get(words[0].upper())
    if kind is None:
        raise UsageError(f"{name}: unknown shape {words[0]!r}; expected CIRCLE, RANGE or POLYGON")
    return kind.parse(words[1] if len(words) > 1 else "", name)
