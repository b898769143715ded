"""Demo filaments (with branches) and infrared bubbles, as tables and as shapes to draw.

A filament is a smooth spine (a gently curved line, sampled at regular steps) with 0-3 side
branches leaving it at an angle; its main spine is split into two branches flagged ``S``. Every
outline is a ribbon around its line (left side forward, right side back), checked to be a
simple polygon and written counter-clockwise in (l, b). A bubble is a slightly irregular ring.
Everything is vectorised over the vertices; the loops are over the few hundred structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from demo.region import B_MAX, B_MIN, L_MAX, L_MIN, Columns, legacy_contour, rng_for, spoly_text, wrap360

__all__ = ["Structures", "make_structures"]

# Few vertices on purpose: pgSphere's GiST key of a polygon costs O(n**2) in its vertices
# (about 6 ms for these 26-vertex ribbons, 20 ms at 64 vertices).
_SPINE_POINTS = 13
_BRANCH_POINTS = 8
_RING_POINTS = 24


@dataclass
class Structures:
    """The demo filaments, branches and bubbles.

    ``tables`` maps qualified table names to column arrays. ``ridges`` holds, per filament,
    its line points (signed l, b in degrees), FWHM width (deg), strength (0.5-2) and LSRK
    velocity at each point (km/s); ``rings`` the bubbles' outlines with their strength.
    """

    tables: dict[str, Columns] = field(default_factory=dict)
    ridges: list[tuple[np.ndarray, np.ndarray, float, float, np.ndarray]] = field(default_factory=list)
    rings: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)


def _normals(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tx, ty = np.gradient(x), np.gradient(y)
    norm = np.hypot(tx, ty)
    return -ty / norm, tx / norm


def _signed_area(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _is_simple(x: np.ndarray, y: np.ndarray) -> bool:
    """True when no two non-adjacent edges of the closed polygon (x, y) cross."""
    n = len(x)
    ax, ay = x, y
    bx, by = np.roll(x, -1), np.roll(y, -1)
    i, j = np.triu_indices(n, 2)
    keep = ~((i == 0) & (j == n - 1))
    i, j = i[keep], j[keep]

    def orient(px, py, qx, qy, rx, ry):
        return np.sign((qx - px) * (ry - py) - (qy - py) * (rx - px))

    o1 = orient(ax[i], ay[i], bx[i], by[i], ax[j], ay[j])
    o2 = orient(ax[i], ay[i], bx[i], by[i], bx[j], by[j])
    o3 = orient(ax[j], ay[j], bx[j], by[j], ax[i], ay[i])
    o4 = orient(ax[j], ay[j], bx[j], by[j], bx[i], by[i])
    return not bool(np.any((o1 * o2 < 0) & (o3 * o4 < 0)))


def _ribbon(x: np.ndarray, y: np.ndarray, half_width: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Counter-clockwise outline around the line (x, y), tapering towards the ends; None if not simple."""
    t = np.linspace(0.0, 1.0, len(x))
    w = half_width * (0.35 + 0.65 * np.sin(np.pi * t))
    nx, ny = _normals(x, y)
    px = np.concatenate([x + w * nx, (x - w * nx)[::-1]])
    py = np.concatenate([y + w * ny, (y - w * ny)[::-1]])
    if not _is_simple(px, py):
        return None
    if _signed_area(px, py) < 0:
        px, py = px[::-1], py[::-1]
    return px, py


