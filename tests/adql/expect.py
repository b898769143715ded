"""Independent answers for the ADQL corpus: numpy and astropy over the raw rows of the test tables.

Nothing here uses the translator or pgSphere: separations are computed with the Vincenty
formula, frame changes with astropy, polygon containment with cross products, and the
corpus entries (``expect:`` in corpus.yaml) are Python expressions over these helpers and
the raw columns, fetched once with plain ``SELECT *``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from tests.adql.tables import Raw

__all__ = ["namespace", "normalise", "same_rows"]


def sep(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Angular separation in degrees (Vincenty), broadcasting."""
    l1, b1, l2, b2 = (np.radians(np.asarray(x, dtype=float)) for x in (lon1, lat1, lon2, lat2))
    dl = l2 - l1
    num = np.hypot(np.cos(b2) * np.sin(dl), np.cos(b1) * np.sin(b2) - np.sin(b1) * np.cos(b2) * np.cos(dl))
    den = np.sin(b1) * np.sin(b2) + np.cos(b1) * np.cos(b2) * np.cos(dl)
    return np.degrees(np.arctan2(num, den))


def icrs2gal(ra, dec) -> tuple[np.ndarray, np.ndarray]:
    g = SkyCoord(ra=np.asarray(ra, dtype=float) * u.deg, dec=np.asarray(dec, dtype=float) * u.deg).galactic
    return g.l.deg, g.b.deg


