"""Stacked stamps: the stamps of one survey, aligned on their centres, combined pixel by pixel.

Stamps reach the stack on one grid centred on their sources (``REGRID``: every stamp of a
survey has the same shape and pixel, the source on the centre pixel), so aligning is stacking
arrays. :class:`Stacker` accumulates them one at a time, so memory does not grow with the
number of sources, except for ``median``, which needs every value of a pixel (its stamps are
kept, bounded by the job's source limit; the docs say so).

- ``mean``: the average of the finite values of each pixel;
- ``weighted``: inverse-variance weights, the variance of each stamp measured as the robust
  rms of its annulus (0.7 R ... R, :func:`vo.stamps.stamp.annulus_noise`);
- ``median``: the median of the finite values.

With ``STACKSIZE`` each stamp is first magnified about its centre so that the source's own size
(a column of the table or query) becomes the common size (:func:`scale_about_centre`).

The result carries a coverage map (stamps with data at each pixel), and its header the count of
stamps, the noise measured in the stack's annulus (``STKNOISE``), the centre value and their
ratio (``STKSNR``). No HTTP, no SQL.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from scipy.ndimage import map_coordinates

from vo.errors import UsageError
from vo.stamps.stamp import annulus_noise

__all__ = ["METHODS", "SIZE_UNITS", "StackScale", "Stacker", "scale_about_centre"]

METHODS = ("mean", "median", "weighted")
#: units of a STACKSIZE column, degrees per unit
SIZE_UNITS = {"arcsec": 1 / 3600, "arcmin": 1 / 60, "deg": 1.0}


@dataclass(frozen=True)
class StackScale:
    """``STACKSIZE``: the column holding each source's size (in ``unit``), and the common size (degrees)
    each is scaled to before stacking; None: the median of the job's sources' sizes."""

    column: str
    unit: str = "arcsec"
    common: float | None = None

    @property
    def to_deg(self) -> float:
        return SIZE_UNITS[self.unit]


def scale_about_centre(data: np.ndarray, zoom: float) -> np.ndarray:
    """``data`` magnified ``zoom`` times about its centre pixel, on the same pixels (bilinear, NaN
    where the stamp has no data): a source of size ``s`` pixels becomes ``zoom * s`` pixels wide.

    Values are surface brightness samples, not fluxes: the stack of scaled stamps is the mean
    *profile* in units of the common size, as a size-normalised stack is meant to be (docs/stamps.md).
    """
    if zoom == 1.0:
        return data
    ny, nx = data.shape
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    coords = np.array([cy + (y - cy) / zoom, cx + (x - cx) / zoom])
    filled = np.where(np.isfinite(data), data, 0.0)
    values = map_coordinates(filled, coords, order=1, mode="constant", cval=np.nan)
    good = map_coordinates(np.isfinite(data).astype(np.float64), coords, order=1, mode="constant", cval=0.0)
    values[good < 0.999] = np.nan
    return values


class Stacker:
    """Adds stamps of one shape; :meth:`result` gives the stack, its coverage and its header."""

    def __init__(self, method: str) -> None:
        if method not in METHODS:
            raise UsageError(f"STACK: unknown method {method!r}; expected one of {', '.join(METHODS)}")
        self.method = method
        self.shape: tuple[int, ...] | None = None
        self.count = 0
        self._sum: np.ndarray | None = None
        self._weight: np.ndarray | None = None
        self._coverage: np.ndarray | None = None
        self._kept: list[np.ndarray] = []
        self.header: fits.Header | None = None

    def add(self, data: np.ndarray, header: fits.Header | None = None) -> bool:
        """Add one stamp; False (not added) when its shape differs from the first or it has no noise estimate."""
        data = np.asarray(data, dtype=np.float64)
        if self.shape is None:
            self.shape = data.shape
            self._sum = np.zeros(data.shape)
            self._weight = np.zeros(data.shape)
            self._coverage = np.zeros(data.shape, dtype=np.int32)
            self.header = header.copy() if header is not None else None
        if data.shape != self.shape:
            return False
        assert self._sum is not None and self._weight is not None and self._coverage is not None
        finite = np.isfinite(data)
        w = 1.0
        if self.method == "weighted":
            noise = annulus_noise(data)
            if not math.isfinite(noise) or noise <= 0:
                return False
            w = 1.0 / noise**2
        self._sum[finite] += w * data[finite]
        self._weight[finite] += w
        self._coverage += finite
        if self.method == "median":
            self._kept.append(data.astype(np.float32))
        self.count += 1
        return True

    def result(self) -> tuple[np.ndarray, np.ndarray, fits.Header]:
        """The stack, the coverage map (stamps per pixel) and the header with the noise figures."""
        if self.count == 0 or self._sum is None or self._weight is None or self._coverage is None:
            raise UsageError("STACK: no stamp could be stacked")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.method == "median":
                stack = np.nanmedian(np.stack(self._kept), axis=0)
            else:
                stack = np.where(self._weight > 0, self._sum / np.where(self._weight > 0, self._weight, 1), np.nan)
        header = self.header.copy() if self.header is not None else fits.Header()
        for key in ("OBJECT", "VLKBSRCL", "VLKBSRCB", "VLKBCOV"):
            header.remove(key, ignore_missing=True)
        noise = annulus_noise(stack)
        ny, nx = stack.shape
        centre = float(stack[ny // 2, nx // 2])
        header["STKMETH"] = (self.method, "how the stamps were combined")
        header["STKN"] = (self.count, "number of stamps stacked")
        header["STKNOISE"] = (noise if math.isfinite(noise) else 0.0, "robust rms of the annulus 0.7R-R")
        header["STKCENT"] = (centre if math.isfinite(centre) else 0.0, "stack value at the centre pixel")
        snr = centre / noise if math.isfinite(noise) and noise > 0 and math.isfinite(centre) else 0.0
        header["STKSNR"] = (snr, "centre value / annulus noise")
        return stack.astype(np.float32), self._coverage.astype(np.int32), header