def _curve(rng: np.random.Generator, x0: float, y0: float, angle: float, length: float, n: int,
           wiggle: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth line of ``n`` points starting at (x0, y0) in direction ``angle`` (rad)."""
    s = np.linspace(0.0, length, n)
    k = rng.uniform(0.4, 1.1)
    phase = rng.uniform(0, 2 * np.pi)
    off = wiggle * length * (np.sin(2 * np.pi * k * s / length + phase) - np.sin(phase))
    ux, uy = np.cos(angle), np.sin(angle)
    return x0 + s * ux - off * uy, y0 + s * uy + off * ux


def _inside(x: np.ndarray, y: np.ndarray, margin: float = 0.02) -> bool:
    return bool(
        np.all((x > L_MIN + margin) & (x < L_MAX - margin) & (y > B_MIN + margin) & (y < B_MAX - margin))
    )


def _length_arcmin(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.hypot(np.diff(x), np.diff(y)))) * 60.0


def make_structures(seed: int, scale: int = 1) -> Structures:
    """Filaments with branches and bubbles in the demo region, deterministic for ``seed``."""
    rng = rng_for(seed, "filaments")
    out = Structures()
    fil: dict[str, list] = {k: [] for k in (
        "idfil_mos", "glon", "glat", "contour", "contour_poly", "length", "width", "mean_col_dens",
        "contrast", "ellipticity", "n_branches", "survey")}
    br: dict[str, list] = {k: [] for k in (
        "idbranch", "idfil_mos", "glon_branch", "glat_branch", "flagspine", "contour", "contour1d",
        "contour_new", "spine", "length", "survey")}
    n_fil = 150 * scale
    idfil = 0
    idbranch = 0
    while idfil < n_fil:
        length = float(np.exp(rng.uniform(np.log(0.08), np.log(0.6))))
        angle = float(np.deg2rad(rng.normal(0.0, 35.0)))
        xc, yc = rng.uniform(L_MIN, L_MAX), rng.normal(0.0, 0.35)
        x, y = _curve(rng, 0.0, 0.0, angle, length, _SPINE_POINTS, rng.uniform(0.03, 0.12))
        x, y = x - x.mean() + xc, y - y.mean() + yc
        half = float(rng.uniform(0.006, 0.018))
        outline = _ribbon(x, y, half)
        if outline is None or not _inside(*outline):
            continue
        # side branches leave the spine from its inner part at 35-80 degrees
        lines: list[tuple[np.ndarray, np.ndarray, str]] = []
        cut = _SPINE_POINTS // 2
        lines.append((x[: cut + 1], y[: cut + 1], "S"))
        lines.append((x[cut:], y[cut:], "S"))
        tx, ty = np.gradient(x), np.gradient(y)
        for _ in range(int(rng.integers(0, 4))):
            k = int(rng.integers(3, _SPINE_POINTS - 3))
            side = rng.choice([-1.0, 1.0])
            a = np.arctan2(ty[k], tx[k]) + side * np.deg2rad(rng.uniform(35, 80))
            bx, by = _curve(rng, x[k], y[k], a, length * rng.uniform(0.15, 0.4), _BRANCH_POINTS, 0.05)
            if _inside(bx, by):
                lines.append((bx, by, "B"))
        ribbons = [r for lx, ly, _ in lines if (r := _ribbon(lx, ly, half * 0.6)) is not None]
        news = [r for lx, ly, _ in lines if (r := _ribbon(lx, ly, half * 0.45)) is not None]
        if len(ribbons) < len(lines) or len(news) < len(lines):  # an outline that is not simple
            continue
        idfil += 1
        strength = float(np.exp(rng.normal(0.0, 0.4)))
        v0, grad = rng.normal(0.0, 15.0), rng.normal(0.0, 6.0)
        s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        out.ridges.append((x, y, 2.0 * half * 0.6, strength, v0 + grad * (s - s.mean())))
        fil["idfil_mos"].append(idfil)
        fil["glon"].append(float(wrap360(np.array(x.mean()))))
        fil["glat"].append(float(y.mean()))
        fil["contour"].append(legacy_contour(*outline))
        fil["contour_poly"].append(spoly_text(*outline))
        fil["length"].append(_length_arcmin(x, y))
        fil["width"].append(2 * half * 60.0 * 0.8)
        fil["mean_col_dens"].append(float(1e21 * strength * rng.uniform(2.0, 6.0)))
        fil["contrast"].append(float(rng.uniform(1.1, 1.8)))
        fil["ellipticity"].append(float(np.clip(1 - 2 * half / length, 0.0, 1.0)))
        fil["n_branches"].append(len(lines))
        fil["survey"].append("Hi-GAL")
        for (lx, ly, flag), rib, new in zip(lines, ribbons, news, strict=True):
            idbranch += 1
            br["idbranch"].append(idbranch)
            br["idfil_mos"].append(idfil)
            br["glon_branch"].append(float(wrap360(np.array(lx.mean()))))
            br["glat_branch"].append(float(ly.mean()))
            br["flagspine"].append(flag)
            br["contour"].append(legacy_contour(*rib))
            br["contour1d"].append(legacy_contour(lx, ly))
            br["contour_new"].append(legacy_contour(*new))
            br["spine"].append(spoly_text(lx, ly))
            br["length"].append(_length_arcmin(lx, ly))
            br["survey"].append("Hi-GAL")
            if flag == "B":
                out.ridges.append((lx, ly, 2.0 * half * 0.4, strength * 0.6, np.full(len(lx), v0)))
    out.tables["filaments.filaments"] = _arrays(fil)
    out.tables["filaments.branches"] = _arrays(br)
    out.tables["filaments.bubbles"] = _bubbles(seed, scale, out)
    return out


def _bubbles(seed: int, scale: int, out: Structures) -> Columns:
    rng = rng_for(seed, "bubbles")
    bub: dict[str, list] = {k: [] for k in ("idbubble", "glon_cen", "glat_cen", "contour", "contour_poly",
                                             "radius", "survey")}
    phi = np.linspace(0.0, 2 * np.pi, _RING_POINTS, endpoint=False)
    while len(bub["idbubble"]) < 40 * scale:
        radius = float(np.exp(rng.uniform(np.log(0.02), np.log(0.12))))
        xc, yc = rng.uniform(L_MIN, L_MAX), rng.normal(0.0, 0.3)
        r = radius * (1 + 0.12 * np.sin(2 * phi + rng.uniform(0, 6.3)) + 0.06 * np.sin(3 * phi + rng.uniform(0, 6.3)))
        x, y = xc + r * np.cos(phi), yc + r * np.sin(phi)
        if not _inside(x, y):
            continue
        bub["idbubble"].append(len(bub["idbubble"]) + 1)
        bub["glon_cen"].append(float(wrap360(np.array(xc))))
        bub["glat_cen"].append(float(yc))
        bub["contour"].append(legacy_contour(x, y))
        bub["contour_poly"].append(spoly_text(x, y))
        bub["radius"].append(radius * 60.0)
        bub["survey"].append("MIPSGAL")
        out.rings.append((x, y, float(np.exp(rng.normal(0.0, 0.4)))))
    return _arrays(bub)


def _arrays(cols: dict[str, list]) -> Columns:
    return {k: (np.asarray(v) if v and not isinstance(v[0], str) else list(v)) for k, v in cols.items()}
