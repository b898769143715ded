"""Dataset files: the published datasets a caller may read, and where their files are.

SQL only, frozen records out. ``vlkb.datasets`` maps a publisher DID to its file. Every
function here runs on a connection inside the caller's session (:mod:`db.session`): the
row-level security of ``vlkb.datasets`` and ``ivoa.obscore`` answers as if the datasets the
caller may not read did not exist, so "hidden" and "missing" look the same to the protocols
above, and no visibility rule is written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg import AsyncConnection, Connection
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from db.session import caller_fetch

__all__ = [
    "ACCESS_CHANNEL", "Dataset", "access_announced", "dataset_by_key", "did_key", "fetch_datasets",
    "find_datasets_blocking",
]

#: where a change of what a lookup here answers is announced (db/sql/access_notify.sql): a
#: dataset published, changed or withdrawn, a survey's policy set
ACCESS_CHANNEL = "vlkb_access"
#: the tables whose triggers announce it
_ANNOUNCED = ("vlkb.datasets", "ivoa.obscore", "vlkb.survey_policies")


async def access_announced(conn: AsyncConnection) -> bool:
    """Whether every table a lookup reads announces its changes (the DDL step has run since
    ``access_notify.sql`` was added): else nothing may be kept on the strength of them."""
    cur = await conn.execute(
        "SELECT count(DISTINCT t.tgrelid) FROM pg_trigger t"
        " WHERE t.tgname = 'vlkb_access_changed' AND t.tgenabled <> 'D'"
        " AND t.tgrelid = ANY(ARRAY(SELECT to_regclass(n) FROM unnest(%s::text[]) AS n))",
        (list(_ANNOUNCED),))
    row = await cur.fetchone()
    return row is not None and row[0] == len(_ANNOUNCED)

#: The key of a DID in file and preview URLs: what follows the first "?" (the whole DID if none).
_KEY_SQL = "substr(d.publisher_did, strpos(d.publisher_did, '?') + 1)"


def did_key(did: str) -> str:
    """``slug/file.fits`` for ``ivo://authority/vlkb?slug/file.fits``; the DID itself without a ``?``.

    The SQL twin of this function is used by :func:`dataset_by_key`.
    """
    return did.split("?", 1)[1] if "?" in did else did


@dataclass(frozen=True)
class Dataset:
    """A published dataset the caller may read: its file and the ObsCore values DataLink needs.

    Geometries are DALI lists in degrees (``s_region``: ICRS, ``s_region_galactic``: Galactic).
    """

    publisher_did: str
    survey: str
    path: str
    size: int | None
    dataproduct_type: str | None
    em_min: float | None
    em_max: float | None
    t_min: float | None
    t_max: float | None
    pol_states: str | None
    vel_min: float | None
    vel_max: float | None
    s_ra: float | None
    s_dec: float | None
    s_fov: float | None
    s_region: list[float] | None
    s_region_galactic: list[float] | None

    @property
    def file(self) -> Path:
        """The file's path, as stored at ingest."""
        return Path(self.path)

    @property
    def key(self) -> str:
        """The DID's key in file and preview URLs (see :func:`did_key`)."""
        return did_key(self.publisher_did)


_SELECT = """
SELECT d.publisher_did, d.survey, d.path, d.size, o.dataproduct_type, o.em_min, o.em_max,
       o.t_min, o.t_max, o.pol_states, o.vel_min, o.vel_max, o.s_ra, o.s_dec, o.s_fov,
       vlkb_dali_polygon(o.s_region) AS s_region,
       vlkb_dali_polygon(o.s_region_galactic) AS s_region_galactic
FROM vlkb.datasets d JOIN ivoa.obscore o ON o.obs_publisher_did = d.publisher_did
"""
_BY_DIDS = _SELECT + " WHERE d.publisher_did = ANY(%(dids)s::text[])"


async def fetch_datasets(pool: AsyncConnectionPool, dids: Iterable[str], groups: Sequence[str],
                         user: str | None) -> dict[str, Dataset]:
    """The datasets among ``dids`` that exist and the caller (``groups``, ``user``) may read, by DID, in a
    caller's session of its own, in one round trip (:func:`db.session.caller_fetch`)."""
    dids = list(dict.fromkeys(dids))
    if not dids:
        return {}
    rows = await caller_fetch(pool, _BY_DIDS, {"dids": dids}, class_row(Dataset), groups, user=user)
    return {row.publisher_did: row for row in rows}


def find_datasets_blocking(conn: Connection, dids: Iterable[str]) -> dict[str, Dataset]:
    """:func:`fetch_datasets` over a blocking connection in the caller's session, for job runners (in threads)."""
    dids = list(dict.fromkeys(dids))
    if not dids:
        return {}
    with conn.cursor(row_factory=class_row(Dataset)) as cur:
        cur.execute(_BY_DIDS, {"dids": dids})
        return {row.publisher_did: row for row in cur.fetchall()}


async def dataset_by_key(conn: AsyncConnection, key: str) -> Dataset | None:
    """The readable dataset whose DID key (:func:`did_key`) is ``key``; None if there is none."""
    async with conn.cursor(row_factory=class_row(Dataset)) as cur:
        # Two authorities could share a key: the first DID wins, always the same one.
        await cur.execute(_SELECT + f" WHERE {_KEY_SQL} = %(key)s ORDER BY d.publisher_did LIMIT 1", {"key": key})
        return await cur.fetchone()