def gal2icrs(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    e = SkyCoord(l=np.asarray(lon, dtype=float) * u.deg, b=np.asarray(lat, dtype=float) * u.deg, frame="galactic").icrs
    return e.ra.deg, e.dec.deg


def _vec(lon, lat) -> np.ndarray:
    lon, lat = np.radians(np.asarray(lon, dtype=float)), np.radians(np.asarray(lat, dtype=float))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def inside(lon, lat, vertices: Sequence[tuple[float, float]]) -> np.ndarray:
    """Whether points lie in a convex spherical polygon (great-circle edges), either orientation."""
    v = _vec([a for a, _ in vertices], [b for _, b in vertices])
    p = _vec(lon, lat)
    centre = v.sum(axis=0)
    ok = np.ones(p.shape[:-1], dtype=bool)
    for i in range(len(v)):
        n = np.cross(v[i], v[(i + 1) % len(v)])
        side = np.sign(n @ centre)
        ok &= (p @ n) * side >= -1e-12
    return ok


def area(vertices: Sequence[tuple[float, float]]) -> float:
    """Area in square degrees of a convex spherical polygon (fan of triangles, spherical excess)."""
    v = _vec([a for a, _ in vertices], [b for _, b in vertices])
    total = 0.0
    for i in range(1, len(v) - 1):
        a, b, c_ = v[0], v[i], v[i + 1]
        excess = 2 * math.atan2(abs(float(a @ np.cross(b, c_))), 1 + float(a @ b) + float(b @ c_) + float(c_ @ a))
        total += excess
    return math.degrees(math.degrees(total))


def box(lon, lat, w, h) -> list[tuple[float, float]]:
    """The corners of ADQL BOX(lon, lat, w, h)."""
    return [(lon - w / 2, lat - h / 2), (lon + w / 2, lat - h / 2), (lon + w / 2, lat + h / 2),
            (lon - w / 2, lat + h / 2)]


def arc_distance(lon, lat, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance in degrees from points to the great-circle arc a-b."""
    p = _vec(lon, lat)
    va, vb = _vec(*a), _vec(*b)
    n = np.cross(va, vb)
    n /= np.linalg.norm(n)
    proj = p - np.outer(p @ n, n) if p.ndim > 1 else p - (p @ n) * n
    norm = np.linalg.norm(proj, axis=-1, keepdims=True)
    proj = proj / np.where(norm == 0, 1, norm)
    # the projection lies on the arc when it is between a and b
    on_arc = (np.cross(va, proj) @ n >= 0) & (np.cross(proj, vb) @ n >= 0)
    d_line = np.degrees(np.arcsin(np.clip(np.abs(p @ n), 0, 1)))
    d_end = np.minimum(np.degrees(np.arccos(np.clip(p @ va, -1, 1))), np.degrees(np.arccos(np.clip(p @ vb, -1, 1))))
    return np.where(on_arc, d_line, d_end)


def _edge_samples(a: SkyCoord, pa: u.Quantity, length: u.Quantity, t: np.ndarray) -> SkyCoord:
    """Points at fractions ``t`` (edges x samples) along great-circle edges from ``a`` (astropy offsets)."""
    return a[:, None].directional_offset_by(pa[:, None], length[:, None] * t)


def region_distance(lon, lat, vertices: Sequence[tuple[float, float]], closed: bool = True,
                    samples: int = 64, passes: int = 5) -> float:
    """Distance in degrees from a point to a polygon (``closed``) or path: 0 inside a polygon, else
    the least separation to its edges, found by dense sampling with astropy.

    Each edge (the shorter great-circle arc between vertices) is sampled with
    ``SkyCoord.directional_offset_by``; the search then narrows ``passes`` times around the nearest
    sample, so the answer is good to about 1e-10 degrees without millions of samples. Nothing here
    shares code or formulas with the service's ``vlkb_distance``.
    """
    if closed and bool(inside(lon, lat, vertices)):
        return 0.0
    ends = list(zip(vertices, vertices[1:] + vertices[:1], strict=True)) if closed else list(
        zip(vertices[:-1], vertices[1:], strict=True))
    a = SkyCoord([e[0][0] for e in ends] * u.deg, [e[0][1] for e in ends] * u.deg)
    b = SkyCoord([e[1][0] for e in ends] * u.deg, [e[1][1] for e in ends] * u.deg)
    target = SkyCoord(float(lon) * u.deg, float(lat) * u.deg)
    pa, length = a.position_angle(b), a.separation(b)
    lo, hi = np.zeros(len(ends)), np.ones(len(ends))
    best = np.full(len(ends), np.inf)
    for _ in range(passes):
        t = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, samples)[None, :]
        d = target.separation(_edge_samples(a, pa, length, t)).deg
        k = np.argmin(d, axis=1)
        rows = np.arange(len(ends))
        best = np.minimum(best, d[rows, k])
        step = (hi - lo) / (samples - 1)
        centre = t[rows, k]
        lo, hi = np.clip(centre - step, 0, 1), np.clip(centre + step, 0, 1)
    return float(best.min())


def region_distances(lon, lat, regions: Sequence[str | None], closed: bool = True) -> np.ndarray:
    """:func:`region_distance` for each row's region (pgSphere text), with a constant or per-row point."""
    lons = np.broadcast_to(np.asarray(lon, dtype=float), (len(regions),))
    lats = np.broadcast_to(np.asarray(lat, dtype=float), (len(regions),))
    out = np.empty(len(regions), dtype=object)
    for i, text in enumerate(regions):
        verts = spoly(text)
        out[i] = None if verts is None else region_distance(lons[i], lats[i], verts, closed)
    return out


def circle_meets_polygon(lon, lat, r, vertices) -> np.ndarray:
    """Whether circles (centre lon/lat, radius r) overlap a convex polygon."""
    hit = inside(lon, lat, vertices)
    for i in range(len(vertices)):
        hit |= arc_distance(lon, lat, vertices[i], vertices[(i + 1) % len(vertices)]) <= r
    return hit


def spoly(text: str | None) -> list[tuple[float, float]] | None:
    """Vertices in degrees of pgSphere's text form of a polygon or path (radians)."""
    if text is None:
        return None
    nums = [float(x) for x in re.findall(r"[-+0-9.eE]+", text)]
    return [(math.degrees(nums[i]), math.degrees(nums[i + 1])) for i in range(0, len(nums), 2)]


def col(t: Raw, name: str) -> np.ndarray:
    return t.columns[name]


def rows(
    t: Raw, mask=None, *cols, order=None, desc: bool = False, top: int | None = None, offset: int = 0,
    distinct: bool = False,
) -> list[tuple]:
    """The rows of ``t`` where ``mask``, projected on ``cols`` (names or arrays), optionally sorted."""
    n = len(t)
    keep = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    arrays = [t.columns[c_] if isinstance(c_, str) else np.broadcast_to(np.asarray(c_, dtype=object), (n,))
              for c_ in cols]
    idx = np.nonzero(keep)[0]
    if order is not None:
        key = np.asarray(order)[idx]
        idx = idx[np.argsort(-key if desc else key, kind="stable")]
    out = [tuple(a[i] for a in arrays) for i in idx]
    if distinct:
        seen, unique = set(), []
        for r in out:
            k = _key(normalise(r))
            if k not in seen:
                seen.add(k)
                unique.append(r)
        out = unique
    out = out[offset:]
    return out[:top] if top is not None else out


def notnull(a) -> np.ndarray:
    return np.array([x is not None for x in a], dtype=bool)


def num(a) -> np.ndarray:
    """An object column as floats, NULL as NaN."""
    return np.array([np.nan if x is None else float(x) for x in a], dtype=float)


def pairs(*arrays) -> np.ndarray:
    """DALI arrays, one per row, from per-row arrays: pairs(lon, lat) -> [(lon, lat), ...]."""
    out = np.empty(len(arrays[0]), dtype=object)
    for i, values in enumerate(zip(*arrays, strict=True)):
        out[i] = tuple(float(v) for v in values)
    return out


#: short names of the test tables in ``expect`` expressions
SHORT = {
    "band70um": "b70", "band160um": "b160", "sed_view_final": "sed", "props_dist": "props",
    "filaments": "fil", "branches": "br", "obscore": "obs", "columns": "cols",
}


def namespace(tables: dict[str, Raw]) -> dict[str, object]:
    """What a corpus ``expect`` expression can use."""
    return {
        "np": np, "math": math, "sep": sep, "area": area, "icrs2gal": icrs2gal, "gal2icrs": gal2icrs, "inside": inside,
        "box": box, "circle_meets_polygon": circle_meets_polygon, "spoly": spoly, "rows": rows,
        "notnull": notnull, "num": num, "arc_distance": arc_distance, "pairs": pairs,
        "region_distance": region_distance, "region_distances": region_distances,
        **{SHORT[name]: raw for name, raw in tables.items()},
    }


# --------------------------------------------------------------------------- comparison


def normalise(row: Sequence[object]) -> tuple:
    out = []
    for v in row:
        if isinstance(v, (np.floating, Decimal)):
            v = float(v)
        elif isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.bool_):
            v = bool(v)
        elif isinstance(v, (list, tuple, np.ndarray)):
            v = tuple(float(x) if x is not None else None for x in v)
        elif isinstance(v, datetime):
            v = v.isoformat(sep=" ")
        out.append(v)
    return tuple(out)


def _key(row: tuple) -> tuple:
    def k(v: object) -> tuple:
        if v is None:
            return (0, 0)
        if isinstance(v, bool):
            return (1, int(v))
        if isinstance(v, (int, float)):
            return (1, round(float(v), 5))
        if isinstance(v, tuple):
            return (2, tuple(round(x, 5) if x is not None else -1e300 for x in v))
        return (3, str(v))

    return tuple(k(v) for v in row)


def _close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isnan(float(a)) and math.isnan(float(b)):
            return True
        return math.isclose(float(a), float(b), rel_tol=1e-7, abs_tol=1e-8)
    return a == b


def same_rows(actual: list[tuple], expected: list[tuple], ordered: bool) -> str | None:
    """None when the two row lists agree (as multisets unless ``ordered``), else a description."""
    a = [normalise(r) for r in actual]
    e = [normalise(r) for r in expected]
    if len(a) != len(e):
        return f"{len(a)} rows, expected {len(e)}; first actual {a[:3]}, first expected {e[:3]}"
    if not ordered:
        a, e = sorted(a, key=_key), sorted(e, key=_key)
    for i, (x, y) in enumerate(zip(a, e, strict=True)):
        if len(x) != len(y) or not all(_close(p, q) for p, q in zip(x, y, strict=True)):
            return f"row {i}: {x} != expected {y}"
    return None
