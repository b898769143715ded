"""Synthetic tables for the ADQL corpus, created as temporary tables in the test database.

They are shaped like the published ones (same schema, table and column names where the
corpus needs them: compact sources, SED view, distances, filaments, ObsCore, TAP_SCHEMA)
and filled with seeded random rows plus hand-placed edge cases: sources at both poles, on
both sides of l = 0/360, and rows with NULLs. ADQL reaches them through a catalog whose
tables point at ``pg_temp``, so the translator under test runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
from astropy import units as u
from astropy.coordinates import SkyCoord
from psycopg import sql

from schemas import TYPES, Column, Table
from vo.adql import DEFAULT_SCHEMA_ALIASES, Catalog

__all__ = ["TABLES", "Raw", "create", "corpus_catalog"]


def c(name: str, type_: str, unit: str | None = None, ucd: str | None = None, generated: str | None = None,
      published: bool = True) -> Column:
    return Column(name=name, type=type_, unit=unit, ucd=ucd, generated=generated, description=f"test column {name}",
                  published=published)


def t(schema: str, name: str, *columns: Column) -> Table:
    return Table(name=name, description=f"test table {name}", columns=list(columns)).model_copy(
        update={"schema_name": schema}
    )


GAL_POINT = "spoint(radians(glon), radians(glat))"
EQ_POINT = "spoint(radians(ra), radians(dec))"


def _band(name: str) -> Table:
    return t(
        "compactsources", name,
        c("designation", "text", ucd="meta.id;meta.main"),
        c("glon", "double", "deg", "pos.galactic.lon"),
        c("glat", "double", "deg", "pos.galactic.lat"),
        c("ra", "double", "deg", "pos.eq.ra"),
        c("dec", "double", "deg", "pos.eq.dec"),
        c("fwhma", "float", "arcsec"),
        c("fwhmb", "float", "arcsec"),
        c("pa", "float", "deg"),
        c("flux", "float", "Jy", "phot.flux.density"),
        c("err_flux", "float", "Jy"),
        c("npix", "int"),
        # internal, as in schemas/compactsources.yaml: ADQL reaches them through POINT(lon, lat)
        c("pos_gal", "point", "deg", "pos.galactic", GAL_POINT, published=False),
        c("pos", "point", "deg", "pos.eq", EQ_POINT, published=False),
    )


TABLES: list[Table] = [
    _band("band70um"),
    _band("band160um"),
    t(
        "compactsources", "sed_view_final",
        c("designationft", "text"), c("glonft", "double", "deg"), c("glatft", "double", "deg"),
        c("designation70", "text"), c("glon70", "double", "deg"), c("glat70", "double", "deg"),
        c("flux70", "float", "Jy"), c("designation160", "text"), c("flux160", "float", "Jy"),
        c("distance", "double", "kpc"), c("numidtree", "int"),
    ),
    t(
        "compactsources", "props_dist",
        c("designation", "text"), c("glon", "double", "deg"), c("glat", "double", "deg"),
        c("dist", "double", "kpc"), c("mass", "double", "solMass"), c("lbol", "double", "solLum"),
    ),
    t(
        "filaments", "filaments",
        c("idfil_mos", "int"), c("glon", "double", "deg"), c("glat", "double", "deg"),
        c("length", "double", "arcmin"), c("contour", "text"), c("flag", "short"),
        c("contour_poly", "polygon", "deg"),
    ),
    t(
        "filaments", "branches",
        c("idbranch", "int"), c("idfil_mos", "int"), c("contour", "text"), c("contour1d", "text"),
        c("contour_new", "text"), c("flagspine", "text"), c("length", "double", "arcmin"),
        c("spine", "path", "deg"),
    ),
    t(
        "ivoa", "obscore",
        c("obs_publisher_did", "text"), c("obs_collection", "text"), c("obs_title", "text"),
        c("dataproduct_type", "text"), c("s_ra", "double", "deg", "pos.eq.ra"),
        c("s_dec", "double", "deg", "pos.eq.dec"), c("s_fov", "double", "deg"),
        c("em_min", "double", "m"), c("em_max", "double", "m"), c("t_min", "timestamp"),
        c("s_region", "polygon", "deg", "pos.outline;obs.field"),
        c("s_region_galactic", "polygon", "deg", "pos.outline;obs.field"),
        c("overlap", "boolean"),
    ),
    t(
        "TAP_SCHEMA", "columns",
        c("table_name", "text"), c("column_name", "text"), c("datatype", "text"), c("size", "int"),
        c("description", "text"), c("utype", "text"), c("unit", "text"), c("indexed", "int"),
    ),
]


def sql_name(table: Table) -> str:
    return f"{table.schema_name.lower()}_{table.name}"


def corpus_catalog() -> Catalog:
    """The catalog the corpus translates with: the test tables, stored in pg_temp."""
    cat = Catalog((), aliases=DEFAULT_SCHEMA_ALIASES)
    for table in TABLES:
        cat = cat.with_table(table, sql_schema="pg_temp", sql_name=sql_name(table))
    return cat


# --------------------------------------------------------------------------- data


def _sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    lon = rng.uniform(0, 360, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return lon, lat


#: hand-placed (glon, glat): both sides of l = 0/360, the poles and their neighbourhood
EDGE_SOURCES = [
    (359.995, 0.01), (0.004, -0.02), (359.9, 0.3), (0.1, -0.25), (0.0, 0.0), (180.0, 0.0),
    (10.0, 90.0), (200.0, -90.0), (45.0, 89.95), (300.0, 89.9), (120.0, -89.97), (0.0, 89.999),
    (359.999, -45.0), (0.001, 45.0), (90.0, 0.0), (270.0, 0.0),
]


def _band_rows(
    rng: np.random.Generator, n_plane: int, n_sky: int, prefix: str,
    at: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, list]:
    """Sources in the plane, over the sky and at EDGE_SOURCES; or exactly ``at`` (lon, lat)."""
    if at is None:
        sky = _sphere(rng, n_sky)
        lon = np.concatenate([rng.uniform(0, 360, n_plane), sky[0], [e[0] for e in EDGE_SOURCES]])
        lat = np.concatenate([np.clip(rng.normal(0, 0.8, n_plane), -5, 5), sky[1], [e[1] for e in EDGE_SOURCES]])
    else:
        lon, lat = at
    n = len(lon)
    icrs = SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic").icrs
    flux = rng.lognormal(0, 1.2, n).astype(np.float32)
    flux_list: list = [float(f) for f in flux]
    for i in range(0, n, 47):
        flux_list[i] = None
    return {
        "designation": [f"{prefix}{i:05d}" for i in range(n)],
        "glon": lon.tolist(), "glat": lat.tolist(),
        "ra": icrs.ra.deg.tolist(), "dec": icrs.dec.deg.tolist(),
        "fwhma": rng.uniform(5, 25, n).astype(np.float32).tolist(),
        "fwhmb": rng.uniform(4, 20, n).astype(np.float32).tolist(),
        "pa": rng.uniform(0, 180, n).astype(np.float32).tolist(),
        "flux": flux_list,
        "err_flux": (flux * 0.1).tolist(),
        "npix": rng.integers(3, 300, n).tolist(),
    }


def _quad(lon: float, lat: float, h: float) -> list[tuple[float, float]]:
    return [(lon - h, lat - h), (lon + h, lat - h), (lon + h, lat + h), (lon - h, lat + h)]


def _spoly_text(vertices: list[tuple[float, float]]) -> str:
    return "{" + ",".join(f"({float(np.radians(a))!r},{float(np.radians(b))!r})" for a, b in vertices) + "}"


def _rows(rng: np.random.Generator) -> dict[str, dict[str, list]]:
    data: dict[str, dict[str, list]] = {}
    b70 = _band_rows(rng, 2200, 300, "HIGAL70_")
    data["band70um"] = b70
    # band160um: 600 of its sources are band70um sources moved by a few arcsec (cross-matches)
    b160 = _band_rows(rng, 300, 100, "HIGAL160_")
    n_match = 600
    pick = rng.choice(len(b70["glon"]) - len(EDGE_SOURCES), n_match, replace=False)
    glon = (np.array(b70["glon"])[pick] + rng.normal(0, 2 / 3600, n_match)) % 360
    glat = np.array(b70["glat"])[pick] + rng.normal(0, 2 / 3600, n_match)
    moved = _band_rows(rng, 0, 0, "HIGAL160_", at=(glon, glat))
    start = len(b160["glon"])
    moved["designation"] = [f"HIGAL160_{start + i:05d}" for i in range(n_match)]
    data["band160um"] = {k: b160[k] + moved[k] for k in b160}

    n = 800
    idx = rng.choice(len(b70["glon"]), n, replace=False)
    has70 = rng.uniform(size=n) < 0.8
    dist = np.where(rng.uniform(size=n) < 0.15, -9999.0, rng.uniform(0.5, 12, n))
    data["sed_view_final"] = {
        "designationft": [f"SED_{i:04d}" for i in range(n)],
        "glonft": [b70["glon"][i] for i in idx], "glatft": [b70["glat"][i] for i in idx],
        "designation70": [b70["designation"][i] if h else "missing" for i, h in zip(idx, has70, strict=True)],
        "glon70": [b70["glon"][i] if h else None for i, h in zip(idx, has70, strict=True)],
        "glat70": [b70["glat"][i] if h else None for i, h in zip(idx, has70, strict=True)],
        "flux70": [b70["flux"][i] if h else None for i, h in zip(idx, has70, strict=True)],
        "designation160": [f"HIGAL160_{i:05d}" if i % 3 else "missing" for i in range(n)],
        "flux160": rng.lognormal(0.5, 1, n).astype(np.float32).tolist(),
        "distance": dist.tolist(),
        "numidtree": rng.integers(1, 40, n).tolist(),
    }
    n = 600
    lon, lat = rng.uniform(0, 360, n), rng.normal(0, 0.6, n)
    data["props_dist"] = {
        "designation": [f"HIGAL70_{i:05d}" for i in range(n)],
        "glon": lon.tolist(), "glat": lat.tolist(),
        "dist": rng.uniform(0.3, 15, n).tolist(),
        "mass": rng.lognormal(4, 1.5, n).tolist(),
        "lbol": rng.lognormal(5, 2, n).tolist(),
    }
    n = 120
    lon = np.concatenate([rng.uniform(0, 360, n - 2), [359.98, 0.02]])
    lat = np.concatenate([rng.normal(0, 0.5, n - 2), [0.0, 0.1]])
    halves = rng.uniform(0.02, 0.2, n)
    data["filaments"] = {
        "idfil_mos": list(range(1, n + 1)),
        "glon": lon.tolist(), "glat": lat.tolist(),
        "length": rng.uniform(1, 60, n).tolist(),
        "contour": [
            "".join(f"{a % 360:.4f}_" for a, _ in _quad(lo, la, h)) + ","
            + "".join(f"{b:.4f}_" for _, b in _quad(lo, la, h))
            for lo, la, h in zip(lon, lat, halves, strict=True)
        ],
        "flag": rng.integers(0, 3, n).tolist(),
        "contour_poly": [_spoly_text(_quad(lo, la, h)) for lo, la, h in zip(lon, lat, halves, strict=True)],
    }
    n = 300
    fil = rng.integers(1, 121, n)
    flon = np.array(data["filaments"]["glon"])[fil - 1]
    flat = np.array(data["filaments"]["glat"])[fil - 1]
    data["branches"] = {
        "idbranch": list(range(1, n + 1)),
        "idfil_mos": fil.tolist(),
        "contour": [f"{a:.3f}_{a + 0.01:.3f}_,{b:.3f}_{b + 0.01:.3f}_" for a, b in zip(flon, flat, strict=True)],
        "contour1d": [f"{a:.3f}_,{b:.3f}_" for a, b in zip(flon, flat, strict=True)],
        "contour_new": [f"{a:.2f}_,{b:.2f}_" for a, b in zip(flon, flat, strict=True)],
        "flagspine": rng.choice(["S", "s", "B"], n).tolist(),
        "length": rng.uniform(0.1, 10, n).tolist(),
        "spine": [
            _spoly_text([(a + k * 0.01, b + k * 0.005) for k in range(3)]) for a, b in zip(flon, flat, strict=True)
        ],
    }
    n = 200
    ra, dec = _sphere(rng, n)
    dec = np.clip(dec, -80, 80)
    fov = rng.uniform(0.1, 2, n)
    regions = [_quad(a, b, f / 2) for a, b, f in zip(ra, dec, fov, strict=True)]
    gal_regions = []
    for quad in regions:
        g = SkyCoord(ra=[q[0] for q in quad] * u.deg, dec=[q[1] for q in quad] * u.deg).galactic
        gal_regions.append(list(zip(g.l.deg, g.b.deg, strict=True)))
    colls = rng.choice(["HiGAL", "MIPSGAL", "CHaMP", "ThrUMMS"], n)
    data["obscore"] = {
        "obs_publisher_did": [f"ivo://vlkb.test/{c_}?file{i:03d}.fits" for i, c_ in enumerate(colls)],
        "obs_collection": colls.tolist(),
        "obs_title": [f"{'Continuum' if c_ in ('HiGAL', 'MIPSGAL') else '12CO'} | {i % 5}" for i, c_ in
                      enumerate(colls)],
        "dataproduct_type": ["image" if c_ in ("HiGAL", "MIPSGAL") else "cube" for c_ in colls],
        "s_ra": ra.tolist(), "s_dec": dec.tolist(), "s_fov": fov.tolist(),
        "em_min": (rng.uniform(1, 500, n) * 1e-6).tolist(),
        "em_max": (rng.uniform(500, 1000, n) * 1e-6).tolist(),
        "t_min": [f"2020-01-{1 + i % 28:02d} 12:00:00" for i in range(n)],
        "s_region": [_spoly_text(q) for q in regions],
        "s_region_galactic": [_spoly_text(q) for q in gal_regions],
        "overlap": (rng.uniform(size=n) < 0.5).tolist(),
    }
    names = ["designation", "glon", "glat", "flux", "size", "distance", "pos_gal", "description"]
    data["columns"] = {
        "table_name": [f"compactsources.band{w}um" for w in (70, 160, 250) for _ in names],
        "column_name": [n_ for _ in (70, 160, 250) for n_ in names],
        "datatype": ["char", "double", "double", "float", "int", "double", "double", "char"] * 3,
        "size": [None, 8, 8, 4, 4, 8, 16, None] * 3,
        "description": [f"the {n_} column" for _ in range(3) for n_ in names],
        "utype": [f"vlkb_compactsources.band{w}um.{n_}" for w in (70, 160, 250) for n_ in names],
        "unit": [None, "deg", "deg", "Jy", None, "kpc", "deg", None] * 3,
        "indexed": [1, 1, 0, 0, 0, 0, 1, 0] * 3,
    }
    return data


@dataclass
class Raw:
    """The rows of one test table as fetched with plain SQL: numpy arrays by column name."""

    columns: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


def create(conn: psycopg.Connection, seed: int = 20240611) -> None:
    """Create and fill the test tables as temporary tables of ``conn``'s session."""
    rng = np.random.default_rng(seed)
    data = _rows(rng)
    for table in TABLES:
        name = sql.Identifier(sql_name(table))
        defs = []
        for col in table.columns:
            d = sql.SQL("{} {}").format(sql.Identifier(col.name), sql.SQL(TYPES[col.type].pg))
            if col.generated:
                d = sql.SQL("{} GENERATED ALWAYS AS ({}) STORED").format(d, sql.SQL(col.generated))
            defs.append(d)
        conn.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(name, sql.SQL(", ").join(defs)))
        rows = data[table.name]
        cols = [col.name for col in table.columns if not col.generated]
        with conn.cursor().copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(name, sql.SQL(", ").join(map(sql.Identifier, cols)))
        ) as copy:
            for values in zip(*(rows[k] for k in cols), strict=True):
                copy.write_row(values)
        for col in table.columns:
            if col.type in ("point", "polygon", "circle", "path"):
                conn.execute(sql.SQL("CREATE INDEX ON {} USING gist ({})").format(name, sql.Identifier(col.name)))
        conn.execute(sql.SQL("ANALYZE {}").format(name))
