"""SODA 1.0 synchronous cutouts: the parameters (section 3) and the cut of one dataset.

:class:`SodaParams` parses a case-folded parameter dict: exactly one ``ID`` (several give
``MultiValuedParamNotSupported``, section 5.2: sync answers one file); at most one of ``POS``
(``CIRCLE``/``RANGE``/``POLYGON``), ``CIRCLE`` and ``POLYGON`` (section 3.3); ``BAND`` (metres,
section 3.3.5), ``TIME`` (MJD, 3.3.6) as DALI intervals; ``POL`` (3.3.7, repeatable: the states
to keep); ``PIXELS`` (``[lo:hi]`` per FITS axis, 1-based inclusive, ``[*]`` for a whole axis,
also the comma form ``[lo:hi,lo:hi]``); and the vlkb extensions ``POSSYS`` (``ICRS``, the
default, or ``GALACTIC``: the frame of the sky shapes, as the ViaLactea client sends) and
``VELO`` (``vl vu``, LSRK radio velocity in km/s, cubes only). Every constraint narrows the
cut. :func:`cutout` plans the cut of one dataset's file with provenance keywords; the pixels
are read later, by the caller, through :meth:`vo.cutout.Cutout.chunks`.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vo.cutout import Cutout, CutRequest, plan
from vo.errors import MultiValuedParamNotSupported, UsageError
from vo.shapes import Circle, Interval, Polygon, Range, parse_shape
from vo.sia import POL_STATES, POSSYS

__all__ = ["SodaParams", "cutout", "filename", "parse_pixels", "service_version"]

_PIXEL_GROUP = re.compile(r"\[([^\[\]]*)\]")


def service_version() -> str:
    """The installed vlkb version (VLKBVER in cutouts)."""
    try:
        return version("vlkb")
    except PackageNotFoundError:  # running from a source tree without metadata
        return "0+unknown"


def _pixel_range(text: str) -> tuple[int | None, int | None]:
    text = text.strip()
    if text == "*":
        return None, None
    parts = text.split(":")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise UsageError(f"PIXELS: {text!r} is not a range 'lo:hi'")
    out: list[int | None] = []
    for part in parts:
        part = part.strip()
        if part in ("", "*"):
            out.append(None)
            continue
        if not re.fullmatch(r"[+]?\d+", part):
            raise UsageError(f"PIXELS: {part!r} is not a pixel index (1-based integer)")
        value = int(part)
        if value < 1:
            raise UsageError(f"PIXELS: pixel indices start at 1, got {value}")
        out.append(value)
    lo, hi = out
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"PIXELS: lower index {lo} is greater than upper index {hi}")
    return lo, hi


def parse_pixels(text: str) -> tuple[tuple[int | None, int | None], ...]:
    """``[10:50] [20:60] [*]`` (or ``[10:50,20:60]``): one range per FITS axis, in axis order."""
    groups = _PIXEL_GROUP.findall(text)
    if not groups or _PIXEL_GROUP.sub("", text).strip(" ,"):
        raise UsageError(f"PIXELS: expected ranges like '[10:50] [20:60]', got {text.strip()!r}")
    return tuple(_pixel_range(part) for group in groups for part in group.split(","))


class SodaParams(BaseModel):
    """One synchronous SODA request (SODA 1.0 section 3)."""

    model_config = ConfigDict(frozen=True)
    id: str
    region: Circle | Range | Polygon | None = None
    possys: str = "ICRS"
    band: Interval | None = None
    time: Interval | None = None
    pol: tuple[str, ...] = ()
    pixels: tuple[tuple[int | None, int | None], ...] = ()
    velo: Interval | None = None

    @classmethod
    def from_params(cls, raw: dict[str, list[str]]) -> SodaParams:
        """Validate the parameters; every problem is a UsageError naming the parameter."""

        def values(name: str) -> list[str]:
            vals = [v for v in raw.get(name, []) if v.strip()]
            for v in vals:
                if "\x00" in v:
                    raise UsageError(f"{name}: the value contains a NUL character")
            return vals

        def single(name: str) -> str | None:
            vals = values(name)
            if len(vals) > 1:
                raise MultiValuedParamNotSupported(f"{name}: given {len(vals)} times; a sync cutout takes one")
            return vals[0] if vals else None

        ids = values("ID")
        if not ids:
            raise UsageError("ID: missing; give the publisher DID of the dataset to cut")
        ident = single("ID")
        assert ident is not None
        shapes = [(name, text) for name in ("POS", "CIRCLE", "POLYGON") if (text := single(name)) is not None]
        if len(shapes) > 1:
            raise MultiValuedParamNotSupported(
                f"{' and '.join(n for n, _ in shapes)}: give one spatial constraint per sync cutout")
        region: Circle | Range | Polygon | None = None
        if shapes:
            name, text = shapes[0]
            region = {"POS": parse_shape, "CIRCLE": Circle.parse, "POLYGON": Polygon.parse}[name](text, name)
        possys = (single("POSSYS") or "ICRS").strip().upper()
        if possys not in POSSYS:
            raise UsageError(f"POSSYS: unknown coordinate system {possys!r}; expected ICRS or GALACTIC")
        pol = tuple(dict.fromkeys(s.strip().upper() for v in values("POL") for s in v.split()))
        for state in pol:
            if state not in POL_STATES:
                raise UsageError(f"POL: unknown polarization state {state!r}; expected one of {' '.join(POL_STATES)}")
        band, time, velo, pixels = single("BAND"), single("TIME"), single("VELO"), single("PIXELS")
        return cls(
            id=ident.strip(),
            region=region,
            possys=possys,
            band=Interval.parse(band, "BAND") if band else None,
            time=Interval.parse(time, "TIME") if time else None,
            pol=pol,
            pixels=parse_pixels(pixels) if pixels else (),
            velo=Interval.parse(velo, "VELO") if velo else None,
        )

    def region_text(self) -> str:
        """The request's constraints as text, for the provenance keywords."""
        parts = []
        if self.region is not None:
            parts.append(f"{self.region.to_text()} {self.possys}")
        for name, iv in (("BAND", self.band), ("TIME", self.time), ("VELO", self.velo)):
            if iv is not None:
                parts.append(f"{name} {iv.to_text()}")
        if self.pol:
            parts.append("POL " + " ".join(self.pol))
        if self.pixels:
            parts.append("PIXELS " + " ".join(
                f"[{'*' if lo is None else lo}:{'*' if hi is None else hi}]" for lo, hi in self.pixels))
        return "; ".join(parts) or "whole dataset"

    def cut_request(self) -> CutRequest:
        return CutRequest(region=self.region, frame=self.possys.lower(), band=self.band, velo=self.velo,
                          time=self.time, pol=self.pol, pixels=self.pixels)


def cutout(path: Path, did: str, q: SodaParams) -> Cutout:
    """Plan the cut of the dataset ``did`` stored at ``path`` (reads its header only)."""
    region = q.region_text()
    provenance = {
        "VLKBSRC": (did, "source dataset (publisher DID)"),
        "VLKBREG": (region, "region cut (SODA parameters)"),
        "VLKBVER": (service_version(), "vlkb version that made this cutout"),
    }
    return plan(path, q.cut_request(), provenance, history=f"vlkb SODA cutout of {did}: {region}")


def filename(did: str) -> str:
    """The download name of a cutout of ``did``: ``<file stem>_cutout.fits``."""
    stem = Path(did.rsplit("?", 1)[-1].rsplit("/", 1)[-1]).stem or "dataset"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", stem) + "_cutout.fits"
