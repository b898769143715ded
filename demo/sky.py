"""The demo sky: star-forming clumps, their per-band catalogues and the band-merged SED table.

Clumps are drawn once (fixed seed) in the region of :mod:`demo.region`, a third of them
along the filaments. Each clump is a sum of grey bodies (a cold envelope, and for protostellar
clumps a warm and a hot component): ``S_nu = M kappa_nu B_nu(T) / d**2`` with
``kappa_nu = 0.1 (nu / 1 THz)**beta cm2/g``. Some clumps have a close companion in the same
association tree, resolved only at 70 and 160 um. A clump is *detected* in a band when its
peak over the band's noise reaches 5; detections make the rows of ``compactsources.band<X>um``
(with a per-band position jitter, size and flux error), and the detections of each tree make
the rows of ``sed_view_final`` ("missing" and NULLs where a band has no counterpart). The
24 um catalogue also holds field stars. ``props_dist`` holds the clumps with a distance.
Everything is vectorised; the only loops are over bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from demo.physics import ARCSEC, C_CGS, KPC_CM, LSUN, MSUN, greybody
from demo.region import B_MAX, B_MIN, L_MAX, L_MIN, Columns, rng_for, to_icrs, wrap360
from demo.structures import Structures
from demo.surveys import DEMO_SURVEYS

__all__ = ["BANDS", "Band", "Sky", "make_sky"]

_ARCSEC = ARCSEC

#: One band's detections: numpy columns, and ``designation`` a list of str (typed loosely: a
#: TypedDict of a dozen float columns would say little more)
Detections = dict[str, Any]


@dataclass(frozen=True)
class Band:
    """One photometric band of the demo: wavelength (um), beam FWHM (arcsec), rms (Jy/beam)."""

    key: str
    wavelength: float
    beam: float
    rms: float
    prefix: str = ""
    survey: str = "Hi-GAL"


def _layout_rms(band_um: int) -> tuple[float, float]:
    """(beam, rms in Jy/beam) of a demo image band: rms = noise (MJy/sr) x 1e6 x beam solid angle."""
    for _survey, layout in DEMO_SURVEYS:
        if layout.catalogue == f"band{band_um}um":
            omega = 1.1331 * (layout.beam * _ARCSEC) ** 2
            return layout.beam, layout.noise * 1e6 * omega
    raise KeyError(band_um)


def _band(key: str, wl: float, prefix: str, survey: str = "Hi-GAL") -> Band:
    beam, rms = _layout_rms(int(key))
    return Band(key, wl, beam, rms, prefix, survey)


#: Bands with a catalogue table and an image: the key is the table suffix (band<key>um).
BANDS: tuple[Band, ...] = (
    _band("500", 500.0, "HIGALPB"),
    _band("350", 350.0, "HIGALPB"),
    _band("250", 250.0, "HIGALPB"),
    _band("160", 160.0, "HIGALPB"),
    _band("70", 70.0, "HIGALPB"),
    _band("24", 23.68, "MG", "MIPSGAL"),
)
#: Counterpart bands of sed_view_final only (no table of their own).
_ANCILLARY: tuple[Band, ...] = (
    Band("1100", 1120.0, 33.0, 0.03, "G"),
    Band("870", 870.0, 19.2, 0.05, "AGAL"),
    Band("22", 22.1, 12.0, 0.0015, "J"),
    Band("21", 8.28, 18.3, 0.03, "G"),
)
#: Point-like photometry of the sed_view_final columns flux<key>: (wavelength um, 1-sigma Jy).
_POINT = {
    "21_c": (12.13, 0.3), "21_d": (14.65, 0.3), "21_e": (21.3, 0.8), "12": (12.08, 0.0008),
    "46": (4.6, 0.0001), "34": (3.4, 0.0001), "2m_k": (2.16, 0.0003), "2m_h": (1.65, 0.0003),
    "2m_j": (1.24, 0.0003),
}


@dataclass
class Sky:
    """Clumps (signed l, b, distance, LSRK velocity, masses) and the catalogue tables."""

    lon: np.ndarray
    lat: np.ndarray
    dist: np.ndarray
    vlsr: np.ndarray
    mass: np.ndarray
    tdust: np.ndarray
    protostellar: np.ndarray
    tables: dict[str, Columns]


def _fmt_gal(prefix: str, lon: np.ndarray, b: np.ndarray, digits: int) -> list[str]:
    lw = wrap360(lon)
    width = digits + 4
    bw = digits + 3 if prefix.startswith("HIGAL") else digits + 4
    return [f"{prefix}{x:0{width}.{digits}f}{y:+0{bw}.{digits}f}" for x, y in zip(lw.tolist(), b.tolist(), strict=True)]


def _fmt_wise(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    h = ra / 15.0
    hh = np.floor(h)
    mm = np.floor((h - hh) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    sign = np.where(dec < 0, "-", "+")
    ad = np.abs(dec)
    dd = np.floor(ad)
    dm = np.floor((ad - dd) * 60)
    ds = ((ad - dd) * 60 - dm) * 60
    return [
        f"J{a:02.0f}{b:02.0f}{c:05.2f}{s}{d:02.0f}{e:02.0f}{f:04.1f}"
        for a, b, c, s, d, e, f in zip(hh, mm, np.minimum(ss, 59.99), sign, dd, dm, np.minimum(ds, 59.9),
                                      strict=True)
    ]


def _designations(band: Band, lon: np.ndarray, b: np.ndarray) -> list[str]:
    if band.prefix == "J":
        return _fmt_wise(*to_icrs(wrap360(lon), b))
    digits = 3 if band.key in ("1100", "870") else 4
    return _fmt_gal(band.prefix, lon, b, digits)


def _first_unique(names: list[str]) -> np.ndarray:
    """Mask keeping the first occurrence of every name."""
    _, first = np.unique(np.asarray(names), return_index=True)
    keep = np.zeros(len(names), dtype=bool)
    keep[first] = True
    return keep


def _clumps(seed: int, scale: int, structures: Structures) -> dict[str, np.ndarray]:
    rng = rng_for(seed, "clumps")
    n_root = 22000 * scale
    n_fil = n_root // 3
    # field clumps: uniform in lon, Gaussian in b, kept inside the region
    lon = rng.uniform(L_MIN, L_MAX, 2 * n_root)
    b = rng.normal(0.0, 0.35, 2 * n_root)
    ok = (b > B_MIN + 0.01) & (b < B_MAX - 0.01)
    lon, b = lon[ok][: n_root - n_fil], b[ok][: n_root - n_fil]
    # clumps along the filaments: a random point of a random ridge, scattered by its width
    pts_l = np.concatenate([r[0] for r in structures.ridges])
    pts_b = np.concatenate([r[1] for r in structures.ridges])
    width = np.concatenate([np.full(len(r[0]), r[2]) for r in structures.ridges])
    pick = rng.integers(0, len(pts_l), n_fil)
    lon = np.concatenate([lon, pts_l[pick] + rng.normal(0, 1, n_fil) * width[pick] / 2.355])
    b = np.concatenate([b, pts_b[pick] + rng.normal(0, 1, n_fil) * width[pick] / 2.355])
    order = np.argsort(rng.random(n_root))
    lon, b = lon[order], b[order]
    gc = rng.random(n_root) < 0.55
    dist = np.where(gc, rng.normal(8.2, 0.4, n_root), rng.uniform(1.5, 6.5, n_root))
    vlsr = np.where(gc, np.clip(rng.normal(0, 18, n_root), -36, 36), np.clip(rng.normal(0, 10, n_root), -36, 36))
    mass = np.minimum(5.0 * rng.random(n_root) ** (-1 / 0.7), 5000.0)  # dN/dM ~ M**-1.7
    tdust = np.clip(rng.normal(16.0, 4.0, n_root), 8.0, 35.0)
    proto = rng.random(n_root) < 0.45
    # companions: 15% of the roots have one, 0.3-0.8 of a 250 um beam away
    has = np.flatnonzero(rng.random(n_root) < 0.15)
    k = len(has)
    sep = rng.uniform(0.3, 0.8, k) * 18.0 / 3600
    ang = rng.uniform(0, 2 * np.pi, k)
    out = {
        "lon": np.concatenate([lon, lon[has] + sep * np.cos(ang)]),
        "b": np.concatenate([b, b[has] + sep * np.sin(ang)]),
        "dist": np.concatenate([dist, dist[has]]),
        "vlsr": np.concatenate([vlsr, vlsr[has] + rng.normal(0, 1.0, k)]),
        "mass": np.concatenate([mass, mass[has] * rng.uniform(0.05, 0.3, k)]),
        "tdust": np.concatenate([tdust, np.minimum(tdust[has] + rng.uniform(2, 8, k), 40.0)]),
        "proto": np.concatenate([proto, np.ones(k, dtype=bool)]),
        "tree": np.concatenate([np.arange(1, n_root + 1), has + 1]),
        "intree": np.concatenate([np.ones(n_root, dtype=np.int64), np.full(k, 2)]),
    }
    n = n_root + k
    out["warm_frac"] = np.where(out["proto"], 10 ** rng.uniform(-3.0, -1.5, n), 0.0)
    out["warm_t"] = rng.uniform(35.0, 60.0, n)
    out["hot_frac"] = np.where(out["proto"], 10 ** rng.uniform(-7.0, -5.0, n), 0.0)
    out["hot_t"] = rng.uniform(120.0, 300.0, n)
    out["nir"] = np.where(rng.random(n) < 0.3, 10 ** rng.uniform(-3.5, -1.5, n), 0.0)
    return out


def _true_flux(c: dict[str, np.ndarray], wl: float) -> np.ndarray:
    s = greybody(wl, c["mass"], c["tdust"], 2.0, c["dist"])
    s = s + greybody(wl, c["mass"] * c["warm_frac"], c["warm_t"], 1.5, c["dist"])
    s = s + greybody(wl, c["mass"] * c["hot_frac"], c["hot_t"], 1.0, c["dist"])
    if wl < 5.0:  # an unrelated near-infrared star blended with some clumps (Rayleigh-Jeans tail)
        s = s + c["nir"] * (2.16 / wl) ** 2
    return s


def _measure(rng: np.random.Generator, band: Band, c: dict[str, np.ndarray],
             allowed: np.ndarray) -> dict[str, np.ndarray]:
    """Detections of the clumps in one band: indices into the clumps and measured columns."""
    n = len(c["lon"])
    flux = _true_flux(c, band.wavelength) * np.exp(rng.normal(0, 0.1, n))
    fwhma = band.beam * rng.uniform(1.0, 1.9, n)
    fwhmb = np.maximum(band.beam, fwhma * rng.uniform(0.55, 1.0, n))
    rms = band.rms * rng.uniform(0.8, 1.3, n)
    peak = flux * band.beam**2 / (fwhma * fwhmb)
    det = allowed & (peak >= 5 * rms)
    jitter = 0.08 * band.beam / 3600
    idx = np.flatnonzero(det)
    return {
        "index": idx,
        "lon": c["lon"][idx] + rng.normal(0, jitter, n)[idx],
        "b": c["b"][idx] + rng.normal(0, jitter, n)[idx],
        "fwhma": fwhma[idx],
        "fwhmb": fwhmb[idx],
        "pa": rng.uniform(0.0, 180.0, n)[idx],
        "flux": flux[idx],
        "err_flux": np.hypot(0.1 * flux[idx], rms[idx] * np.sqrt(fwhma[idx] * fwhmb[idx]) / band.beam),
        "peak_flux": peak[idx],
        "err_peak_flux": rms[idx],
        "rms": rms[idx],
    }


def _stars(seed: int, scale: int, band: Band) -> dict[str, np.ndarray]:
    """Field stars of the 24 um catalogue: point-like, not in the band-merged table."""
    rng = rng_for(seed, "stars", band.key)
    n = 20000 * scale
    lon = rng.uniform(L_MIN, L_MAX, n)
    b = rng.uniform(B_MIN + 0.005, B_MAX - 0.005, n)
    fwhma = band.beam * rng.uniform(1.0, 1.15, n)
    fwhmb = np.maximum(band.beam, fwhma * rng.uniform(0.85, 1.0, n))
    rms = band.rms * rng.uniform(0.8, 1.3, n)
    peak = rms * 10 ** rng.uniform(np.log10(5.0), 3.0, n)
    flux = peak * fwhma * fwhmb / band.beam**2
    return {
        "index": np.full(n, -1), "lon": lon, "b": b, "fwhma": fwhma, "fwhmb": fwhmb,
        "pa": rng.uniform(0.0, 180.0, n), "flux": flux,
        "err_flux": np.hypot(0.1 * flux, rms), "peak_flux": peak, "err_peak_flux": rms, "rms": rms,
    }


def _band_table(band: Band, det: Detections) -> Columns:
    ra, dec = to_icrs(wrap360(det["lon"]), det["b"])
    tile = [f"l{int(x) % 360:03d}" for x in np.rint(det["lon"]).tolist()]
    return {
        "designation": det["designation"],
        "glon": wrap360(det["lon"]), "glat": det["b"], "ra": ra, "dec": dec,
        "fwhma": det["fwhma"], "fwhmb": det["fwhmb"], "pa": det["pa"],
        "flux": det["flux"], "err_flux": det["err_flux"],
        "peak_flux": det["peak_flux"], "err_peak_flux": det["err_peak_flux"], "rms": det["rms"],
        "snr": (det["peak_flux"] / det["rms"]).astype(np.float32),
        "survey": [band.survey] * len(det["lon"]), "tile": tile,
    }


def make_sky(seed: int, scale: int, structures: Structures) -> Sky:
    """Clumps, band catalogues, ``sed_view_final`` and ``props_dist`` for ``seed``."""
    c = _clumps(seed, scale, structures)
    n = len(c["lon"])
    is_root = c["intree"] == 1
    tables: dict[str, Columns] = {}
    # per band: which clump each detection is, or -1
    det_of: dict[str, np.ndarray] = {}
    dets: dict[str, Detections] = {}
    for band in BANDS + _ANCILLARY:
        rng = rng_for(seed, "measure", band.key)
        # companions are blended with their root at 250 um and longer
        allowed = is_root | (band.wavelength < 200)
        det: Detections = _measure(rng, band, c, allowed)
        det["designation"] = _designations(band, det["lon"], det["b"])
        keep = _first_unique(det["designation"])
        det = {k: (np.asarray(v)[keep] if k != "designation" else [d for d, x in zip(v, keep, strict=True) if x])
               for k, v in det.items()}
        dets[band.key] = det
        where = np.full(n, -1)
        where[det["index"]] = np.arange(len(det["index"]))
        det_of[band.key] = where
        if band in BANDS:
            rows = det
            if band.key == "24":
                stars: Detections = _stars(seed, scale, band)
                stars["designation"] = _designations(band, stars["lon"], stars["b"])
                rows = {k: (np.concatenate([det[k], stars[k]]) if k != "designation"
                            else det[k] + stars[k]) for k in det}
                keep = _first_unique(rows["designation"])
                rows = {k: (np.asarray(v)[keep] if k != "designation"
                            else [d for d, x in zip(v, keep, strict=True) if x]) for k, v in rows.items()}
            tables[f"compactsources.band{band.key}um"] = _band_table(band, rows)
    tables["compactsources.sed_view_final"], props = _sed_view(seed, c, dets, det_of)
    tables["compactsources.props_dist"] = props
    return Sky(
        lon=c["lon"], lat=c["b"], dist=c["dist"], vlsr=c["vlsr"], mass=c["mass"], tdust=c["tdust"],
        protostellar=c["proto"], tables=tables,
    )


def _sed_view(seed: int, c: dict[str, np.ndarray], dets: dict[str, Detections],
              det_of: dict[str, np.ndarray]) -> tuple[Columns, Columns]:
    rng = rng_for(seed, "sed_view")
    n = len(c["lon"])
    tree = c["tree"]
    root_of = tree - 1  # roots are the first clumps, tree ids count from 1
    long_keys, short_keys = ("1100", "870", "500", "350", "250"), ("160", "70", "24", "22", "21")
    # a row per tree member detected in at least two Hi-GAL bands (long bands taken from the root)
    src = {k: root_of if k in long_keys else np.arange(n) for k in long_keys + short_keys}
    higal = sum((det_of[k][src[k]] >= 0).astype(int) for k in ("500", "350", "250", "160", "70"))
    rows = np.flatnonzero(higal >= 2)
    cols: Columns = {}
    for key in long_keys + short_keys:
        d = dets[key]
        j = det_of[key][src[key][rows]]
        has = j >= 0
        jj = np.where(has, j, 0)
        names = np.asarray(d["designation"], dtype=object)
        cols[f"designation{key}"] = np.where(has, names[jj] if len(names) else "missing", "missing").tolist()
        for name, col in (("glon", "lon"), ("glat", "b"), ("fwhma", "fwhma"), ("fwhmb", "fwhmb"), ("pa", "pa")):
            vals = d[col][jj] if len(d[col]) else np.zeros(len(rows))
            if name == "glon":
                vals = wrap360(vals)
            cols[f"{name}{key}"] = np.where(has, vals, np.nan)
        if key == "21":
            cols["flux21_a"] = np.where(has, d["flux"][jj], np.nan)
            cols["err_flux21_a"] = np.where(has, d["err_flux"][jj], np.nan)
        else:
            cols[f"flux{key}"] = np.where(has, d["flux"][jj], np.nan)
            cols[f"err_flux{key}"] = np.where(has, d["err_flux"][jj], np.nan)
    sub = {k: v[rows] for k, v in c.items()}
    msx = cols["designation21"]
    for key, (wl, sigma) in _POINT.items():
        flux = _true_flux(sub, wl) * np.exp(rng.normal(0, 0.1, len(rows)))
        seen = flux >= 5 * sigma
        if key.startswith("21_"):
            seen &= np.asarray([m != "missing" for m in msx])
        cols[f"flux{key}"] = np.where(seen, flux, np.nan)
        cols[f"err_flux{key}"] = np.where(seen, np.hypot(0.1 * flux, sigma), np.nan)
    # the reference band of the merge: the member's own position, the size of its first detection
    lft, bft = sub["lon"], sub["b"]
    ft_names = _fmt_gal("HIGALBM", lft, bft, 4)
    cols["designationft"] = ft_names
    cols["glonft"], cols["glatft"] = wrap360(lft), bft
    for name in ("fwhma", "fwhmb", "pa"):
        val = np.full(len(rows), np.nan)
        for key in ("70", "160", "250", "350", "500"):
            val = np.where(np.isnan(val), cols[f"{name}{key}"], val)
        cols[f"{name}ft"] = val
    cols["numidtree"] = tree[rows]
    cols["numid_intree"] = c["intree"][rows].astype(np.int32)
    known = rng_for(seed, "distance").random(int(tree.max()) + 1)[tree[rows]] >= 0.3
    cols["distance"] = np.where(known, np.round(sub["dist"], 3), -9999.0)
    cols["survey"] = ["Hi-GAL"] * len(rows)
    keep = _first_unique(ft_names)
    cols = {k: (np.asarray(v)[keep] if not isinstance(v, list) else [x for x, m in zip(v, keep, strict=True) if m])
            for k, v in cols.items()}
    props = _props(rng, {k: v[rows][keep] for k, v in c.items()}, cols)
    return cols, props


def _luminosity(c: dict[str, np.ndarray]) -> np.ndarray:
    """Bolometric luminosity (Lsun) of the clumps, integrating their SED over 1 um - 3 mm."""
    wl = np.geomspace(1.0, 3000.0, 160)
    nu = C_CGS / (wl * 1e-4)
    s = np.stack([_true_flux(c, w) for w in wl], axis=1)  # Jy
    integral = -np.trapezoid(s, nu, axis=1) * 1e-23  # erg/s/cm2
    return 4 * np.pi * (c["dist"] * KPC_CM) ** 2 * integral / LSUN


def _props(rng: np.random.Generator, c: dict[str, np.ndarray], cols: Columns) -> Columns:
    dist = np.asarray(cols["distance"])
    nfar = sum((np.asarray(cols[f"designation{k}"]) != "missing").astype(int) for k in ("500", "350", "250", "160"))
    sel = (dist > 0) & (nfar >= 3)
    c = {k: v[sel] for k, v in c.items()}
    m = len(c["lon"])
    mass = c["mass"] * np.exp(rng.normal(0, 0.15, m))
    lbol = _luminosity(c) * np.exp(rng.normal(0, 0.1, m))
    fw = np.asarray(cols["fwhma250"])[sel]
    fw = np.where(np.isnan(fw), 18.0 * 1.3, fw)
    radius = dist[sel] * 1000 * np.sqrt(np.maximum(fw**2 - 18.0**2, 9.0)) / 2 * _ARCSEC
    area = np.pi * (radius * KPC_CM / 1000) ** 2
    proto = np.asarray(cols["designation70"])[sel] != "missing"
    flag = np.where(dist[sel] > 7.0, "literature", np.where(rng.random(m) < 0.5, "near", "far"))
    return {
        "designation": [d for d, s in zip(cols["designationft"], sel, strict=True) if s],
        "glon": wrap360(c["lon"]), "glat": c["b"], "dist": dist[sel], "dist_flag": flag.tolist(),
        "mass": mass, "l_bol": lbol, "t_dust": c["tdust"] * np.exp(rng.normal(0, 0.05, m)),
        "radius": radius, "surface_density": mass * MSUN / area, "l_over_m": lbol / mass,
        "evol_class": np.where(proto, "protostellar", "prestellar").tolist(),
        "survey": ["Hi-GAL"] * m,
    }
