"""The detections of a job as one table, and its serialisations: VOTable, CSV and DS9 regions.

:class:`Detections` holds the stitched components with both ICRS and Galactic positions, the
tile each came from, and the cross-match. :func:`catalog_table` gives an astropy Table with units
and UCDs (VOTable 1.4 section 4.4); the VOTable and CSV results are written from it by astropy.
The DS9 region file is hand-written (a few lines of DS9's own syntax: no extra dependency).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io.votable import from_table
from astropy.table import Table

from vo.sfind.finder import Components

__all__ = ["Detections", "catalog_csv", "catalog_table", "catalog_votable", "ds9_regions"]


@dataclass
class Detections:
    """Components of every tile, with the columns the engine adds."""

    comps: Components
    ra: np.ndarray
    dec: np.ndarray
    glon: np.ndarray
    glat: np.ndarray
    #: integrated flux in Jy where the image unit allows it, else the finder's own
    flux: np.ndarray
    err_flux: np.ndarray
    flux_unit: list[str]
    peak_unit: list[str]
    dataset: list[str]
    #: distance from the detection to its tile's nearest edge (deg)
    edge: np.ndarray
    match_name: list[str]
    match_sep: np.ndarray

    def __len__(self) -> int:
        return len(self.ra)

    def select(self, mask: np.ndarray) -> Detections:
        idx = np.flatnonzero(mask)
        return Detections(
            self.comps.select(idx), self.ra[idx], self.dec[idx], self.glon[idx], self.glat[idx], self.flux[idx],
            self.err_flux[idx], [self.flux_unit[i] for i in idx], [self.peak_unit[i] for i in idx],
            [self.dataset[i] for i in idx], self.edge[idx], [self.match_name[i] for i in idx], self.match_sep[idx])

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            z = np.zeros(0)
            return Detections(Components.from_rows([]), z, z, z, z, z, z, [], [], [], z, [], z)
        arr: dict[str, Any] = {f: np.concatenate([getattr(p, f) for p in parts])
               for f in ("ra", "dec", "glon", "glat", "flux", "err_flux", "edge", "match_sep")}
        lst: dict[str, Any] = {f: [v for p in parts for v in getattr(p, f)]
               for f in ("flux_unit", "peak_unit", "dataset", "match_name")}
        return Detections(comps=Components.concat([p.comps for p in parts]), **arr, **lst)


def _name(glon: float, glat: float) -> str:
    return f"VLKB-SF G{glon:08.4f}{glat:+08.4f}"


_COLUMNS = (
    # name, unit, ucd, description
    ("name", None, "meta.id;meta.main", "designation from the Galactic position (VLKB-SF Glll.llll+bb.bbbb)"),
    ("ra", "deg", "pos.eq.ra;meta.main", "right ascension (ICRS)"),
    ("dec", "deg", "pos.eq.dec;meta.main", "declination (ICRS)"),
    ("err_ra", "arcsec", "stat.error;pos.eq.ra", "uncertainty of ra (on the sky)"),
    ("err_dec", "arcsec", "stat.error;pos.eq.dec", "uncertainty of dec"),
    ("glon", "deg", "pos.galactic.lon", "Galactic longitude"),
    ("glat", "deg", "pos.galactic.lat", "Galactic latitude"),
    ("err_glon", "arcsec", "stat.error;pos.galactic.lon", "uncertainty of glon (on the sky)"),
    ("err_glat", "arcsec", "stat.error;pos.galactic.lat", "uncertainty of glat"),
    ("peak_flux", None, "phot.flux.density;stat.max", "peak brightness, in the image's unit (peak_unit)"),
    ("err_peak_flux", None, "stat.error;phot.flux.density;stat.max", "uncertainty of peak_flux"),
    ("peak_unit", None, "meta.unit", "unit of peak_flux and local_rms (the image's BUNIT)"),
    ("int_flux", None, "phot.flux.density", "integrated flux density of the Gaussian component (int_unit)"),
    ("err_int_flux", None, "stat.error;phot.flux.density", "uncertainty of int_flux"),
    ("int_unit", None, "meta.unit", "unit of int_flux: Jy for Jy/beam and MJy/sr images, else the image's unit "
     "times beams"),
    ("a", "arcsec", "phys.angSize.smajAxis", "FWHM of the major axis (not deconvolved)"),
    ("b", "arcsec", "phys.angSize.sminAxis", "FWHM of the minor axis (not deconvolved)"),
    ("pa", "deg", "pos.posAng", "position angle of the major axis, from north through east in the image's frame"),
    ("local_rms", None, "stat.stdev;phot.flux.density", "local noise at the position (peak_unit)"),
    ("snr", None, "stat.snr", "peak_flux / local_rms"),
    ("flags", None, "meta.code.qual", "the finder's quality flags (0: clean fit)"),
    ("finder", None, "meta.code", "the app that found the component"),
    ("dataset", None, "meta.ref.ivoid;meta.dataset", "publisher DID of the image searched"),
    ("edge_dist", "arcsec", "pos.angDistance", "distance to the nearest edge of the tile searched"),
    ("known_source", None, "meta.id.cross", "designation of the nearest known source within a beam (band table)"),
    ("known_sep", "arcsec", "pos.angDistance;meta.id.cross", "separation from known_source"),
    ("new", None, "meta.code", "true when no known source lies within a beam"),
)


def catalog_table(det: Detections, finder: str) -> Table:
    """The catalogue with units, UCDs and descriptions, sorted by Galactic longitude."""
    c = det.comps
    order = np.lexsort((det.glat, np.where(det.glon > 180, det.glon - 360, det.glon)))
    arcsec = 3600.0
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = c.peak / c.local_rms
    cols: dict[str, object] = {
        "name": [_name(float(a), float(b)) for a, b in zip(det.glon, det.glat, strict=True)],
        "ra": det.ra, "dec": det.dec, "err_ra": c.err_lon * arcsec, "err_dec": c.err_lat * arcsec,
        "glon": det.glon, "glat": det.glat, "err_glon": c.err_lon * arcsec, "err_glat": c.err_lat * arcsec,
        "peak_flux": c.peak, "err_peak_flux": c.err_peak, "peak_unit": det.peak_unit,
        "int_flux": det.flux, "err_int_flux": det.err_flux, "int_unit": det.flux_unit,
        "a": c.a, "b": c.b, "pa": c.pa, "local_rms": c.local_rms, "snr": snr, "flags": c.flags,
        "finder": [finder] * len(det), "dataset": det.dataset, "edge_dist": det.edge * arcsec,
        "known_source": det.match_name, "known_sep": det.match_sep * arcsec,
        "new": np.array([not m for m in det.match_name], dtype=bool),
    }
    dtypes = {"name": str, "peak_unit": str, "int_unit": str, "finder": str, "dataset": str, "known_source": str,
              "flags": np.int32, "new": bool}
    table = Table()
    for name, unit, ucd, text in _COLUMNS:
        values = cols[name]
        data: np.ndarray = np.asarray(values, dtype=dtypes.get(name, np.float64))
        table[name] = data[order]
        table[name].unit = unit
        table[name].description = text
        table[name].meta["ucd"] = ucd
    return table


def catalog_votable(table: Table, info: dict[str, str]) -> bytes:
    """The catalogue as a VOTable, with ``info`` as INFO elements of the resource.

    BINARY: astropy writes it in a third of the time of TABLEDATA (11 against 37 ms for 300 rows,
    the catalogue being most of a one-tile job's output time); the CSV result is the text form.
    """
    from astropy.io.votable.tree import Info

    vot = from_table(table)
    resource = vot.resources[0]
    resource.type = "results"
    resource.infos.append(Info(name="QUERY_STATUS", value="OK"))
    for key, value in info.items():
        resource.infos.append(Info(name=key, value=value))
    for field in resource.tables[0].fields:
        ucd = table[field.name].meta.get("ucd")
        if ucd:
            field.ucd = ucd
    buf = io.BytesIO()
    vot.to_xml(buf, tabledata_format="binary")
    return buf.getvalue()


def catalog_csv(table: Table) -> bytes:
    buf = io.StringIO()
    table.write(buf, format="ascii.csv")
    return buf.getvalue().encode()


def ds9_regions(table: Table) -> bytes:
    """DS9 regions in Galactic coordinates: an ellipse (semi-axes = half the FWHM) per component,
    named, green for new sources and cyan for known ones. DS9 angles run from the first axis
    (+l) counter-clockwise, so a position angle from north through east becomes pa + 90."""
    lines = ["# Region file format: DS9 version 4.1", "# vlkb source finding: one ellipse per component",
             'global color=cyan width=1 font="helvetica 9 normal roman"', "galactic"]
    for row in table:
        color = " color=green" if row["new"] else ""
        lines.append(f"ellipse({row['glon']:.6f},{row['glat']:.6f},{row['a'] / 2:.3f}\",{row['b'] / 2:.3f}\","
                     f"{(row['pa'] + 90) % 360:.2f}) # text={{{row['name']}}}{color}")
    return ("\n".join(lines) + "\n").encode()
