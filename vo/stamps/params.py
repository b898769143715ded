"""The parameters of a stamps request (``/stamps/sync`` and ``/stamps/async``), read once.

Sources come from one of: ``POS``/``CIRCLE`` (repeatable; SODA syntax, ``CIRCLE lon lat radius``
in the ``POSSYS`` frame, the radius being the stamp's), ``SOURCES`` (a table, VOTable or CSV,
sent as a multipart file or a form field), or ``QUERY`` (ADQL run with the caller's rights).
See docs/stamps.md for every parameter. The sources of a table or a query are read by
:mod:`vo.stamps.sources`; this module only checks the request. No HTTP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vo.dali import DaliParams
from vo.errors import UsageError
from vo.shapes import Circle, Interval, parse_shape
from vo.stamps.stack import METHODS, SIZE_UNITS, StackScale
from vo.stamps.stamp import Options, Source
from vo.stamps.units import parse_unit

__all__ = ["StampParams", "circle_source"]

_BKG = ("median", "sigmaclip")
_FORMATS = ("fits", "cube")
#: arcsec: a larger target beam is no stamp any more
_MAX_BEAM = 3600.0


def circle_source(name: str, circle: Circle, possys: str) -> Source:
    """A source from a SODA circle in ``possys`` (ICRS or GALACTIC), converted to Galactic."""
    if possys == "GALACTIC":
        return Source(name, circle.lon % 360.0, circle.lat, circle.radius)
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    g = SkyCoord(circle.lon * u.deg, circle.lat * u.deg, frame="icrs").galactic
    return Source(name, float(g.l.deg), float(g.b.deg), circle.radius)


def _positive(p: DaliParams, name: str, scale: float = 1.0) -> float | None:
    text = p.single(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}: not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name}: must be a positive number, got {text!r}")
    return value * scale


@dataclass(frozen=True)
class StampParams:
    """A checked stamps request; ``circles`` are the sources given as parameters (Galactic)."""

    surveys: tuple[str, ...]
    options: Options
    circles: tuple[Source, ...] = ()
    query: str | None = None
    table: str | None = None
    possys: str = "ICRS"
    size: float | None = None
    stack: str | None = None
    format: str = "fits"
    #: STACKSIZE: each stamp scaled by the source's own size before stacking
    scale: StackScale | None = None

    @classmethod
    def from_params(cls, raw: dict[str, list[str]], *, max_radius: float, max_voxels: int,
                    sync: bool = False, table_file: bool = False) -> StampParams:
        """Check the request; ``table_file``: a SOURCES table was sent as a file with the job."""
        p = DaliParams(raw)
        surveys = tuple(dict.fromkeys(" ".join(s.split()) for s in p.repeated("SURVEY")))
        if not surveys:
            raise UsageError("SURVEY: missing; name at least one survey as 'name/transition' (e.g. 'Hi-GAL/160 um')")
        possys = p.possys()
        size = _positive(p, "SIZE")
        circles: list[Source] = []
        for name in ("POS", "CIRCLE"):
            for n, text in enumerate(p.repeated(name), start=len(circles) + 1):
                shape = parse_shape(text, name) if name == "POS" else Circle.parse(text, name)
                if not isinstance(shape, Circle):
                    raise UsageError(f"{name}: a stamp is centred on a point: give 'CIRCLE lon lat radius'")
                circles.append(circle_source(f"source{n}", shape, possys))
        query, table = p.single("QUERY"), p.single("SOURCES", strip=False)
        given = sum(bool(x) for x in (circles, query, table or table_file))
        if sync and (query or table or len(circles) != 1):
            raise UsageError("POS: /stamps/sync takes one position, 'CIRCLE lon lat radius'; "
                             "use /stamps/async for tables, queries or several positions")
        if sync and p.single("SAVE_AS"):  # read by the async runner (vo/jobs/save_as.py)
            raise UsageError("SAVE_AS: /stamps/sync does not keep tables; use /stamps/async to save the manifest")
        if given == 0 and not sync:
            raise UsageError("POS: missing; give positions (POS/CIRCLE), a table (SOURCES) or an ADQL QUERY")
        if given > 1:
            raise UsageError("POS: give the sources one way: POS/CIRCLE, SOURCES or QUERY")
        for src in circles:
            _check_radius(size or src.radius, max_radius)
        if size is not None:
            _check_radius(size, max_radius)
            circles = [Source(s.name, s.l, s.b, size) for s in circles]
        unit = parse_unit(p.single("UNIT"))
        bkg = (p.single("BKG") or "").lower() or None
        if bkg is not None and bkg not in _BKG:
            raise UsageError(f"BKG: unknown method {bkg!r}; expected median or sigmaclip")
        beam_text = p.single("BEAM")
        beam: str | float | None = None
        if beam_text is not None:
            beam = "largest" if beam_text.lower() == "largest" else _positive(p, "BEAM")
            if isinstance(beam, float) and beam > _MAX_BEAM:
                raise UsageError(f"BEAM: at most {_MAX_BEAM:g} arcsec, got {beam_text!r}")
        stack = (p.single("STACK") or "").lower() or None
        if stack is not None and stack not in METHODS:
            raise UsageError(f"STACK: unknown method {stack!r}; expected one of {', '.join(METHODS)}")
        scale = _stack_scale(p, stack, bool(query or table or table_file))
        fmt = (p.single("FORMAT") or "fits").lower()
        if fmt not in _FORMATS:
            raise UsageError(f"FORMAT: unknown format {fmt!r}; expected fits or cube")
        gridsys = (p.single("GRIDSYS") or "GALACTIC").upper()
        if gridsys not in ("GALACTIC", "ICRS"):
            raise UsageError(f"GRIDSYS: unknown frame {gridsys!r}; expected GALACTIC or ICRS")
        # a stack and a cube need every stamp on one grid centred on its source
        regrid = p.flag("REGRID") or stack is not None or fmt == "cube"
        velo, band = p.single("VELO"), p.single("BAND")
        options = Options(unit=unit, bkg=bkg, regrid=regrid, frame=gridsys.lower(),
                          pixel=_positive(p, "PIXSCALE", 1 / 3600), beam=beam,
                          velo=Interval.parse(velo, "VELO") if velo else None,
                          band=Interval.parse(band, "BAND") if band else None, max_voxels=max_voxels)
        return cls(surveys, options, tuple(circles), query, table, possys, size, stack, fmt, scale)


def _stack_scale(p: DaliParams, stack: str | None, has_columns: bool) -> StackScale | None:
    """``STACKSIZE`` (a column), ``STACKSIZEUNIT`` and ``STACKCOMMON`` (the common size, same unit)."""
    column = p.single("STACKSIZE")
    unit = (p.single("STACKSIZEUNIT") or "arcsec").lower()
    if column is None:
        for name in ("STACKSIZEUNIT", "STACKCOMMON"):
            if p.single(name) is not None:
                raise UsageError(f"{name}: needs STACKSIZE, the column of each source's size")
        return None
    if stack is None:
        raise UsageError("STACKSIZE: scales the stamps of a stack; give STACK too")
    if not has_columns:
        raise UsageError("STACKSIZE: names a column of the SOURCES table or the QUERY's rows; positions have none")
    if unit not in SIZE_UNITS:
        raise UsageError(f"STACKSIZEUNIT: unknown unit {unit!r}; expected one of {', '.join(SIZE_UNITS)}")
    common = _positive(p, "STACKCOMMON", SIZE_UNITS[unit])
    return StackScale(column.strip(), unit, common)


def _check_radius(radius: float, max_radius: float) -> None:
    if radius > max_radius:
        raise UsageError(f"SIZE: the stamp radius {radius:g} deg is larger than the {max_radius:g} deg allowed")
