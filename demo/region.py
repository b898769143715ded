"""The demo sky region and the small helpers every demo module shares (random streams, angles).

The region crosses l = 0 on purpose, so wrap-around is exercised everywhere: longitudes are
stored in [0, 360) while the geometry is computed on the signed longitude ``l - 360`` for
``l > 180``.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

__all__ = [
    "B_MAX",
    "B_MIN",
    "Columns",
    "L_MAX",
    "L_MIN",
    "legacy_contour",
    "rng_for",
    "spoly_text",
    "to_icrs",
    "wrap360",
]

#: Signed Galactic longitude range of the demo (degrees): 358.5 .. 1.5 across l = 0.
L_MIN, L_MAX = -1.5, 1.5
#: Galactic latitude range of the demo (degrees).
B_MIN, B_MAX = -1.0, 1.0

#: A demo table by columns: a numpy array, or a list of str (or None), per column name.
Columns = dict[str, np.ndarray | list[Any]]


def rng_for(seed: int, *name: str | int) -> np.random.Generator:
    """An independent random stream for one purpose, so adding a stream never changes another."""
    keys = [int(seed)] + [zlib.crc32(str(n).encode()) for n in name]
    return np.random.default_rng(keys)


def wrap360(lon: np.ndarray) -> np.ndarray:
    """Longitudes mapped to [0, 360)."""
    out = np.mod(lon, 360.0)
    # np.mod(-1e-17, 360) is 360.0: fold it back
    return np.where(out >= 360.0, 0.0, out)


def to_icrs(glon: np.ndarray, glat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (ra, dec) in degrees of Galactic (l, b) in degrees, vectorised through astropy."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(l=np.asarray(glon) * u.deg, b=np.asarray(glat) * u.deg, frame="galactic").icrs
    return c.ra.deg, c.dec.deg


def _fmt(values: np.ndarray, digits: int) -> list[str]:
    return [f"{v:.{digits}f}" for v in np.asarray(values, dtype=float).tolist()]


def legacy_contour(lon: np.ndarray, lat: np.ndarray, digits: int = 5) -> str:
    """The legacy contour string ``"l1_l2_..._ln_,b1_b2_..._bn_"`` (l in [0, 360))."""
    ls = "_".join(_fmt(wrap360(lon), digits))
    bs = "_".join(_fmt(lat, digits))
    return f"{ls}_,{bs}_"


def spoly_text(lon: np.ndarray, lat: np.ndarray, digits: int = 6) -> str:
    """pgSphere input form ``{(l1d,b1d),(l2d,b2d),...}`` of a polygon or path, degrees."""
    pts = ",".join(
        f"({a}d,{b}d)" for a, b in zip(_fmt(wrap360(lon), digits), _fmt(lat, digits), strict=True)
    )
    return "{" + pts + "}"
