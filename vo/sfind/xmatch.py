"""Cross-match with the knowledge base: the nearest known compact source of the image's band.

The band table is chosen from the dataset's spectral coverage (``compactsources.band70um`` for an
image whose band holds 70 um, ...); images of other bands (radio continuum, line moments) have no
band table and every detection is new. The lookup runs in the caller's session
(:func:`vo.caller.session_blocking`), so row-level security decides which known sources the
job's owner may see, as for every other read. One statement for all the detections of a tile.
"""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql

from vo.caller import Caller, Dataset, session_blocking

__all__ = ["BAND_TABLES", "band_table", "nearest_known"]

#: the knowledge base's band catalogues by wavelength (micron)
BAND_TABLES = {24: "band24um", 70: "band70um", 160: "band160um", 250: "band250um", 350: "band350um",
               500: "band500um"}


def band_table(ds: Dataset) -> str | None:
    """The band table whose wavelength lies in the dataset's band; None when none does."""
    if ds.em_min is None or ds.em_max is None or ds.dataproduct_type == "cube":
        return None
    for micron, table in BAND_TABLES.items():
        if ds.em_min <= micron * 1e-6 <= ds.em_max:
            return table
    return None


_NEAREST = """
SELECT d.i, k.designation, degrees(k.pos_gal <-> spoint(radians(d.l), radians(d.b)))
FROM unnest(%(l)s::float8[], %(b)s::float8[], %(i)s::int[]) AS d(l, b, i)
CROSS JOIN LATERAL (
    SELECT t.designation, t.pos_gal FROM compactsources.{table} t
    WHERE t.pos_gal @ scircle(spoint(radians(d.l), radians(d.b)), radians(%(r)s))
    ORDER BY t.pos_gal <-> spoint(radians(d.l), radians(d.b)) LIMIT 1
) k
"""


def nearest_known(conn: psycopg.Connection, caller: Caller, table: str, glon: np.ndarray, glat: np.ndarray,
                  radius: float) -> tuple[list[str], np.ndarray]:
    """For each position, the designation of the nearest source of ``table`` within ``radius`` degrees
    that ``caller`` may read ('' when none) and its separation (deg, NaN when none)."""
    names = [""] * len(glon)
    seps = np.full(len(glon), np.nan)
    if not len(glon):
        return names, seps
    if table not in BAND_TABLES.values():
        raise ValueError(f"not a band table: {table}")
    query = sql.SQL(_NEAREST).format(table=sql.Identifier(table))
    args = {"l": [float(v) for v in glon], "b": [float(v) for v in glat], "i": list(range(len(glon))),
            "r": float(radius)}
    with session_blocking(conn, caller) as c:
        for i, name, sep in c.execute(query, args).fetchall():
            names[i], seps[i] = str(name), float(sep)
    return names, seps
