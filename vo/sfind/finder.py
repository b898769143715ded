"""The one small interface every source finder implements, and what goes in and out of it.

A finder is an *app*: it describes its options (:class:`~vo.sfind.options.Option`) and runs on
one 2D image with its celestial WCS and beam (:class:`FinderImage`), returning the components
it found (:class:`Components`, positions in the image's own celestial frame) with the
background and noise maps it used. Everything around a run (reading the pixels through the
cutout engine, stitching tiles, converting frames, writing catalogues, cross-matching) is the
engine's job (:mod:`vo.sfind.run`), so a new finder, including one that runs a container, is
one module with one class and a line in :func:`vo.sfind.registry.finders`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from vo.sfind.options import Option, OptionValue

__all__ = ["COMPONENT_FIELDS", "Components", "Finder", "FinderImage", "FinderOutput"]

#: the columns of :class:`Components`, each a float array (flags an int array)
COMPONENT_FIELDS = ("lon", "lat", "err_lon", "err_lat", "peak", "err_peak", "flux", "err_flux",
                    "a", "b", "pa", "local_rms", "background", "flags")


@dataclass(frozen=True)
class FinderImage:
    """One 2D image to search: pixels (NaN where blank), its header (celestial WCS, BMAJ/BMIN/BPA
    in degrees, BUNIT), and a FITS file of the same, for finders that read files."""

    data: np.ndarray
    header: fits.Header
    path: Path
    #: where a finder may write scratch files (removed by the engine)
    workdir: Path

    @property
    def wcs(self) -> WCS:
        return WCS(self.header).celestial

    @property
    def beam(self) -> tuple[float, float, float]:
        """(major FWHM, minor FWHM, position angle), degrees."""
        h = self.header
        return float(h["BMAJ"]), float(h.get("BMIN", h["BMAJ"])), float(h.get("BPA", 0.0))


@dataclass
class Components:
    """The components of one run, one array per column, in the image's celestial frame.

    ``lon``/``lat`` and their errors in degrees; ``peak`` in image units (e.g. Jy/beam),
    ``flux`` the integrated flux (Jy for Jy/beam images, image units times beam areas otherwise);
    ``a``/``b`` FWHM in arcsec; ``pa`` in degrees from the frame's north through east;
    ``local_rms`` and ``background`` in image units; ``flags`` the finder's own (0: clean).
    """

    lon: np.ndarray
    lat: np.ndarray
    err_lon: np.ndarray
    err_lat: np.ndarray
    peak: np.ndarray
    err_peak: np.ndarray
    flux: np.ndarray
    err_flux: np.ndarray
    a: np.ndarray
    b: np.ndarray
    pa: np.ndarray
    local_rms: np.ndarray
    background: np.ndarray
    flags: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, float]]) -> Components:
        cols = {f: np.array([r[f] for r in rows], dtype=np.int64 if f == "flags" else np.float64)
                for f in COMPONENT_FIELDS}
        return cls(**cols)

    def __len__(self) -> int:
        return len(self.lon)

    def select(self, mask: np.ndarray) -> Components:
        return Components(**{f: getattr(self, f)[mask] for f in COMPONENT_FIELDS})

    @staticmethod
    def concat(parts: Sequence[Components]) -> Components:
        if not parts:
            return Components.from_rows([])
        return Components(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in COMPONENT_FIELDS})


@dataclass
class FinderOutput:
    """What a run gives back: the components and the maps the finder used (None if it made none)."""

    components: Components
    background: np.ndarray | None = None
    rms: np.ndarray | None = None
    residual: np.ndarray | None = None
    #: anything worth keeping in the report (e.g. the finder's own settings it derived)
    notes: dict[str, object] = field(default_factory=dict)


class Finder(Protocol):
    """A source finder: a name, a version, its options, and a run."""

    #: the app name users pass as APP (lower case)
    name: str
    #: one line for the app list
    title: str

    def version(self) -> str:
        """The version of the code that finds the sources (for the report)."""
        ...

    def options(self) -> Sequence[Option]:
        """Every option, with its type, default, range and description."""
        ...

    def run(self, image: FinderImage, options: Mapping[str, OptionValue]) -> FinderOutput:
        """Find the sources of ``image`` with validated ``options``; raise UsageError for an image
        the finder cannot search (it is the user's), anything else is a fault of the finder."""
        ...
